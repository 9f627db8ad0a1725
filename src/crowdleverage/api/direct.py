"""A typed call path for the platform process's writer (`service.writer`): queued withdrawal
commands run as one batch (`flows.Platform.withdraw_batch`: one recovery-point barrier, the
burns back to back, one commit) instead of one request each through the application.

`prepare` takes a queued request onto this path only when the endpoint
(`endpoints.money.withdraw`) would accept it, checked by the same code: the bearer token
(`decode_token`, the user store), the role (`require`), the path's user id, the body
(`schemas.AmountIn`, JSON), the Idempotency-Key's form, the holder and KYC checks
(`money._holder`, `money._kyc`). Anything else — another path, a cookie instead of a
bearer token, a body the model refuses, a refused check — answers None, and the writer sends
that request through the application as before, so every refusal is the endpoint's own
answer. A prepared withdrawal's answer is built as the endpoint's: the same command spec and
request hash (`idempotency.request_hash`), the same audit entry, the same response body and
headers (`Idempotent-Replayed` on a replay, the request id), a typed error through the
application's own handler (`app._error_response`).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from crowdleverage.api import schemas as S
from crowdleverage.api.deps import ID_MAX, ApiState
from crowdleverage.api.endpoints.money import _holder, _kyc
from crowdleverage.api.idempotency import _KEY_RE, request_hash
from crowdleverage.api.security import Role, User, decode_token
from crowdleverage.domain.errors import CrowdLevError
from crowdleverage.flows.commands import CommandSpec
from crowdleverage.flows.platform import Withdrawal

log = logging.getLogger("crowdleverage.api.direct")

WITHDRAWAL_PATH = re.compile(r"^/api/v1/users/([1-9][0-9]{0,9})/withdrawals$")
_RID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{8,64}$")  # as api.app's request ids
_ONE_OF = ("authorization", "content-type", "idempotency-key", "x-request-id")
MAX_BODY = 4096

Answer = tuple[int, list[tuple[str, str]], bytes]


@dataclass
class Seen:
    """The checks passed for the earlier requests of one batch: a token's user, a holder's
    ownership and KYC (nothing a withdrawal changes)."""

    users: dict[str, User] = field(default_factory=dict)
    holders: set[tuple[int, int]] = field(default_factory=set)


@dataclass(frozen=True)
class Prepared:
    item: Withdrawal
    request_id: str
    audit: tuple[str, str, dict[str, Any]]  # the endpoint's audit entry


def prepare(
    st: ApiState,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    seen: Seen | None = None,
) -> Prepared | None:
    """The withdrawal this request is, when the endpoint would run it; else None. `seen`:
    the checks passed for earlier requests of the same batch (a token's user, a holder's
    KYC), which nothing in between can change: not made again."""
    if method != "POST" or len(body) > MAX_BODY:
        return None
    m = WITHDRAWAL_PATH.match(path)
    if m is None or int(m.group(1)) > ID_MAX:
        return None
    user_id = int(m.group(1))
    h: dict[str, str] = {}
    for k, v in headers:
        k = k.lower()
        if k in h and k in _ONE_OF:
            return None  # the application decides which one counts
        h.setdefault(k, v)
    scheme, _, token = h.get("authorization", "").partition(" ")  # as OAuth2PasswordBearer
    if scheme.lower() != "bearer" or not token:
        return None
    ctype = h.get("content-type")
    if ctype is not None and ctype.split(";", 1)[0].strip().lower() != "application/json":
        return None
    key = h.get("idempotency-key")
    if key is None or not _KEY_RE.match(key):
        return None
    try:
        parsed = json.loads(body)
        amount = S.AmountIn.model_validate(parsed)
    except (ValueError, ValidationError):  # a JSONDecodeError is a ValueError
        return None
    seen = seen if seen is not None else Seen()
    try:
        user = seen.users.get(token)
        if user is None:
            user = st.users.get(decode_token(token, st.secret))
        if user.role not in (Role.INVESTOR, Role.BORROWER):
            return None
        if (user.id, user_id) not in seen.holders:
            _kyc(_holder(user, user_id, st, staff=()), st)
        seen.users[token] = user
        seen.holders.add((user.id, user_id))
    except CrowdLevError:
        return None
    spec = CommandSpec(user.id, key, request_hash("POST", path, amount), path)
    given = h.get("x-request-id", "")
    rid = given if _RID_RE.match(given) else uuid.uuid4().hex
    audit = (user.username, "withdrawal", {"user_id": user_id, **amount.model_dump()})
    item = Withdrawal(spec, user_id, amount.amount_fen, _respond, {"request_id": rid})
    return Prepared(item, rid, audit)


def _respond(out: dict[str, Any]) -> tuple[int, Any]:
    return 200, jsonable_encoder(S.WalletOut(**out))


def run(st: ApiState, batch: list[Prepared]) -> list[Answer]:
    """The prepared withdrawals as one batch; each one's response as the endpoint's."""
    from crowdleverage.api.app import _error_response

    entries = {id(p.item): p.audit for p in batch}

    def audit(done: list[Withdrawal]) -> None:  # the endpoint's entries, in one write
        st.audit.append_many([entries[id(w)] for w in done])

    results = st.platform.withdraw_batch([p.item for p in batch], audit)
    out: list[Answer] = []
    for p, r in zip(batch, results, strict=True):
        if isinstance(r, CrowdLevError):
            resp = _error_response(r)
        elif isinstance(r, Exception):  # logged where it happened; as app._unexpected
            resp = JSONResponse(
                {"error": "internal_error", "message": "internal error; retry later",
                 "details": {}}, status_code=500,
            )  # fmt: skip
        else:
            status, content, replayed = r
            extra = {"Idempotent-Replayed": "true"} if replayed else {}
            resp = JSONResponse(content, status_code=status, headers=extra)
        resp.headers["X-Request-ID"] = p.request_id
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers
                   if k != b"content-length"]  # fmt: skip
        out.append((resp.status_code, headers, bytes(resp.body)))
    return out
