"""A demo world: staff, investors who fund both tranches, borrowers trading with leverage into
the January 2016 circuit-breaker week. Used by `crowdlev serve --demo` and by the tests."""

from __future__ import annotations

from dataclasses import dataclass

from crowdleverage.api.deps import ApiState
from crowdleverage.api.security import Role
from crowdleverage.domain.errors import CrowdLevError
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
        u = st.users.create(
            name, password(name), Role.INVESTOR, f"出资人 {name}", kyc_status="approved"
        )
        users[name] = u.id
        p.enroll(u.id, "investor")
        p.deposit(u.id, dep * 100, f"DEMO-INV-{i:04d}")
        p.subscribe(u.id, tranche, sub * 100)
    p.end_of_day()  # the epoch closes: subscriptions become units
    accounts: dict[str, int] = {}
    for i, (name, tier, margin, reserve, _) in enumerate(BORROWERS):
        u = st.users.create(
            name,
            password(name),
            Role.BORROWER,
            f"被配资人 {name}",
            kyc_status="approved",
            credit_tier=tier,
        )
        users[name] = u.id
        p.enroll(u.id, "borrower")
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
