"""Credentials and tokens: argon2id password hashes, HS256 JWTs, the login rate limiter."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import jwt
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine

from crowdleverage.api import store
from crowdleverage.config import Settings
from crowdleverage.domain.errors import Conflict, InvalidInput, RateLimited, Unauthorized


class Role(StrEnum):
    INVESTOR = "investor"
    BORROWER = "borrower"
    OPERATOR = "operator"
    CUSTODIAN = "custodian"
    BROKER = "broker"
    COMPLIANCE = "compliance"
    AUDITOR = "auditor"


# Low-cost parameters keep a login at ~10 ms on a shared CPU; still argon2id with a salt.
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
# A hash of a random password, verified when the username is unknown, so that the time taken
# does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))

TOKEN_TTL_S = 3600
JWT_ALGORITHM = "HS256"
LOGIN_WINDOW_S = 300
LOGIN_MAX_FAILURES = 5


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role
    display_name: str
    kyc_status: str
    credit_tier: int | None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def jwt_secret(settings: Settings) -> str:
    """The configured secret, else one generated once and kept (0600) in the data dir."""
    if settings.jwt_secret is not None:
        value = settings.jwt_secret.get_secret_value()
        if len(value) < 32:
            raise InvalidInput("jwt_secret must be at least 32 characters")
        return value
    path = Path(settings.ensure_data_dir()) / "jwt_secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _row_user(r: sa.Row) -> User:  # type: ignore[type-arg]
    return User(r.id, r.username, Role(r.role), r.display_name, r.kyc_status, r.credit_tier)


class UserStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self,
        username: str,
        password: str,
        role: Role,
        display_name: str,
        *,
        kyc_status: str = "pending",
        credit_tier: int | None = None,
    ) -> User:
        if len(password) < 8:
            raise InvalidInput("password must have at least 8 characters")
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(store.users.c.id).where(store.users.c.username == username)
            ).first()
            if exists is not None:
                raise Conflict(f"username {username!r} is taken")
            uid = conn.execute(
                store.users.insert().values(
                    username=username,
                    password_hash=hash_password(password),
                    role=role.value,
                    display_name=display_name,
                    kyc_status=kyc_status,
                    credit_tier=credit_tier,
                    created_at_s=int(time.time()),
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        return self.get(int(uid))

    def get(self, user_id: int) -> User:
        from crowdleverage.domain.errors import NotFound

        with self.engine.connect() as conn:
            r = conn.execute(sa.select(store.users).where(store.users.c.id == user_id)).first()
        if r is None:
            raise NotFound(f"user {user_id} not found")
        return _row_user(r)

    def find(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            r = conn.execute(
                sa.select(store.users).where(store.users.c.username == username)
            ).first()
        return None if r is None else _row_user(r)

    def list(self, *, limit: int, offset: int, role: Role | None = None) -> tuple[list[User], int]:
        q = sa.select(store.users)
        cq = sa.select(sa.func.count()).select_from(store.users)
        if role is not None:
            q = q.where(store.users.c.role == role.value)
            cq = cq.where(store.users.c.role == role.value)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(store.users.c.id).limit(limit).offset(offset)).all()
            total = int(conn.execute(cq).scalar_one())
        return [_row_user(r) for r in rows], total

    def set_kyc(self, user_id: int, status: str, credit_tier: int | None) -> User:
        with self.engine.begin() as conn:
            n = conn.execute(
                store.users.update()
                .where(store.users.c.id == user_id)
                .values(kyc_status=status, credit_tier=credit_tier)
            ).rowcount
        if n != 1:
            from crowdleverage.domain.errors import NotFound

            raise NotFound(f"user {user_id} not found")
        return self.get(user_id)

    def authenticate(self, username: str, password: str, client: str) -> User:
        """The user, or Unauthorized; RateLimited after too many recent failures."""
        now = int(time.time())
        with self.engine.connect() as conn:
            failures = conn.execute(
                sa.select(sa.func.count())
                .select_from(store.login_failures)
                .where(
                    store.login_failures.c.username == username,
                    store.login_failures.c.at_s > now - LOGIN_WINDOW_S,
                )
            ).scalar_one()
            row = conn.execute(
                sa.select(store.users).where(store.users.c.username == username)
            ).first()
        if failures >= LOGIN_MAX_FAILURES:
            raise RateLimited(
                f"too many failed logins for {username!r}; retry in {LOGIN_WINDOW_S} s",
                retry_after_s=LOGIN_WINDOW_S,
            )
        try:
            _hasher.verify(row.password_hash if row is not None else _DUMMY_HASH, password)
            ok = row is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None:
            with self.engine.begin() as conn:
                conn.execute(
                    store.login_failures.insert().values(
                        username=username, client=client[:64], at_s=now
                    )
                )
            raise Unauthorized("wrong username or password")
        return _row_user(row)


def issue_token(user: User, secret: str, *, ttl_s: int = TOKEN_TTL_S) -> str:
    now = int(time.time())
    claims = {"sub": str(user.id), "role": user.role.value, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def decode_token(token: str, secret: str) -> int:
    """The user id in a valid, unexpired token; Unauthorized otherwise."""
    try:
        claims = jwt.decode(token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp"]})
        return int(claims["sub"])
    except (jwt.PyJWTError, KeyError, ValueError) as exc:
        raise Unauthorized(f"invalid or expired token ({type(exc).__name__})") from exc
