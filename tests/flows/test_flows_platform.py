"""The platform's use cases through the January 2016 crash, with DESIGN.md §8 invariants
checked after every tick, on SQLite and on PostgreSQL (the same use cases on both)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from crowdleverage.config import SHIPPED_DATA, Settings
from crowdleverage.custody.db import make_engine
from crowdleverage.domain import params as P
from crowdleverage.domain.errors import PlatformPaused, RuleViolation
from crowdleverage.flows.book import Kind
from crowdleverage.flows.market import MarketFeed
from crowdleverage.flows.model import AccountStatus, Tranche
from crowdleverage.flows.platform import Platform
from crowdleverage.market.bars import Bar, read_bars

MARKET = SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv"
INVESTOR_SENIOR, INVESTOR_JUNIOR, BORROWER = 1, 2, 3


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return read_bars(MARKET)


@pytest.fixture(params=["sqlite", "postgresql"])
def platform(request: pytest.FixtureRequest, tmp_path: Path, bars: list[Bar]) -> Iterator[Platform]:
    schema = None
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'custody.db'}")
    else:
        url = request.getfixturevalue("pg_url")
        schema = f"t_{uuid.uuid4().hex[:16]}"
        admin = sa.create_engine(url)
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        engine = make_engine(url, schema=schema)
    market = MarketFeed(bars, start=dt.date(2015, 12, 30))
    p = Platform(Settings(data_dir=tmp_path), engine=engine, market=market)
    yield p
    engine.dispose()
    if schema is not None:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def fund_pool(p: Platform, senior_fen: int, junior_fen: int) -> None:
    p.deposit(INVESTOR_SENIOR, senior_fen, "SENIOR-0001")
    p.deposit(INVESTOR_JUNIOR, junior_fen, "JUNIOR-0001")
    p.subscribe(INVESTOR_JUNIOR, Tranche.JUNIOR, junior_fen)
    p.subscribe(INVESTOR_SENIOR, Tranche.SENIOR, senior_fen)
    p.end_of_day()


def leverage_up(p: Platform, account_id: int, codes: list[str]) -> None:
    """Buy the given codes in chunks as large as the pre-trade checks allow."""
    acc = p.account(account_id)
    for code in codes:
        q = p.market.quote(code)
        for frac_pm in (380, 300, 200, 100):
            qty = p.gross_assets_fen(acc) * frac_pm // 1000 // q.price_fen // 100 * 100
            try:
                p.buy(account_id, code, qty, q.price_fen)
                break
            except RuleViolation:
                continue


def check_invariants(p: Platform) -> None:
    # 4: tranche claims (with insurance and fees) sum to pool assets = cash + Σ debt
    assert p.claims_fen() == p.pool_assets_fen()
    # 3 (via custody): double entry holds and the two records agree
    for t in p.ledger.totals():
        assert t.debits_posted == t.credits_posted and t.debits_pending == t.credits_pending
    assert p.cash.reconcile() == []
    for acc in p.accounts.values():
        assert acc.debt_fen >= 0
        for kind in (Kind.MARGIN, Kind.RESERVE):
            assert p.cash.balance(kind, acc.id) >= 0


def _crash_codes(p: Platform, n: int) -> list[str]:
    out = []
    for code in p.market.codes():
        q = p.market.quote(code)
        if not q.halted and not q.st and 300 <= q.price_fen <= 5_000 and code < "600000":
            out.append(code)
    return out[:n]


def test_crash_week_keeps_invariants_and_liquidates_below_the_line(platform: Platform) -> None:
    p = platform
    fund_pool(p, 800_000_000, 300_000_000)  # 8m + 3m 元
    p.deposit(BORROWER, 60_000_000, "BORROWER-0001")
    acc = p.open_margin_account(BORROWER, 3, 3)
    p.fund_account(acc.id, 50_000_000, reserve=False)
    leverage_up(p, acc.id, _crash_codes(p, 8))
    assert acc.debt_fen > 0
    assert p.ratio_bps(acc) >= P.TIERS[3].initial_ratio_bps  # pre-trade check held
    check_invariants(p)
    ratios_at_liquidation: list[int | None] = []
    p.listeners.append(
        lambda ev: (
            ratios_at_liquidation.append(p.ratio_bps(acc))
            if ev.kind == "liquidation_started"
            else None
        )
    )
    while p.market.today <= dt.date(2016, 1, 8) and not p.market.finished:
        p.tick()
        check_invariants(p)
    seen_liquidation = bool(ratios_at_liquidation)
    # 7: liquidation starts only below the liquidation line (after any reserve top-up)
    assert all(
        r is not None and r < P.TIERS[3].liquidation_ratio_bps for r in ratios_at_liquidation
    )
    assert seen_liquidation or acc.status is AccountStatus.LIQUIDATED, "the crash must bite"
    kinds = [e.kind for e in p.events]
    assert "margin_warning" in kinds and "liquidation_started" in kinds
    assert p.reconcile()["status"] == "ok"


def test_no_debt_account_can_withdraw_everything_and_anyone_can_repay(platform: Platform) -> None:
    p = platform
    fund_pool(p, 100_000_000, 40_000_000)
    p.deposit(BORROWER, 2_000_000, "BORROWER-0002")
    acc = p.open_margin_account(BORROWER, 1, 1)
    p.fund_account(acc.id, 1_500_000, reserve=False)
    p.pause("drill")
    with pytest.raises(PlatformPaused):
        p.withdraw_from_account(acc.id, 1_500_000, reserve=False)
    p.resume()
    p.withdraw_from_account(acc.id, 1_500_000, reserve=False)  # 10: no debt → all of it
    assert p.wallet_fen(BORROWER) == 2_000_000
    check_invariants(p)


def test_shortfall_goes_down_the_waterfall_junior_before_senior(platform: Platform) -> None:
    p = platform
    fund_pool(p, 100_000_000, 40_000_000)
    p.deposit(BORROWER, 10_000_000, "BORROWER-0003")
    acc = p.open_margin_account(BORROWER, 3, 3)
    p.fund_account(acc.id, 10_000_000, reserve=False)
    leverage_up(p, acc.id, _crash_codes(p, 8))
    debt = acc.debt_fen
    assert debt > 0
    assert p.insurance_fen == 0  # no interest accrued yet, so no premium to absorb losses
    senior_before = p.tranches[Tranche.SENIOR].claim_fen
    junior_before = p.tranches[Tranche.JUNIOR].claim_fen
    # the borrower's positions become worthless: everything they hold is written down
    # through the waterfall (a halted-forever, zero-recovery case)
    for code in list(acc.positions):
        del acc.positions[code]
    cash = p.cash.balance(Kind.MARGIN, acc.id)
    acc.status = AccountStatus.LIQUIDATING
    p.monitor()
    assert acc.status is AccountStatus.LIQUIDATED and acc.debt_fen == 0
    loss = debt - cash
    assert p.tranches[Tranche.SENIOR].claim_fen == senior_before  # 5: senior untouched
    assert p.tranches[Tranche.JUNIOR].claim_fen == junior_before - loss
    assert p.senior_deficit_fen == 0
    assert p.claims_fen() == p.pool_assets_fen()


def test_interest_accrues_rounded_up_and_is_distributed(platform: Platform) -> None:
    p = platform
    fund_pool(p, 100_000_000, 40_000_000)
    p.deposit(BORROWER, 10_000_000, "BORROWER-0004")
    acc = p.open_margin_account(BORROWER, 2, 2)
    p.fund_account(acc.id, 10_000_000, reserve=False)
    leverage_up(p, acc.id, _crash_codes(p, 6))
    debt = acc.debt_fen
    out = p.end_of_day()
    expected = -(-debt * P.TIERS[2].rate_apr_bps // (P.BPS * 365))
    assert out["interest_fen"] == expected == acc.debt_fen - debt
    parts = ("senior_fen", "junior_fen", "insurance_fen", "platform_fee_fen")
    assert sum(out[k] for k in parts) == expected
    assert out["insurance_fen"] * P.BPS >= expected * P.INSURANCE_PREMIUM_BPS
    check_invariants(p)


def test_restart_on_a_used_ledger_fails_closed(tmp_path: Path, bars: list[Bar]) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'custody.db'}")
    first = Platform(Settings(data_dir=tmp_path), engine=engine, market=MarketFeed(bars))
    first.deposit(INVESTOR_SENIOR, 1_000, "RESTART-0001")
    assert first.paused_reason is None
    again = Platform(Settings(data_dir=tmp_path), engine=engine, market=MarketFeed(bars))
    assert again.paused_reason is not None and "restart" in again.paused_reason
    with pytest.raises(PlatformPaused):
        again.deposit(INVESTOR_SENIOR, 1_000, "RESTART-0002")
    engine.dispose()


def test_restart_resumes_from_the_saved_book(tmp_path: Path, bars: list[Bar]) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'custody.db'}")
    start = dt.date(2015, 12, 30)
    first = Platform(Settings(data_dir=tmp_path), engine=engine,
                     market=MarketFeed(bars, start=start))  # fmt: skip
    fund_pool(first, 100_000_000, 40_000_000)  # its end of day saves the book
    first.deposit(BORROWER, 10_000_000, "RESUME-0001")
    acc = first.open_margin_account(BORROWER, 2, 2)
    first.fund_account(acc.id, 10_000_000, reserve=False)
    leverage_up(first, acc.id, _crash_codes(first, 5))
    first.tick()
    first.save()  # a clean shutdown
    again = Platform(Settings(data_dir=tmp_path), engine=engine,
                     market=MarketFeed(bars, start=start))  # fmt: skip
    assert again.paused_reason is None
    assert (again.market.today, again.market.step) == (first.market.today, first.market.step)
    restored = again.account(acc.id)
    assert restored.debt_fen == acc.debt_fen > 0
    assert {c: p.quantity for c, p in restored.positions.items()} == {
        c: p.quantity for c, p in acc.positions.items()
    }
    assert again.claims_fen() == again.pool_assets_fen() == first.pool_assets_fen()
    assert again.reconcile()["status"] == "ok"
    new = again.open_margin_account(BORROWER, 1, 2)
    assert new.id not in {acc.id} and new.id > max(o.id for o in first.orders)
    check_invariants(again)
    engine.dispose()


def test_restart_after_unsaved_money_moves_fails_closed(tmp_path: Path, bars: list[Bar]) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'custody.db'}")
    first = Platform(Settings(data_dir=tmp_path), engine=engine, market=MarketFeed(bars))
    fund_pool(first, 100_000_000, 40_000_000)  # saved at the end of day
    first.deposit(INVESTOR_SENIOR, 5_000, "AFTER-SAVE-1")  # then a crash: not saved
    again = Platform(Settings(data_dir=tmp_path), engine=engine, market=MarketFeed(bars))
    assert again.paused_reason is not None and "reconciliation break" in again.paused_reason
    assert any("WALLET/1" in b for b in again.last_reconciliation["breaks"])  # type: ignore[index]
    engine.dispose()
