"""Login (OAuth2 password → JWT), self-registration of investors and borrowers, users."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from crowdleverage.api import schemas as S
from crowdleverage.api.deps import (
    ApiState,
    PageParams,
    UserIdPath,
    current_user,
    page_params,
    require,
    state,
)
from crowdleverage.api.security import TOKEN_TTL_S, Role, User, issue_token
from crowdleverage.api.views import user_out
from crowdleverage.domain.errors import ComplianceBlock

router = APIRouter(tags=["auth"])


@router.post("/auth/token", response_model=S.TokenOut)
def login(
    request: Request,
    form: OAuth2PasswordRequestForm = Depends(),
    st: ApiState = Depends(state),
) -> S.TokenOut:
    """OAuth2 password flow. Failed attempts are limited per username (5 per 5 minutes)."""
    client = request.client.host if request.client else "?"
    user = st.users.authenticate(form.username, form.password, client)
    return S.TokenOut(
        access_token=issue_token(user, st.secret), token_type="bearer", expires_in=TOKEN_TTL_S
    )


@router.post("/auth/register", response_model=S.UserOut, status_code=201)
def register(body: S.RegisterIn, st: ApiState = Depends(state)) -> S.UserOut:
    """Self-registration of an investor or a borrower; KYC is pending until compliance
    approves it."""
    user = st.users.create(body.username, body.password, Role(body.role), body.display_name)
    return user_out(user)


@router.get("/me", response_model=S.UserOut)
def me(user: User = Depends(current_user)) -> S.UserOut:
    return user_out(user)


@router.post("/users", response_model=S.UserOut, status_code=201)
def create_user(
    body: S.UserCreateIn,
    actor: User = Depends(require(Role.OPERATOR)),
    st: ApiState = Depends(state),
) -> S.UserOut:
    user = st.users.create(body.username, body.password, body.role, body.display_name)
    st.audit.append(actor.username, "user_created", {"user_id": user.id, "role": user.role})
    return user_out(user)


@router.get("/users", response_model=S.Page[S.UserOut])
def list_users(
    page: PageParams = Depends(page_params),
    _: User = Depends(require(Role.OPERATOR, Role.COMPLIANCE, Role.AUDITOR)),
    st: ApiState = Depends(state),
) -> S.Page[S.UserOut]:
    users, total = st.users.list(limit=page.limit, offset=page.offset)
    return S.Page[S.UserOut](
        items=[user_out(u) for u in users], total=total, limit=page.limit, offset=page.offset
    )


@router.post("/compliance/users/{user_id}/kyc", response_model=S.UserOut)
def decide_kyc(
    user_id: UserIdPath,
    body: S.KycIn,
    actor: User = Depends(require(Role.COMPLIANCE)),
    st: ApiState = Depends(state),
) -> S.UserOut:
    """Record an investor's KYC decision, or decline anyone. An approval is screened against
    the sanctions lists first (compliance.screening); a hit blocks it. A borrower is approved
    only through the onboarding pipeline (credit score, tier and rate, or an officer's
    override with a written reason), never here."""
    from crowdleverage.domain.errors import Conflict, InvalidInput

    target = st.users.get(user_id)
    if target.role not in (Role.INVESTOR, Role.BORROWER):
        raise InvalidInput(f"KYC applies to investors and borrowers, not {target.role.value}")
    if target.role is Role.BORROWER and body.decision == "approved":
        raise Conflict(
            "a borrower is approved through the onboarding pipeline (credit score and tier):"
            " POST /api/v1/onboarding/applications, or the officer's override of a referred"
            " application at /api/v1/compliance/onboarding/users/{id}/override"
        )
    if body.decision == "approved":
        screened = st.compliance().screener().screen(target.display_name)
        if screened.is_hit:
            top = screened.hits[0]
            st.audit.append(actor.username, "kyc_blocked_sanctions",
                            {"user_id": user_id, "list": top.list_id, "entry": top.entry_id,
                             "score": top.score})  # fmt: skip
            raise ComplianceBlock(
                f"sanctions screening hit: {top.primary_name} ({top.list_id} "
                f"{top.reference}, score {top.score}); approval blocked pending a case review",
                list=top.list_id,
                entry_id=top.entry_id,
                score=top.score,
            )
    tier = None  # tiers come from the onboarding pipeline's credit decision
    user = st.users.set_kyc(user_id, body.decision, tier)
    st.audit.append(actor.username, "kyc_decision", {"user_id": user_id, **body.model_dump()})
    return user_out(user)
