"""The platform facade through the January 2016 crash, on SQLite and on PostgreSQL: the
contracts decide, custody and the chain stay reconciled after every trading day, and a
restarted service resumes from the chain, the custody ledger and its saved record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from flows_world import (
    BORROWER,
    INVESTOR_JUNIOR,
    INVESTOR_SENIOR,
    MARKET,
    START,
    custody_engine,
    fund_pool,
    lever_up,
    open_platform,
)

from crowdleverage.custody.db import make_engine
from crowdleverage.domain import params as P
from crowdleverage.domain.errors import NotFound, PlatformPaused, ServiceUnavailable
from crowdleverage.flows.market import MarketFeed
from crowdleverage.flows.model import Tranche
from crowdleverage.flows.platform import Platform
from crowdleverage.market.bars import Bar, read_bars


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return read_bars(MARKET)


@pytest.fixture(params=["sqlite", "postgresql"])
def platform(request: pytest.FixtureRequest, tmp_path: Path, bars: list[Bar]) -> Iterator[Platform]:
    with custody_engine(request, tmp_path) as engine:
        p = open_platform(tmp_path, engine, bars)
        yield p
        p.close()


def check_invariants(p: Platform) -> None:
    # 1-3: every reference once, supply = custody liabilities, each address = its account
    rep = p.reconcile()
    assert rep["status"] == "ok", rep["breaks"]
    assert rep["chain"]["supply_fen"] == rep["chain"]["custody_cash_fen"]
    # double entry holds in the custody ledger
    for t in p.ledger.totals():
        assert t.debits_posted == t.credits_posted and t.debits_pending == t.credits_pending
    # 4: tranche claims (with pending interest) sum to the pool's assets
    assert rep["claims_fen"] == rep["pool_assets_fen"]


# 30 s per database: SQLite only; the other flows below run on both
@pytest.mark.parametrize("platform", ["sqlite"], indirect=True)
def test_crash_week_keeps_invariants_and_liquidates_below_the_line(platform: Platform) -> None:
    p = platform
    fund_pool(p, 800_000_000, 300_000_000)  # 8m + 3m 元
    p.deposit(BORROWER, 60_000_000, "BORROWER-0001")
    acc = p.open_margin_account(BORROWER, 3, 3)
    p.fund_account(acc.id, 50_000_000, reserve=False)
    p.fund_account(acc.id, 2_000_000, reserve=True)
    lever_up(p, acc.id, 50_000_000)
    view = p.account_view(acc)
    assert view.debt_fen > 0 and view.ratio_bps is not None
    assert view.ratio_bps >= P.TIERS[3].initial_ratio_bps  # the engine's pre-trade check held
    check_invariants(p)
    days = 0
    stop_shown: int | None = None
    while p.market.today <= dt.date(2016, 1, 8):
        before = p.market.today
        p.tick()
        if p.market.today != before:  # a day closed: its end of day ran
            days += 1
            check_invariants(p)
        if stop_shown is None and p.day_open:  # the margin page shows the stop once recorded
            from crowdleverage.chain.structs import read_reference
            from crowdleverage.web.margin import margin_view, nav_stop_assets

            mv = margin_view(p, acc)
            who = p.fin.address(acc.owner_id)
            ref = read_reference(p.chain, who)
            if ref.assets and mv.status != "liquidating":
                stop_shown = mv.stop_assets_fen
                assert stop_shown == nav_stop_assets(
                    mv.debt_fen, ref.assets, ref.equity, P.NAV_STOP_BPS
                )
                assert stop_shown is not None and 0 < stop_shown < mv.assets_fen
                assert mv.to_json()["stop_assets_fen"] == stop_shown
    assert days >= 5
    assert stop_shown is not None, "the keeper recorded a reference before the stop acted"
    kinds = [e.kind for e in p.events]
    # the NAV stop (5% of the reference assets, recorded when the debt was drawn) acts on
    # 01-04 before the ratio reaches the warning line: a full liquidation, the reserve unused
    assert "liquidation_started" in kinds, kinds
    assert "auto_top_up" not in kinds
    liq = [o for o in p.orders_of(acc.id) if o.liquidation]
    assert liq and any(o.filled_qty for o in liq)  # the keeper's sells reached the exchange
    lines = {x["kind"] for x in p.history[BORROWER]}
    assert {"buy", "liquidation_sell"} <= lines
    assert p.paused_reason is None


def test_interest_is_distributed_at_the_epoch_close(platform: Platform) -> None:
    p = platform
    fund_pool(p, 2_000_000, 100_000_000)  # a small senior claim: its target leaves a rest
    p.deposit(BORROWER, 60_000_000, "BORROWER-0002")
    acc = p.open_margin_account(BORROWER, 2, 2)
    p.fund_account(acc.id, 10_000_000, reserve=False)
    lever_up(p, acc.id, 10_000_000, n=4)  # within 5% platform exposure per security
    principal = p.account_view(acc).debt_fen
    assert principal > 0
    p.end_of_day()
    p.tick()
    p.fund_account(acc.id, 40_000_000, reserve=False)
    debt = p.account_view(acc).debt_fen
    assert debt > principal  # interest accrues per second on the engine's index
    p.repay(acc.id, debt)  # interest reaches the pool when it is paid
    assert p.account_view(acc).debt_fen == 0
    out = p.end_of_day()
    assert out["interest_fen"] > 0
    parts = ("senior_fen", "junior_fen", "insurance_fen", "platform_fee_fen")
    assert sum(out[k] for k in parts) == out["interest_fen"] >= debt - principal
    # senior first up to its target rate, then the insurance premium and the platform fee,
    # junior takes the rest (TranchePool's waterfall)
    assert 0 < out["senior_fen"] < out["interest_fen"]
    assert out["insurance_fen"] > 0 and out["platform_fee_fen"] > 0 and out["junior_fen"] > 0
    assert p.nav_e4(Tranche.JUNIOR) >= 10_000 and p.nav_e4(Tranche.SENIOR) > 10_000
    check_invariants(p)


def test_no_debt_account_withdraws_everything_and_repay_works_while_paused(
    platform: Platform,
) -> None:
    p = platform
    fund_pool(p, 400_000_000, 100_000_000)
    p.deposit(BORROWER, 5_000_000, "BORROWER-0003")
    acc = p.open_margin_account(BORROWER, 1, 1)
    p.fund_account(acc.id, 5_000_000, reserve=False)
    p.withdraw_from_account(acc.id, 5_000_000, reserve=False)  # no debt: all of it
    assert p.wallet_fen(BORROWER) == 5_000_000
    p.fund_account(acc.id, 5_000_000, reserve=False)
    lever_up(p, acc.id, 5_000_000, n=4)
    p.pause("drill")
    with pytest.raises(PlatformPaused):
        p.fund_account(acc.id, 1, reserve=False)
    debt = p.account_view(acc).debt_fen
    assert debt > 0
    p.repay(acc.id, min(debt, p.account_view(acc).cash_fen or 1))  # invariant 10
    p.resume()
    assert p.paused_reason is None and not p.chain.call("MarginEngine", "paused")


def test_restart_resumes_from_chain_custody_and_the_saved_record(
    tmp_path: Path, bars: list[Bar]
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'custody.db'}")
    first = open_platform(tmp_path, engine, bars)
    fund_pool(first, 100_000_000, 40_000_000)
    first.deposit(BORROWER, 10_000_000, "RESUME-0001")
    acc = first.open_margin_account(BORROWER, 2, 2)
    first.fund_account(acc.id, 10_000_000, reserve=False)
    lever_up(first, acc.id, 10_000_000, n=4)
    first.end_of_day()  # saved
    first.deposit(INVESTOR_SENIOR, 5_000, "AFTER-SAVE-1")  # then the process dies
    view = first.account_view(acc)
    orders = [(o.id, o.status, o.filled_qty) for o in first.orders_of(acc.id)]
    first.close()

    again = open_platform(tmp_path, engine, bars)
    assert again.paused_reason is None
    assert again.market.today > START  # the next trading day, as saved
    assert again.account_view(again.account(acc.id)) == view
    assert [(o.id, o.status, o.filled_qty) for o in again.orders_of(acc.id)] == orders
    assert again.wallet_fen(INVESTOR_SENIOR) == 5_000  # nothing lost: chain and custody agree
    refs = [x.get("reference") for x in again.history[INVESTOR_SENIOR]]
    assert "AFTER-SAVE-1" in refs  # the record is saved after every use case
    check_invariants(again)
    again.tick()  # the replay goes on from there
    assert again.day_open
    again.close()
    engine.dispose()


def test_restart_with_a_tampered_ledger_fails_closed(tmp_path: Path, bars: list[Bar]) -> None:
    from crowdleverage.custody.service import TransferCode
    from crowdleverage.custody.types import Transfer
    from crowdleverage.flows.platform import investor_id

    engine = make_engine(f"sqlite:///{tmp_path / 'custody.db'}")
    first = open_platform(tmp_path, engine, bars)
    fund_pool(first, 100_000_000, 40_000_000)
    inv = first.custody.investor_account_id(investor_id(INVESTOR_SENIOR))
    first.close()
    first.ledger.create_transfers(
        [Transfer(4242, first.custody.bank_cash_id, inv, 99, 156, TransferCode.DEPOSIT)]
    )
    again = open_platform(tmp_path, engine, bars)
    assert again.paused_reason is not None and "reconciliation break" in again.paused_reason
    with pytest.raises(PlatformPaused):
        again.deposit(INVESTOR_SENIOR, 1_000, "AFTER-TAMPER")
    again.close()
    engine.dispose()


def test_a_security_without_a_bar_is_valued_halted_at_its_last_close(bars: list[Bar]) -> None:
    feed = MarketFeed(bars, start=START)
    # the first day on which a security of the day before has no bar
    i = next(
        i for i in range(1, len(feed.days)) if set(feed.days[i - 1].bars) - set(feed.days[i].bars)
    )
    before = feed.days[i - 1].bars
    code = sorted(set(before) - set(feed.days[i].bars))[0]
    feed.seek(feed.days[i].date, 0)
    with pytest.raises(NotFound):
        feed.quote(code)
    q = feed.quote_or_last(code)
    assert q.halted and q.price_fen == before[code].close and q.limit_down_fen is None


def test_end_of_day_while_paused_defers_the_epoch(platform: Platform) -> None:
    p = platform
    fund_pool(p, 400_000_000, 100_000_000)
    p.deposit(INVESTOR_JUNIOR, 1_000_000, "JUNIOR-0002")
    p.subscribe(INVESTOR_JUNIOR, Tranche.JUNIOR, 1_000_000)
    p.tick()
    p.pause("drill")
    out = p.end_of_day()  # the day still ends; the pool's epoch waits
    assert out["executed"] == 0 and "epoch_deferred" in [e.kind for e in p.events]
    assert [q["amount"] for q in p.holdings(INVESTOR_JUNIOR)["queued"]] == [1_000_000]
    p.resume()
    assert p.end_of_day()["executed"] == 1
    check_invariants(p)


def test_a_deposit_that_custody_cannot_book_leaves_nothing_behind(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = platform
    real = p.custody.import_statement

    def down(data: bytes, source: str = "<camt.053>") -> object:
        raise ServiceUnavailable("custody database unreachable")

    monkeypatch.setattr(p.custody, "import_statement", down)
    with pytest.raises(ServiceUnavailable):
        p.deposit(INVESTOR_SENIOR, 7_000, "FLAKY-0001")
    monkeypatch.setattr(p.custody, "import_statement", real)
    assert p.wallet_fen(INVESTOR_SENIOR) == 0
    p.deposit(INVESTOR_SENIOR, 7_000, "FLAKY-0001")  # the same reference books once now
    p.deposit(INVESTOR_SENIOR, 1_000, "FLAKY-0002")  # the bank's statements still chain
    assert p.wallet_fen(INVESTOR_SENIOR) == 8_000
    check_invariants(p)


def test_the_stressed_regime_goes_on_chain_and_stops_new_financing(
    tmp_path: Path, bars: list[Bar]
) -> None:
    from crowdleverage.chain.margin import ORDERBOOK
    from crowdleverage.domain.errors import ContractRevert

    engine = make_engine(f"sqlite:///{tmp_path / 'custody.db'}")
    p = open_platform(tmp_path, engine, bars)
    try:
        fund_pool(p, 800_000_000, 300_000_000)
        p.deposit(BORROWER, 60_000_000, "BORROWER-0003")
        acc = p.open_margin_account(BORROWER, 3, 3)
        p.fund_account(acc.id, 50_000_000, reserve=False)
        while p.market.today < dt.date(2016, 1, 5) or not p.day_open:
            p.tick()
            if p.market.today <= dt.date(2016, 1, 4):  # calm closes until the breaker
                assert int(p.chain.call(ORDERBOOK, "regime")) == 0
        # the 2016-01-04 close (72% of the sample at limit-down) was published before 01-05
        assert int(p.chain.call(ORDERBOOK, "regime")) == 1
        changed = [e for e in p.events if e.kind == "regime_changed"]
        assert len(changed) == 1 and "2016-01-04" in changed[0].message
        codes = [c for c in p.codes if not p.quote(c).halted and not p.quote(c).at_limit_up]

        def qty(code: str, share_pct: int) -> int:
            return 50_000_000 * share_pct // 100 // p.quote(code).price_fen // 100 * 100

        for code in codes[:3]:  # ~90% of the cash in three buys: from own cash, allowed
            p.buy(acc.id, code, qty(code, 30), p.quote(code).price_fen)
        assert p.account_view(acc).debt_fen == 0
        with pytest.raises(ContractRevert, match="stressed regime: no new financing"):
            p.buy(acc.id, codes[3], qty(codes[3], 30), p.quote(codes[3]).price_fen)
        assert p.account_view(acc).debt_fen == 0
        # the margin page and the transparency page show the stressed haircuts, and the
        # engine's valuation agrees to the fen
        from crowdleverage.chain.codes import code_to_chain
        from crowdleverage.chain.params import PARAMS
        from crowdleverage.domain.params import stressed_haircut_bps
        from crowdleverage.web.margin import margin_view

        for _ in range(8):  # the broker fills the buys at the next ticks
            view = margin_view(p, acc)
            if view.holdings:
                break
            p.tick()
        assert view.stressed and view.holdings
        assert view.assets_fen == view.assets_check_fen
        # 01-05 is the switch day: the stressed set phases in (domain/params.py
        # STRESSED_PHASE_IN_DAYS), so the haircuts in force are still the calm ones
        scale = int(p.chain.call(PARAMS, "stressed_haircuts")[0])
        assert scale == 10_000 and int(p.chain.call("Liquidator", "stressed_line_bps")) == 0
        for h in view.holdings:
            board, st, _listed = p.chain.call(PARAMS, "securities", code_to_chain(h.code))
            assert h.haircut_bps == stressed_haircut_bps(int(board), bool(st), scale) == int(board)
        policy = p.published_policy()
        assert policy["regime_on_chain"] == "stressed" and policy["liquidity_cap_bps"] == 1_000
        assert policy["stressed_phase"]["day"] == 1 and policy["stressed_phase"]["days"] == 5
        # the next day 1/5 of the step: the margin page follows the chain to the fen
        while p.market.today < dt.date(2016, 1, 6) or not p.day_open:
            p.tick()
        assert int(p.chain.call(PARAMS, "stressed_haircuts")[0]) == 9_800
        view = margin_view(p, acc)
        assert view.assets_fen == view.assets_check_fen
        for h in view.holdings:
            board, st, _listed = p.chain.call(PARAMS, "securities", code_to_chain(h.code))
            assert h.haircut_bps == stressed_haircut_bps(int(board), bool(st), 9_800) < int(board)
        assert all(r["published"] for r in policy["liquidity"])  # at the day open
    finally:
        p.close()
        engine.dispose()


def test_the_shown_nav_stop_never_marks_an_account_the_contract_would_not_stop() -> None:
    """`nav_stop_assets` against the Liquidator's inequality (assets·BPS + stop·ref_assets <
    (debt + ref_equity)·BPS) on awkward integers: one fen below the figure stopped, at the
    figure not."""
    from crowdleverage.web.margin import nav_stop_assets

    for debt, ref_a, ref_e, stop in ((3_000_001, 4_000_003, 1_000_007, 500),
                                     (999, 1_333, 334, 1), (7, 11, 4, 4_999)):  # fmt: skip
        t = nav_stop_assets(debt, ref_a, ref_e, stop)
        assert t is not None

        def stopped(assets: int, d: int = debt, a: int = ref_a, e: int = ref_e,
                    s: int = stop) -> bool:  # fmt: skip
            return assets * P.BPS + s * a < (d + e) * P.BPS

        assert not stopped(t) and stopped(t - 1)
    assert nav_stop_assets(1_000, 0, 0, 500) is None  # no reference recorded
    assert nav_stop_assets(1_000, 2_000, 1_000, 0) is None  # the stop is off
