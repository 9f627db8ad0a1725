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
from crowdleverage.custody.db import write_transaction
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
LOGIN_WINDOW_S = 900  # failed logins older than this are forgotten
LOGIN_FREE_PER_PAIR = 5  # failures for one username from one address before the back-off
LOGIN_FREE_PER_ADDRESS = 10  # failures from one address (any usernames) before the back-off
LOGIN_FIRST_BACKOFF_S = 4  # the first wait; each further failure doubles it
LOGIN_MAX_BACKOFF_S = 300  # the longest wait between two tries
USERNAME_MAX = 64
PASSWORD_MAX = 128
CLIENT_MAX = 64
USER_ID_MAX = 2**31 - 1  # ids are 32-bit integers in every backend
CLOCK_SKEW_S = 60  # a token issued this far in the future is still accepted


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
        """The user, or Unauthorized; RateLimited while a back-off runs (see `LoginThrottle`).
        The back-off is checked before the password, so a throttled guess learns nothing."""
        if not 1 <= len(username) <= USERNAME_MAX or len(password) > PASSWORD_MAX:
            raise Unauthorized("wrong username or password")
        client = client[:CLIENT_MAX]
        now = int(time.time())
        throttle = LoginThrottle(self.engine)
        throttle.check(username, client, now)
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(store.users).where(store.users.c.username == username)
            ).first()
        try:
            _hasher.verify(row.password_hash if row is not None else _DUMMY_HASH, password)
            ok = row is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None:
            throttle.failed(username, client, now)
            raise Unauthorized("wrong username or password")
        throttle.succeeded(username, client)
        return _row_user(row)


class LoginThrottle:
    """Exponential back-off on failed logins, per client address and per (username, address).

    Policy (README "Logins"): after `LOGIN_FREE_PER_PAIR` failures for one username from one
    address, that address waits 4, 8, 16 … s (at most `LOGIN_MAX_BACKOFF_S`) after its last
    failure before its next try for that username; after `LOGIN_FREE_PER_ADDRESS` failures
    from one address over any usernames, the address waits the same way for every username.
    Failures older than `LOGIN_WINDOW_S` are forgotten and a success clears the pair's.
    Nothing is counted per username alone: someone else's failures from another address never
    delay the right password from a new address, so nobody can lock a known user out.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def check(self, username: str, client: str, now: int) -> None:
        t = store.login_failures
        since = now - LOGIN_WINDOW_S
        with self.engine.connect() as conn:
            pair = conn.execute(
                sa.select(sa.func.count(), sa.func.max(t.c.at_s)).where(
                    t.c.username == username, t.c.client == client, t.c.at_s > since
                )
            ).one()
            addr = conn.execute(
                sa.select(sa.func.count(), sa.func.max(t.c.at_s)).where(
                    t.c.client == client, t.c.at_s > since
                )
            ).one()
        wait = max(
            _backoff_s(int(pair[0]), LOGIN_FREE_PER_PAIR, pair[1], now),
            _backoff_s(int(addr[0]), LOGIN_FREE_PER_ADDRESS, addr[1], now),
        )
        if wait > 0:
            raise RateLimited(
                f"too many failed logins from this address; retry in {wait} s",
                retry_after_s=wait,
            )

    def failed(self, username: str, client: str, now: int) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(
                store.login_failures.insert().values(username=username, client=client, at_s=now)
            )

    def succeeded(self, username: str, client: str) -> None:
        t = store.login_failures
        with write_transaction(self.engine) as conn:
            conn.execute(t.delete().where(t.c.username == username, t.c.client == client))


def _backoff_s(failures: int, free: int, last_at_s: int | None, now: int) -> int:
    """Seconds still to wait after the last failure: 4 s, then doubling, capped."""
    if failures < free or last_at_s is None:
        return 0
    delay = min(LOGIN_MAX_BACKOFF_S, LOGIN_FIRST_BACKOFF_S * 2 ** min(failures - free, 20))
    return max(0, int(last_at_s) + delay - now)


def issue_token(user: User, secret: str, *, ttl_s: int = TOKEN_TTL_S) -> str:
    now = int(time.time())
    claims = {"sub": str(user.id), "role": user.role.value, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def decode_token(token: str, secret: str) -> int:
    """The user id in a valid, unexpired token; Unauthorized otherwise. The token must name a
    user id in range and live at most `TOKEN_TTL_S` (a token with a far `exp` is refused)."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "iat", "sub"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("expired token") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("invalid token") from exc
    sub, iat, exp = claims["sub"], claims["iat"], claims["exp"]
    if not (isinstance(sub, str) and sub.isascii() and sub.isdigit() and len(sub) <= 10):
        raise Unauthorized("invalid token: bad subject")
    user_id = int(sub)
    if not 1 <= user_id <= USER_ID_MAX:
        raise Unauthorized("invalid token: bad subject")
    if not (isinstance(iat, int) and isinstance(exp, int)) or isinstance(iat, bool):
        raise Unauthorized("invalid token: bad times")
    now = int(time.time())
    if iat > now + CLOCK_SKEW_S or exp - iat > TOKEN_TTL_S:
        raise Unauthorized("invalid token: lifetime longer than the platform issues")
    return user_id
