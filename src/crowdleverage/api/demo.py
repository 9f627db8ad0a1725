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
    users: dict[str, int] = {}
    for name, role, display in STAFF:
        users[name] = st.users.create(name, password(name), role, display).id
    p = st.platform
    for i, (name, tranche, dep, sub) in enumerate(INVESTORS):
        u = st.users.create(
            name, password(name), Role.INVESTOR, f"出资人 {name}", kyc_status="approved"
        )
        users[name] = u.id
        p.deposit(u.id, dep * 100, f"DEMO-INV-{i:04d}")
        p.subscribe(u.id, tranche, sub * 100)
    p.end_of_day()  # epoch: subscriptions become units
    accounts: dict[str, int] = {}
    for i, (name, tier, margin, reserve, use_pm) in enumerate(BORROWERS):
        u = st.users.create(
            name,
            password(name),
            Role.BORROWER,
            f"被配资人 {name}",
            kyc_status="approved",
            credit_tier=tier,
        )
        users[name] = u.id
        p.deposit(u.id, (margin + reserve + 100_000) * 100, f"DEMO-BOR-{i:04d}")
        acc = p.open_margin_account(u.id, tier, tier)
        accounts[name] = acc.id
        p.fund_account(acc.id, margin * 100, reserve=False)
        if reserve:
            p.fund_account(acc.id, reserve * 100, reserve=True)
        if trade:
            build_positions(st, acc.id, offset=i * 9, use_pm=use_pm)
    p.monitor()
    p.snapshot_liabilities()  # an epoch that includes the borrowers' wallets
    p.reconcile()
    return DemoIds(users, accounts)


def build_positions(st: ApiState, account_id: int, *, offset: int, use_pm: int) -> None:
    """Buy up to eight securities, each ≤ 30% of the account, financing up to `use_pm` ‰ of
    what the tier allows; refusals of the pre-trade checks just end a step."""
    p = st.platform
    acc = p.account(account_id)
    tier_lev = {1: 1, 2: 2, 3: 3}[acc.tier]
    equity = p.gross_assets_fen(acc) - acc.debt_fen
    target_gross = equity + equity * tier_lev * use_pm // 1000
    codes = [c for c in p.market.codes() if not p.market.quote(c).halted]
    bought = 0
    for code in codes[offset:] + codes[:offset]:
        if bought >= 8:
            break
        q = p.market.quote(code)
        if q.st or q.at_limit_up or q.price_fen > 10_000:
            continue
        room = target_gross - p.gross_assets_fen(acc)
        if room < target_gross // 50:
            break
        for frac_pm in (380, 300, 200, 100):
            chunk = min(room, p.gross_assets_fen(acc) * frac_pm // 1000)
            qty = chunk // q.price_fen // LOT * LOT
            if qty < LOT:
                break
            try:
                p.buy(account_id, code, qty, q.price_fen)
            except CrowdLevError:
                continue
            bought += 1
            break
