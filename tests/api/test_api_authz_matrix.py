"""Authorization matrix: every endpoint × every role (and no token) × own/other object.

Expected: no token → 401; a role the endpoint does not serve → 403; an owning role on another
user's object → 404 (existence not revealed); otherwise 2xx. Public endpoints → 200 for all.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from api_world import (
    WORLD_KINDS,
    SplitWorld,
    World,
    application_body,
    make_world_of,
    referred_borrower,
)

from crowdleverage.api.published import EndOfDayStress
from crowdleverage.api.security import Role
from crowdleverage.market.bars import Bar

API = "/api/v1"
INV, BOR = Role.INVESTOR, Role.BORROWER
OP, CUS, BRK, CMP, AUD = Role.OPERATOR, Role.CUSTODIAN, Role.BROKER, Role.COMPLIANCE, Role.AUDITOR
LOGIN = {
    INV: "investor1",
    BOR: "borrower1",
    OP: "operator",
    CUS: "custodian",
    BRK: "broker",
    CMP: "compliance",
    AUD: "auditor",
}
_n = itertools.count(1)


@dataclass(frozen=True)
class Ep:
    method: str
    path: str  # {user}, {investor}, {account} are filled per case
    roles: frozenset[Role] = frozenset()
    owners: frozenset[Role] = frozenset()  # roles that only see their own objects
    body: Callable[[World], dict[str, Any]] | None = None
    public: bool = False
    form: bool = False
    kind: str | None = field(default=None)


def _order(w: World) -> dict[str, Any]:
    p = w.state.platform
    if not p.day_open:  # arrange: a session with fresh oracle prices
        p.tick()
    code = next(c for c in p.codes if not p.quote(c).halted)
    return {
        "side": "BUY",
        "code": code,
        "quantity": 100,
        "limit_price_fen": p.quote(code).price_fen,
    }


def _repay(w: World) -> dict[str, Any]:
    # arrange: one fen of cash in the account to repay with (the buys above used it all)
    w.state.platform.fund_account(w.ids.accounts["borrower1"], 1, reserve=False)
    return {"amount_fen": 1}


def _withdraw(w: World) -> dict[str, Any]:
    # arrange: margin well above the engine's 300% withdrawal line
    p, aid = w.state.platform, w.ids.accounts["borrower1"]
    view = p.account_view(p.account(aid))
    if view.ratio_bps is not None and view.ratio_bps < 40_000:
        p.deposit(w.uid("borrower1"), 3 * view.debt_fen, f"M-{next(_n):06d}")
        p.fund_account(aid, 3 * view.debt_fen, reserve=False)
    return {"amount_fen": 1, "kind": "reserve"}


def _new_user(_: World) -> dict[str, Any]:
    return {
        "username": f"staff{next(_n)}",
        "password": "staff-pass-1",
        "display_name": "S",
        "role": "broker",
    }


def _deposit(w: World) -> dict[str, Any]:
    return {"user_id": w.uid("investor1"), "amount_fen": 100, "bank_reference": f"M-{next(_n):06d}"}


HOLDERS = frozenset({INV, BOR})
ALL = frozenset(Role)
ENDPOINTS = [
    Ep("GET", "/me", ALL),
    Ep("GET", "/users", frozenset({OP, CMP, AUD})),
    Ep("POST", "/users", frozenset({OP}), body=_new_user),
    Ep(
        "POST",
        "/compliance/users/{investor}/kyc",
        frozenset({CMP}),
        body=lambda w: {"decision": "approved"},
    ),
    Ep("GET", "/users/{user}/wallet", HOLDERS | {OP, CUS, AUD}, HOLDERS, kind="user"),
    Ep("GET", "/users/{user}/statement", HOLDERS | {OP, CUS, AUD}, HOLDERS, kind="user"),
    Ep("GET", "/users/{user}/proof", HOLDERS | {AUD}, HOLDERS, kind="user"),
    Ep(
        "POST",
        "/users/{user}/withdrawals",
        HOLDERS,
        HOLDERS,
        body=lambda w: {"amount_fen": 1},
        kind="user",
    ),
    Ep("POST", "/custody/deposits", frozenset({CUS}), body=_deposit),
    Ep(
        "GET",
        "/investors/{investor}/holdings",
        frozenset({INV, OP, AUD}),
        frozenset({INV}),
        kind="investor",
    ),
    Ep(
        "POST",
        "/investors/{investor}/subscriptions",
        frozenset({INV}),
        frozenset({INV}),
        body=lambda w: {"tranche": "senior", "amount_fen": 1},
        kind="investor",
    ),
    Ep(
        "POST",
        "/investors/{investor}/redemptions",
        frozenset({INV}),
        frozenset({INV}),
        body=lambda w: {"tranche": "senior", "units": 1},
        kind="investor",
    ),
    Ep("POST", "/margin-accounts", frozenset({BOR}), body=lambda w: {"tier": 1}),
    Ep("GET", "/margin-accounts", frozenset({BOR, OP, AUD, BRK})),
    Ep(
        "GET",
        "/margin-accounts/{account}",
        frozenset({BOR, OP, AUD, BRK}),
        frozenset({BOR}),
        kind="account",
    ),
    Ep(
        "GET",
        "/margin-accounts/{account}/orders",
        frozenset({BOR, OP, AUD, BRK}),
        frozenset({BOR}),
        kind="account",
    ),
    Ep(
        "POST",
        "/margin-accounts/{account}/deposits",
        frozenset({BOR}),
        frozenset({BOR}),
        body=lambda w: {"amount_fen": 1, "kind": "margin"},
        kind="account",
    ),
    Ep(
        "POST",
        "/margin-accounts/{account}/withdrawals",
        frozenset({BOR}),
        frozenset({BOR}),
        body=_withdraw,
        kind="account",
    ),
    Ep(
        "POST",
        "/margin-accounts/{account}/orders",
        frozenset({BOR}),
        frozenset({BOR}),
        body=_order,
        kind="account",
    ),
    Ep(
        "POST",
        "/margin-accounts/{account}/repayments",
        frozenset({BOR}),
        frozenset({BOR}),
        body=_repay,
        kind="account",
    ),
    Ep("GET", "/broker/orders", frozenset({BRK, OP, AUD})),
    Ep("POST", "/operator/pause", frozenset({OP}), body=lambda w: {"reason": "matrix"}),
    Ep("POST", "/operator/resume", frozenset({OP})),
    Ep("POST", "/operator/end-of-day", frozenset({OP})),
    Ep("POST", "/operator/tick", frozenset({OP}), body=lambda w: {"steps": 1}),
    Ep("POST", "/operator/reconcile", frozenset({OP, CUS})),
    Ep("GET", "/risk/summary", frozenset({OP, AUD})),
    Ep("GET", "/risk/stream?max_events=1&interval_s=0.2", frozenset({OP, AUD})),
    Ep("GET", "/audit/reconciliation", frozenset({AUD, OP, CUS})),
    Ep("GET", "/audit/proof-of-liabilities", frozenset({AUD, OP})),
    Ep("GET", "/audit/log", frozenset({AUD, OP})),
    Ep(
        "POST",
        "/onboarding/applications",
        HOLDERS,
        body=lambda w: application_body(w, band=None),
    ),
    Ep("GET", "/onboarding/applications/me", HOLDERS),
    Ep("GET", "/compliance/onboarding", frozenset({CMP, AUD})),
    Ep("GET", "/compliance/onboarding/users/{investor}", frozenset({CMP, AUD})),
    Ep(
        "POST",
        "/compliance/onboarding/users/{referral}/override",
        frozenset({CMP}),
        body=lambda w: {"outcome": "approve", "tier": 1, "reason": "income verified by phone"},
    ),
    Ep(
        "POST",
        "/compliance/onboarding/users/{borrower}/review",
        frozenset({CMP}),
        body=lambda w: {},
    ),
    Ep("GET", "/compliance/credit/population", frozenset({CMP, OP})),
    Ep("GET", "/status", public=True),
    Ep("GET", "/public/transparency", public=True),
    Ep("GET", "/public/stress", public=True),
    # issue 16: statements, confirmations, notifications, attestations, operator views
    Ep("GET", "/users/{user}/statements?month=2015-12", HOLDERS | {OP, CUS, AUD}, HOLDERS,
       kind="user"),
    Ep("GET", "/users/{user}/confirmations", HOLDERS | {OP, CUS, AUD}, HOLDERS, kind="user"),
    Ep("GET", "/users/{user}/confirmations/{conf}", HOLDERS | {OP, CUS, AUD}, HOLDERS,
       kind="user"),
    Ep("GET", "/notifications", ALL),
    Ep("POST", "/notifications/read", ALL, body=lambda w: {}),
    Ep("GET", "/notifications/preferences", ALL),
    Ep("PUT", "/notifications/preferences", ALL, body=lambda w: {"lang": "zh"}),
    Ep("GET", "/mails", ALL),
    Ep("POST", "/audit/attestations", frozenset({AUD}),
       body=lambda w: {"period_start": "2015-12-01", "period_end": "2015-12-31"}),
    Ep("GET", "/public/attestations", public=True),
    Ep("GET", "/public/attestations/{att}", public=True),
    Ep("GET", "/public/attestations/{att}/report.pdf", public=True),
    Ep("POST", "/operator/control", frozenset({OP}),
       body=lambda w: {"action": "pause", "reason": "matrix"}),
    Ep("GET", "/operator/accounts/{account}", frozenset({OP, AUD}), kind="account"),
    Ep("GET", "/operator/liquidations/waiting", frozenset({OP, AUD})),
    Ep("GET", "/operator/end-of-day-report", frozenset({OP, AUD})),
]  # fmt: skip


@pytest.fixture(scope="module", params=WORLD_KINDS)
def mworld(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    market_bars: list[Bar],
) -> Iterator[World]:
    """The matrix twice: against the application with the platform in process, and against
    an API worker's application with the platform's writer running the command queue
    (`api_world.SplitWorld`: the split service's code paths in one process)."""
    tmp = tmp_path_factory.mktemp(f"matrix-{request.param}")
    w = make_world_of(request.param, tmp, market_bars, trade=True)
    stress = EndOfDayStress(w.state.platform.settings.data_dir)  # /public/stress has a result
    stress.day_closed(w.state.platform.market.today)
    stress.join(timeout=300)
    yield w
    if isinstance(w, SplitWorld):
        # every platform request went through the queue: the writer ran the writes and the
        # first reads of each view (later reads are answered from the stored views)
        assert w.writer.done >= 300, w.writer.done
    w.close()


def _path(w: World, ep: Ep, role: Role | None, own: bool) -> str:
    owner_user = "borrower1" if role is BOR else "investor1"
    ids = {
        "user": w.uid(owner_user) if own else w.uid("investor2"),
        "investor": w.uid("investor1") if own else w.uid("investor2"),
        "account": w.ids.accounts["borrower1" if own else "borrower2"],
        "borrower": w.uid("borrower2"),
    }
    ids["conf"] = "L1"  # every demo holder's first statement line (a deposit)
    if "{att}" in ep.path:  # an attestation to read
        from crowdleverage.reports.wiring import attestations_of

        att = attestations_of(w.state)
        items, _ = att.page(1, 0)
        ids["att"] = items[0]["id"] if items else att.create(
            w.state.platform, "2015-12-01", "2015-12-31", "auditor")["id"]  # fmt: skip
    if "{referral}" in ep.path:  # a fresh referred application for each case
        ids["referral"] = referred_borrower(w) if role is CMP else w.uid("investor1")
    return API + ep.path.format(**ids)


def _expected(ep: Ep, role: Role | None, own: bool) -> str:
    if ep.public:
        return "2xx"
    if role is None:
        return "401"
    if role not in ep.roles:
        return "403"
    if ep.kind is not None and role in ep.owners and not own:
        return "404"
    return "2xx"


CASES = [
    pytest.param(
        ep, role, own, id=f"{ep.method} {ep.path} {role or 'anon'} {'own' if own else 'other'}"
    )
    for ep in ENDPOINTS
    for role in [None, *Role]
    for own in (True, False)
    if not (own is False and ep.kind is None)  # objectless endpoints: one case per role
]


@pytest.mark.parametrize(("ep", "role", "own"), CASES)
def test_authorization_matrix(mworld: World, ep: Ep, role: Role | None, own: bool) -> None:
    headers = {"Idempotency-Key": f"matrix-{next(_n):08d}"}
    if role is not None:
        headers["Authorization"] = f"Bearer {mworld.login(LOGIN[role])}"
    kwargs: dict[str, Any] = {"headers": headers}
    if ep.body is not None:
        kwargs["json"] = ep.body(mworld)
    r = mworld.client.request(ep.method, _path(mworld, ep, role, own), **kwargs)
    if mworld.state.platform.paused_reason is not None:
        mworld.state.platform.resume()
    got = "2xx" if 200 <= r.status_code < 300 else str(r.status_code)
    assert got == _expected(ep, role, own), r.text[:300]
    if got != "2xx":
        assert set(r.json()) == {"error", "message", "details"}


def test_matrix_covers_every_route(mworld: World) -> None:
    schema = mworld.client.get("/openapi.json").json()
    routes = {
        (method.upper(), path.removeprefix(API))
        for path, ops in schema["paths"].items()
        if path.startswith(API)
        for method in ops
    }
    listed = {
        (
            ep.method,
            ep.path.split("?")[0]
            .replace("{investor}", "{user_id}")
            .replace("{user}", "{user_id}")
            .replace("{account}", "{account_id}")
            .replace("{referral}", "{user_id}")
            .replace("{borrower}", "{user_id}")
            .replace("{conf}", "{conf_id}")
            .replace("{att}", "{att_id}"),
        )
        for ep in ENDPOINTS
    }
    public = {("POST", "/auth/token"), ("POST", "/auth/register")}
    assert routes - public == listed
