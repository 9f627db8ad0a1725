"""Shared dependencies: the application state, the current user, role and ownership checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.engine import Engine

from crowdleverage.api.auditlog import AuditLog
from crowdleverage.api.idempotency import Idempotent, idempotency_dependency
from crowdleverage.api.security import Role, User, UserStore, decode_token
from crowdleverage.config import Settings
from crowdleverage.domain.errors import Forbidden, NotFound, Unauthorized
from crowdleverage.flows.platform import Platform

COOKIE = "crowdlev_token"
ID_MAX = 2**31 - 1  # ids are 32-bit integers in every backend
UserIdPath = Annotated[int, Path(ge=1, le=ID_MAX, description="user id")]
AccountIdPath = Annotated[int, Path(ge=1, le=ID_MAX, description="margin account id")]
oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


@dataclass
class ApiState:
    settings: Settings
    engine: Engine
    users: UserStore
    platform: Platform
    audit: AuditLog
    secret: str
    _compliance: Any = None
    _onboarding: Any = None

    def compliance(self) -> Any:
        """The compliance service (sanctions screening), built on first use."""
        if self._compliance is None:
            from crowdleverage.compliance.service import ComplianceService

            self._compliance = ComplianceService(self.engine, None)
        return self._compliance

    def onboarding(self) -> Any:
        """The onboarding pipeline (compliance.onboarding) with the credit model in use."""
        if self._onboarding is None:
            from crowdleverage.compliance.onboarding import OnboardingService
            from crowdleverage.credit.model import ModelRegistry
            from crowdleverage.credit.registry import default_registry

            self._onboarding = OnboardingService(
                self.compliance(), models=ModelRegistry(default_registry()), audit=self.audit
            )
        return self._onboarding


def state(request: Request) -> ApiState:
    st: ApiState = request.app.state.api
    return st


def current_user(
    request: Request, token: str | None = Depends(oauth2), st: ApiState = Depends(state)
) -> User:
    """Bearer token, else the dashboard's cookie (HttpOnly, SameSite=Strict)."""
    raw = token or request.cookies.get(COOKIE)
    if not raw:
        raise Unauthorized("not authenticated: send 'Authorization: Bearer <token>'")
    user_id = decode_token(raw, st.secret)
    try:
        return st.users.get(user_id)
    except NotFound as exc:
        raise Unauthorized("the token's user no longer exists") from exc


def optional_user(request: Request, st: ApiState = Depends(state)) -> User | None:
    raw = request.cookies.get(COOKIE)
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        raw = auth[7:]
    if not raw:
        return None
    try:
        return st.users.get(decode_token(raw, st.secret))
    except (Unauthorized, NotFound):
        return None


def require(*roles: Role) -> Callable[..., User]:
    """Function-level authorization: the user's role must be one of `roles`."""

    def dep(user: User = Depends(current_user)) -> User:
        if user.role not in roles:
            needs = ", ".join(r.value for r in roles)
            raise Forbidden(f"role {user.role.value} may not do this (needs {needs})")
        return user

    return dep


def check_owner(user: User, owner_id: int, staff: tuple[Role, ...], what: str) -> None:
    """Object-level authorization. Staff roles see every object; the owning role sees only
    its own, and another user's object answers 404 (its existence is not revealed)."""
    if user.role in staff:
        return
    if user.id != owner_id:
        raise NotFound(f"{what} not found")


def idem(
    request: Request,
    key: Idempotent = Depends(idempotency_dependency(lambda r: r.app.state.api.platform)),
) -> Idempotent:
    return key


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int


def page_params(
    limit: int = Query(50, ge=1, le=200, description="items per page"),
    offset: int = Query(0, ge=0, le=10**9, description="items to skip"),
) -> PageParams:
    return PageParams(limit, offset)
