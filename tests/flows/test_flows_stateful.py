"""Stateful property test of the platform's use cases: random deposits, subscriptions,
redemptions, margin funding, buys, sells, repayments, withdrawals, end of day and replay ticks
(the only price moves), with DESIGN.md §8 invariants checked after every step."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from crowdleverage.config import SHIPPED_DATA, Settings
from crowdleverage.custody.db import make_engine
from crowdleverage.domain import params as P
from crowdleverage.domain.errors import CrowdLevError
from crowdleverage.flows.book import Kind
from crowdleverage.flows.market import MarketFeed
from crowdleverage.flows.model import AccountStatus, Tranche
from crowdleverage.flows.platform import Platform
from crowdleverage.market.bars import read_bars

BARS = read_bars(SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv")
INVESTORS, BORROWERS = (1, 2), (3, 4)
LONG = os.environ.get("CROWDLEV_LONG") == "1"


class PlatformMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        path = Path(self.tmp.name)
        self.engine = make_engine(f"sqlite:///{path / 'custody.db'}")
        feed = MarketFeed(BARS, start=dt.date(2015, 12, 28), ticks_per_day=4)
        self.p = Platform(Settings(data_dir=path), engine=self.engine, market=feed)
        self.refs = 0
        self.codes = [c for c in feed.codes() if not feed.quote(c).halted and c < "600000"][:12]
        for inv in INVESTORS:
            self._deposit(inv, 50_000_000)
        self.p.subscribe(1, Tranche.SENIOR, 40_000_000)
        self.p.subscribe(2, Tranche.JUNIOR, 15_000_000)
        self.p.end_of_day()
        self.accounts: list[int] = []
        for b, tier in zip(BORROWERS, (2, 3), strict=True):
            self._deposit(b, 3_000_000)
            acc = self.p.open_margin_account(b, tier, tier)
            self.p.fund_account(acc.id, 2_000_000, reserve=False)
            self.accounts.append(acc.id)

    def teardown(self) -> None:
        self.engine.dispose()
        self.tmp.cleanup()

    def _deposit(self, user: int, amount: int) -> None:
        self.refs += 1
        self.p.deposit(user, amount, f"SM-{self.refs:06d}")

    def _try(self, fn, *args, **kw) -> bool:  # type: ignore[no-untyped-def]
        try:
            fn(*args, **kw)
        except CrowdLevError as err:
            event(f"{fn.__name__} refused ({err.code})")
            return False
        event(f"{fn.__name__} done")
        return True  # a refusal must leave nothing half-written: the invariants check it

    # ----------------------------------------------------------------------- rules

    @rule(user=st.sampled_from(INVESTORS + BORROWERS), amount=st.integers(1, 5_000_000))
    def deposit(self, user: int, amount: int) -> None:
        self._try(self._deposit, user, amount)

    @rule(user=st.sampled_from(INVESTORS), tranche=st.sampled_from(list(Tranche)),
          amount=st.integers(1, 10_000_000))  # fmt: skip
    def subscribe(self, user: int, tranche: Tranche, amount: int) -> None:
        self._try(self.p.subscribe, user, tranche, amount)

    @rule(user=st.sampled_from(INVESTORS), tranche=st.sampled_from(list(Tranche)),
          share_pm=st.integers(1, 1000))  # fmt: skip
    def redeem(self, user: int, tranche: Tranche, share_pm: int) -> None:
        units = self.p.holdings.get((user, tranche), 0) * share_pm // 1000
        self._try(self.p.redeem, user, tranche, units)

    @rule(i=st.integers(0, 1), amount=st.integers(1, 2_000_000), reserve=st.booleans())
    def fund(self, i: int, amount: int, reserve: bool) -> None:
        self._try(self.p.fund_account, self.accounts[i], amount, reserve=reserve)

    @rule(i=st.integers(0, 1), c=st.integers(0, 11), frac_pm=st.integers(10, 450))
    def buy(self, i: int, c: int, frac_pm: int) -> None:
        acc = self.p.account(self.accounts[i])
        code = self.codes[c]
        q = self.p.market.quote(code)
        qty = self.p.gross_assets_fen(acc) * frac_pm // 1000 // q.price_fen // 100 * 100
        healthy = acc.status is AccountStatus.HEALTHY
        if self._try(self.p.buy, acc.id, code, qty, q.price_fen) and healthy:
            # invariant 6: a buy never takes a healthy account below its initial ratio
            ratio = self.p.ratio_bps(acc)
            assert ratio is None or ratio >= P.TIERS[acc.tier].initial_ratio_bps

    @rule(i=st.integers(0, 1), frac_pm=st.integers(1, 1000))
    def sell(self, i: int, frac_pm: int) -> None:
        acc = self.p.account(self.accounts[i])
        for pos in list(acc.positions.values()):
            qty = pos.sellable(self.p.market.today) * frac_pm // 1000 // 100 * 100
            q = self.p.market.quote(pos.code)
            self._try(self.p.sell, acc.id, pos.code, qty, q.price_fen)

    @rule(i=st.integers(0, 1), frac_pm=st.integers(1, 1000))
    def repay(self, i: int, frac_pm: int) -> None:
        acc = self.p.account(self.accounts[i])
        cash = self.p.cash.balance(Kind.MARGIN, acc.id)
        self._try(self.p.repay, acc.id, min(cash, acc.debt_fen) * frac_pm // 1000)

    @rule(i=st.integers(0, 1), amount=st.integers(1, 3_000_000))
    def withdraw_from_account(self, i: int, amount: int) -> None:
        acc = self.p.account(self.accounts[i])
        before = acc.status
        if self._try(self.p.withdraw_from_account, acc.id, amount, reserve=False) and (
            before is AccountStatus.HEALTHY and acc.debt_fen
        ):
            ratio = self.p.ratio_bps(acc)
            assert ratio is not None and ratio >= P.WITHDRAWAL_FLOOR_WITH_DEBT_BPS

    @rule(user=st.sampled_from(INVESTORS + BORROWERS), amount=st.integers(1, 5_000_000))
    def withdraw(self, user: int, amount: int) -> None:
        self._try(self.p.withdraw, user, amount)

    @rule(steps=st.integers(1, 6))
    def tick(self, steps: int) -> None:
        for _ in range(steps):
            self.p.tick()

    @rule()
    def end_of_day(self) -> None:
        self.p.end_of_day()

    # ------------------------------------------------------------------ invariants

    @invariant()
    def pool_claims_equal_assets(self) -> None:
        assert self.p.claims_fen() == self.p.pool_assets_fen()

    @invariant()
    def two_records_agree(self) -> None:
        assert self.p.cash.reconcile() == []
        assert self.p.paused_reason is None

    @invariant()
    def nothing_negative(self) -> None:
        for (kind, _), bal in self.p.cash.balances.items():
            if kind in (Kind.WALLET, Kind.POOL, Kind.MARGIN, Kind.RESERVE):
                assert bal >= 0
        for acc in self.p.accounts.values():
            assert acc.debt_fen >= 0
        for t in Tranche:
            assert self.p.tranches[t].claim_fen >= 0 and self.p.tranches[t].units >= 0


PlatformMachine.TestCase.settings = settings(
    max_examples=60 if LONG else 10,
    stateful_step_count=50 if LONG else 25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
test_platform_state_machine = PlatformMachine.TestCase
