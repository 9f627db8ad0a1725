"""Backtests under the platform's rules, from the shipped data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from crowdleverage.strategies import ah_premium, basis, etf_premium
from crowdleverage.strategies.backtest import BacktestConfig, run
from crowdleverage.strategies.base import StrategyFrame
from crowdleverage.strategies.data import MarketData

D = dt.date
FROM, TO = D(2014, 7, 1), D(2016, 6, 30)


def fixed(sf: StrategyFrame, plan: list[tuple[str, int]]) -> StrategyFrame:
    """The strategy's legs with a given signal: (first day, signal) steps."""
    f = sf.frame.copy()
    sig = np.zeros(len(f), dtype=int)
    for day, value in plan:
        sig[f.index >= pd.Timestamp(day)] = value
    f["signal"] = sig
    return StrategyFrame(sf.name, sf.a, sf.b, f, spread_sign=sf.spread_sign)


@pytest.mark.parametrize(
    "build",
    [
        lambda m: basis.build(m, basis.BasisParams()),
        lambda m: ah_premium.build(m, ah_premium.AHParams()),
        lambda m: etf_premium.build(m, etf_premium.ETFParams()),
    ],
    ids=["basis", "ah", "etf"],
)
def test_each_strategy_runs_two_years_and_accounts_for_every_fen(market: MarketData, build):
    cfg = BacktestConfig()
    res = run(build(market), cfg, date_from=FROM, date_to=TO)
    s = res.stats
    deposits = cfg.deposit_fen + cfg.reserve_fen
    assert s["days"] > 450 and s["from"] >= "2014-07-01" and s["to"] <= "2016-06-30"
    assert s["pnl_fen"] == s["final_equity_fen"] - deposits
    assert s["traded_fen"] > 0 and s["fees_fen"] > 0
    eq = res.daily["equity_fen"]
    assert eq.map(type).eq(int).all()  # integer fen, not floats
    assert s["final_equity_fen"] == eq.iloc[-1]
    # every yuan of a loss is attributed; a gain leaves every layer at zero
    loss = max(0, -s["pnl_fen"])
    assert sum(res.losses.values()) == loss
    assert (
        s["market_pnl_fen"] - s["fees_fen"] - s["interest_fen"] - s["borrow_fen"] - s["penalty_fen"]
        == s["pnl_fen"]
    )
    for key in ("sharpe", "max_drawdown_pct", "worst_day", "turnover_x_per_year", "margin_calls"):
        assert key in s


def test_opening_cap_of_ten_lots_holds_inside_the_backtest(market: MarketData) -> None:
    sf = fixed(basis.build(market, basis.BasisParams(product="IH")), [("2015-09-07", 1)])
    res = run(
        sf, BacktestConfig(deposit_fen=10**11), date_from=D(2015, 9, 1), date_to=D(2015, 9, 10)
    )
    lots = res.daily["b_qty"]
    assert lots.loc["2015-09-08"] == -10  # short 10 IH lots, the cap, on the first day
    assert res.stats["refused_lots"] > 0
    # a day later the book is not topped up: a signal that does not change opens nothing new
    assert lots.loc["2015-09-09"] == -10


def test_no_sale_into_a_sealed_limit_down(market: MarketData) -> None:
    # long futures (−1: short spot, long IF) from 2015-08-17, flat signal on 2015-08-24
    sf = fixed(basis.build(market, basis.BasisParams()), [("2015-08-14", -1), ("2015-08-24", 0)])
    res = run(sf, BacktestConfig(), date_from=D(2015, 8, 10), date_to=D(2015, 8, 31))
    pos = res.daily["position"]
    # the exit falls on 2015-08-25, when IF closed sealed at −10%: it waits a day
    assert pos.loc["2015-08-24"] == -1 and pos.loc["2015-08-25"] == -1
    assert pos.loc["2015-08-26"] == 0


def test_financing_interest_accrues_on_the_financed_leg(market: MarketData) -> None:
    sf = fixed(basis.build(market, basis.BasisParams()), [("2014-09-01", 1)])
    cfg = BacktestConfig(notional_x_equity=2.0)
    res = run(sf, cfg, date_from=D(2014, 8, 25), date_to=D(2014, 12, 31))
    debt = res.daily["debt_fen"]
    assert debt.loc["2014-09-02"] > 0
    # each day: yesterday's closing debt × 6.5% × calendar days / 365, rounded up to the fen
    days = [d.date() for d in debt.index]
    expected = sum(
        -(-int(debt.iloc[i - 1]) * 650 * (days[i] - days[i - 1]).days // (10_000 * 365))
        for i in range(1, len(days))
    )
    assert res.stats["interest_fen"] == expected > 0


def test_a_halted_leg_is_not_traded(market: MarketData) -> None:
    sf = fixed(ah_premium.build(market, ah_premium.AHParams()), [("2015-03-02", 1)])
    f = sf.frame.copy()
    halted = f.index == pd.Timestamp("2015-03-03")  # the day the entry would execute
    f.loc[halted, "a_vol"] = 0
    halted_sf = StrategyFrame(sf.name, sf.a, sf.b, f, spread_sign=sf.spread_sign)
    window = {"date_from": D(2015, 2, 16), "date_to": D(2015, 3, 10)}
    pos = run(halted_sf, BacktestConfig(), **window).daily["position"]
    assert pos.loc["2015-03-03"] == 0 and pos.loc["2015-03-04"] == 1
    assert run(sf, BacktestConfig(), **window).daily["position"].loc["2015-03-03"] == 1


def test_same_day_exit_pays_close_today_fee_and_keeps_t1_shares(market: MarketData) -> None:
    from crowdleverage.strategies.backtest import Engine, _rows, open_book, reduce_book, window
    from crowdleverage.strategies.futures_rules import notional_fen, to_deci_points

    sf = window(basis.build(market, basis.BasisParams(product="IH", spot="etf")), None, None)
    rows = {r.day: r for r in _rows(sf)}
    r = rows[D(2015, 9, 8)]
    eng = Engine(sf, BacktestConfig(deposit_fen=10**11), None)
    lots = open_book(eng, r, 1, 1.0, 0)  # long 50ETF (financed), short IH
    assert lots == 10 and eng.book.qb == -10 and eng.book.qa > 0
    fees_before, etf_qty = eng.book.stats["fees_fen"], eng.book.qa
    reduce_book(eng, r, 1.0, forced=True)  # a forced exit the same day
    fut_notional = notional_fen("IH", to_deci_points(r.b_px), 10)
    close_today = -(-fut_notional * 2_300 // 1_000_000)  # 0.23% from 2015-09-07
    impact = -(-fut_notional * 5 // 10_000)
    assert eng.book.stats["fees_fen"] - fees_before == close_today + impact
    assert eng.book.qb == 0  # the futures are closed …
    assert eng.book.qa == etf_qty  # … the ETF bought today is T+1: not sellable until tomorrow


def test_seals_follow_the_board_band_by_date() -> None:
    from crowdleverage.strategies.backtest import _sealed
    from crowdleverage.strategies.base import LegKind, LegSpec

    main, chinext = LegSpec("600036.SS", LegKind.ASHARE), LegSpec("300750.SZ", LegKind.ASHARE)
    etf, h = LegSpec("510050", LegKind.ETF), LegSpec("3968.HK", LegKind.HSHARE)
    # closed on the low 9.6% down: a seal on the main board and on ChiNext before its reform
    assert _sealed(main, D(2021, 1, 5), 10.0, 9.04, 10.0, 9.04) == (True, False)
    assert _sealed(chinext, D(2019, 1, 4), 10.0, 9.04, 10.0, 9.04) == (True, False)
    # ChiNext's band is ±20% from 2020-08-24: −9.6% is an ordinary day
    assert _sealed(chinext, D(2021, 1, 5), 10.0, 9.04, 10.0, 9.04) == (False, False)
    assert _sealed(chinext, D(2021, 1, 5), 10.0, 10.0, 11.97, 11.97) == (False, True)
    assert _sealed(etf, D(2015, 8, 24), 2.274, 2.047, 2.216, 2.047) == (True, False)
    assert _sealed(h, D(2015, 8, 24), 10.0, 8.0, 10.0, 8.0) == (False, False)  # no HK limit
