"""A demo world: staff, investors who fund both tranches, borrowers trading with leverage into
the January 2016 circuit-breaker week. Used by `crowdlev serve --demo` and by the tests.

Investors and borrowers are onboarded through the onboarding pipeline (KYC, sanctions,
suitability, credit score, decision, identity and tier on chain): each borrower applies with the
credit record of a real applicant of the shipped Taiwan data whose PD under the model in use
earns the borrower's tier (`CREDIT_BANDS`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from crowdleverage.api.deps import ApiState
from crowdleverage.api.endpoints.onboarding import ApplicationIn, onboard
from crowdleverage.api.security import Role, User
from crowdleverage.compliance import samples
from crowdleverage.config import SHIPPED_DATA
from crowdleverage.credit.samples import pick
from crowdleverage.domain.errors import ConfigError, CrowdLevError
from crowdleverage.flows.model import Tranche
from crowdleverage.market.rules import LOT

# (username, role, display name, password); passwords are for the local demo only.
STAFF = [
    ("operator", Role.OPERATOR, "平台运营 Operator"),
    ("custodian", Role.CUSTODIAN, "托管银行 Custodian"),
    ("broker", Role.BROKER, "券商 Broker"),
    ("compliance", Role.COMPLIANCE, "合规 Compliance"),
    ("auditor", Role.AUDITOR, "审计 Auditor"),
]
# (username, tranche, deposit 元, subscription 元)
INVESTORS = [
    ("investor1", Tranche.SENIOR, 30_000_000, 28_000_000),
    ("investor2", Tranche.SENIOR, 20_000_000, 18_000_000),
    ("investor3", Tranche.JUNIOR, 12_000_000, 12_000_000),
]
# (username, tier, margin 元, reserve 元, how much of the allowed financing to use, ‰)
BORROWERS = [
    ("borrower1", 1, 2_000_000, 500_000, 600),
    ("borrower2", 2, 2_000_000, 0, 900),
    ("borrower3", 3, 1_500_000, 300_000, 950),
    ("borrower4", 3, 1_000_000, 0, 1000),
]
PASSWORD_SUFFIX = "-demo-pass"
# The PD band (credit/policy.py) that earns each tier; every demo borrower is C5 and qualified.
CREDIT_BANDS = {1: (0.08, 0.15), 2: (0.04, 0.08), 3: (0.0, 0.04)}
CREDIT_DATA = SHIPPED_DATA / "credit" / "credit_taiwan_default_30000_uci.csv"
NAMES = ["王建国", "李秀英", "张伟", "刘洋", "陈静", "杨帆", "赵磊"]
C5_ANSWERS = {"age": 4, "income": 3, "assets": 3, "experience": 3, "knowledge": 2,
              "horizon": 2, "loss": 3}  # fmt: skip


def password(username: str) -> str:
    return username + PASSWORD_SUFFIX


@dataclass
class DemoIds:
    users: dict[str, int]
    accounts: dict[str, int]


def seed(st: ApiState, *, trade: bool = True) -> DemoIds:
    """Staff, investors whose subscriptions execute at a first epoch close, borrowers with
    margin and reserve; with `trade`, the replay's first day is opened and the borrowers'
    buy orders are requested (they fill over the next ticks)."""
    users: dict[str, int] = {}
    for name, role, display in STAFF:
        users[name] = st.users.create(name, password(name), role, display).id
    p = st.platform
    for i, (name, tranche, dep, sub) in enumerate(INVESTORS):
        u = st.users.create(name, password(name), Role.INVESTOR, f"出资人 {name}")
        users[name] = u.id
        _apply(st, u, i, None)
        p.deposit(u.id, dep * 100, f"DEMO-INV-{i:04d}")
        p.subscribe(u.id, tranche, sub * 100)
    p.end_of_day()  # the epoch closes: subscriptions become units
    accounts: dict[str, int] = {}
    for i, (name, tier, margin, reserve, _) in enumerate(BORROWERS):
        u = st.users.create(name, password(name), Role.BORROWER, f"被配资人 {name}")
        users[name] = u.id
        rec = _apply(st, u, len(INVESTORS) + i, _credit_records(st)[i])
        if rec["status"] != "approved" or rec["tier"] != tier:
            raise ConfigError(f"demo: {name} was {rec['status']} at tier {rec['tier']}, not {tier}")
        p.deposit(u.id, (margin + reserve + 100_000) * 100, f"DEMO-BOR-{i:04d}")
        acc = p.open_margin_account(u.id, tier, tier)
        accounts[name] = acc.id
        p.fund_account(acc.id, margin * 100, reserve=False)
        if reserve:
            p.fund_account(acc.id, reserve * 100, reserve=True)
    if trade:
        p.tick()  # the first day opens: the oracle has prices, the engine can check orders
        for i, (name, _tier, margin, _, use_pm) in enumerate(BORROWERS):
            request_positions(st, accounts[name], margin * 100, offset=i * 6, use_pm=use_pm)
    p.snapshot_liabilities()  # an epoch that includes the borrowers
    p.reconcile()
    return DemoIds(users, accounts)


def _credit_records(st: ApiState) -> list[dict[str, Any]]:
    return _picked(st.onboarding().model().version, tuple(t for _, t, *_ in BORROWERS), st)


def _picked(version: str, tiers: tuple[int, ...], st: ApiState) -> list[dict[str, Any]]:
    """Real applicants whose PD earns each tier (found once per model version)."""
    key = (version, tiers)
    if key not in _PICKED:
        model = st.onboarding().model()
        _PICKED[key] = pick(model, CREDIT_DATA, [CREDIT_BANDS[t] for t in tiers])
    return _PICKED[key]


_PICKED: dict[tuple[str, tuple[int, ...]], list[dict[str, Any]]] = {}


def _apply(st: ApiState, user: User, n: int, credit: dict[str, Any] | None) -> dict[str, Any]:
    body = ApplicationIn(
        name=NAMES[n % len(NAMES)], id_number=samples.resident_id(100 + n),
        phone=samples.phone(1000 + n), bank_card=samples.bank_card(1000 + n),
        document_expiry=dt.date.today() + dt.timedelta(days=3650),
        questionnaire=C5_ANSWERS, financial_assets_fen=500_000_000,
        avg_annual_income_fen=60_000_000, experience_years=8, credit=credit or {},
    )  # fmt: skip
    rec, _ = onboard(st, user, body)
    return rec


def request_positions(
    st: ApiState, account_id: int, equity_fen: int, *, offset: int, use_pm: int, n: int = 10
) -> int:
    """Request buys in up to `n` securities for `use_pm` ‰ of the financing the tier allows,
    each at most 38% of the equity (the engine's concentration limit is 40%) at a limit 1%
    above the price (within the band); the engine refuses what its pre-trade checks do not
    allow, which just ends that request. Returns the requests accepted."""
    p = st.platform
    acc = p.account(account_id)
    lev = {1: 1, 2: 2, 3: 3}[acc.tier]
    target = equity_fen + equity_fen * lev * use_pm // 1000
    codes = p.codes[offset:] + p.codes[:offset]
    placed = 0
    for code in codes:
        if placed >= n:
            break
        q = p.quote(code)
        if q.halted or q.at_limit_up:
            continue
        limit = min(q.price_fen + q.price_fen // 100, q.limit_up_fen or q.price_fen)
        qty = min(target // n, equity_fen * 38 // 100) // limit // LOT * LOT
        if qty < LOT:
            continue
        try:
            p.buy(account_id, code, qty, limit)
        except CrowdLevError:
            continue
        placed += 1
    return placed
