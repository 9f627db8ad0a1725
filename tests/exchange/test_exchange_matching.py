"""The simulated exchange against the real January 2016 bars (data/market/...)."""

from __future__ import annotations

import datetime as dt

import pytest

from crowdleverage.config import SHIPPED_DATA
from crowdleverage.domain.errors import Conflict, InvalidInput, NotFound, RuleViolation
from crowdleverage.market.bars import Bar, read_bars
from crowdleverage.market.exchange import (
    ExchangeConfig,
    OrderStatus,
    SimulatedExchange,
    fill_obeys_rules,
)
from crowdleverage.market.replay import TradingDay, intraday_ticks, trading_days
from crowdleverage.market.rules import Side

DATA = SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv"


@pytest.fixture(scope="module")
def days() -> dict[dt.date, TradingDay]:
    bars = read_bars(DATA)
    return {d.date: d for d in trading_days(bars, dt.date(2016, 1, 4), dt.date(2016, 1, 8))}


def session(days: dict[dt.date, TradingDay], day: str, **cfg: int) -> SimulatedExchange:
    ex = SimulatedExchange(ExchangeConfig(**cfg))
    ex.open_day(days[dt.date.fromisoformat(day)])
    return ex


def bar_of(days: dict[dt.date, TradingDay], day: str, code: str) -> Bar:
    return days[dt.date.fromisoformat(day)].bars[code]


def test_buy_fills_at_tick_prices_within_limit_and_band(days):
    # 000001 on 2016-01-05: 927 open, 917 low, 952 high, 938 close
    ex = session(days, "2016-01-05")
    ex.submit("o1", "acct-1", "000001", Side.BUY, 10_000, 930)
    fills = ex.run_day()
    assert fills, "a buy at 930 must fill on a day whose low is 917"
    assert sum(f.quantity for f in fills) == 10_000
    assert all(f.price_fen <= 930 for f in fills)
    assert ex.order("o1").status is OrderStatus.FILLED
    bar = bar_of(days, "2016-01-05", "000001")
    for f in fills:
        assert fill_obeys_rules(f, bar, ex.order("o1"), ex.config) == []


def test_participation_cap_limits_a_large_order_to_ten_percent_of_volume(days):
    ex = session(days, "2016-01-05")
    bar = bar_of(days, "2016-01-05", "000001")
    ex.submit("big", "acct-1", "000001", Side.BUY, 50_000_000, bar.band.limit_up_fen)
    fills = ex.run_day()
    filled = sum(f.quantity for f in fills)
    assert filled <= bar.volume // 10
    # every tick crossed (limit = limit-up), so the cap is binding: within a lot per tick
    assert filled >= bar.volume // 10 - 16 * 100
    assert all(f.quantity % 100 == 0 for f in fills)
    assert ex.order("big").status is OrderStatus.OPEN
    expired = ex.close_day()
    assert [o.order_id for o in expired] == ["big"]
    assert ex.order("big").status is OrderStatus.EXPIRED


def test_participation_cap_is_configurable(days):
    ex = session(days, "2016-01-05", participation_bps=100)
    bar = bar_of(days, "2016-01-05", "000001")
    ex.submit("big", "acct-1", "000001", Side.BUY, 50_000_000, bar.band.limit_up_fen)
    assert sum(f.quantity for f in ex.run_day()) <= bar.volume // 100


def test_time_priority_shares_the_capacity(days):
    ex = session(days, "2016-01-05")
    bar = bar_of(days, "2016-01-05", "000001")
    ex.submit("first", "a", "000001", Side.BUY, 40_000_000, bar.band.limit_up_fen)
    ex.submit("second", "b", "000001", Side.BUY, 1_000, bar.band.limit_up_fen)
    ex.run_day()
    assert ex.order("first").filled > 0
    assert ex.order("second").filled == 0  # the first order took every tick's capacity


def test_limit_outside_the_band_is_refused_and_nothing_is_queued(days):
    ex = session(days, "2016-01-05")
    band = ex.band("000001")
    with pytest.raises(RuleViolation, match="outside the day's band"):
        ex.submit("o1", "a", "000001", Side.BUY, 100, band.limit_up_fen + 1)
    with pytest.raises(RuleViolation, match="outside the day's band"):
        ex.submit("o2", "a", "000001", Side.SELL, 100, band.limit_down_fen - 1, holding=100)
    assert ex.open_orders() == []


def test_lots_and_odd_lots(days):
    ex = session(days, "2016-01-05")
    with pytest.raises(RuleViolation, match="lot"):
        ex.submit("b1", "a", "000001", Side.BUY, 150, 930)
    with pytest.raises(RuleViolation, match="odd lot"):
        ex.submit("s1", "a", "000001", Side.SELL, 150, 930, holding=300)
    with pytest.raises(RuleViolation, match="exceeds"):
        ex.submit("s2", "a", "000001", Side.SELL, 400, 930, holding=300)
    ex.submit("s3", "a", "000001", Side.SELL, 150, 930, holding=150)  # the whole holding
    fills = ex.run_day()
    assert sum(f.quantity for f in fills) == 150
    assert all(f.price_fen >= 930 for f in fills)


def test_sell_into_sealed_limit_down_does_not_fill_by_default(days):
    # 000010 on 2016-01-04: opened 1025, fell to the 917 limit-down and closed sealed there
    bar = bar_of(days, "2016-01-04", "000010")
    assert bar.sealed_down and not bar.locked_down and bar.band.limit_down_fen == 917
    ex = session(days, "2016-01-04")
    ex.submit("stop", "a", "000010", Side.SELL, 5_000_000, 917, holding=5_000_000)
    fills = ex.run_day()
    assert fills, "ticks above the limit-down (before the seal) are sellable"
    assert all(f.price_fen > 917 for f in fills)
    assert ex.order("stop").remaining > 0


def test_sealed_fill_fraction_is_configurable(days):
    ex = session(days, "2016-01-04", sealed_fill_bps=5_000)
    ex.submit("stop", "a", "000010", Side.SELL, 5_000_000, 917, holding=5_000_000)
    fills = ex.run_day()
    at_limit = [f for f in fills if f.price_fen == 917]
    assert at_limit and all(f.at_limit for f in at_limit)
    tick_vol = intraday_ticks(bar_of(days, "2016-01-04", "000010"))[-2].volume
    assert all(f.quantity <= tick_vol // 10 // 2 for f in at_limit)


def test_locked_limit_down_day_sells_nothing(days):
    # 002481 on 2016-01-05 traded only at its limit-down 1140 (一字跌停)
    bar = bar_of(days, "2016-01-05", "002481")
    assert bar.locked_down
    ex = session(days, "2016-01-05")
    ex.submit("stop", "a", "002481", Side.SELL, 1_000, 1140, holding=1_000)
    assert ex.run_day() == []
    assert [o.order_id for o in ex.close_day()] == ["stop"]


def test_buy_at_sealed_limit_up_does_not_fill(days):
    # 000020 on 2016-01-05 rose from 2593 to the 3060 limit-up and closed sealed
    bar = bar_of(days, "2016-01-05", "000020")
    assert bar.sealed_up and not bar.locked_up
    ex = session(days, "2016-01-05")
    ex.submit("chase", "a", "000020", Side.BUY, 1_000_000, 3060)
    fills = ex.run_day()
    assert fills and all(f.price_fen < 3060 for f in fills)


def test_no_fills_while_halted(days):
    ex = session(days, "2016-01-04")
    assert ex.is_halted("000803")  # suspended that day in the data
    ex.submit("h1", "a", "000803", Side.BUY, 100, ex.band("000803").limit_up_fen)
    ex.submit("h2", "a", "000001", Side.BUY, 100, ex.band("000001").limit_up_fen)
    ex.halt("000001")
    assert ex.run_day() == []
    ex.halt("000001", halted=False)
    ticks = intraday_ticks(bar_of(days, "2016-01-04", "000001"))
    assert ex.on_ticks([ticks[-1]])  # resumed: fills again


def test_fees_by_date_on_a_2016_sell(days):
    ex = session(days, "2016-01-05")
    ex.submit("s", "a", "000001", Side.SELL, 1_000, 938, holding=1_000)
    fills = ex.run_day()
    assert len(fills) == 1
    f = fills[0]
    amount = 1_000 * f.price_fen
    assert f.fees.commission_fen == 500  # the ¥5 minimum beats 2.5 bps
    assert f.fees.stamp_duty_fen == -(-amount // 1_000)  # 0.1% on sells in 2016
    assert f.fees.transfer_fee_fen == -(-amount * 2 // 100_000)  # 0.02‰ since 2015-08-01


def test_a_2016_buy_pays_no_stamp_duty(days):
    ex = session(days, "2016-01-05")
    ex.submit("b", "a", "000001", Side.BUY, 1_000, 938)
    (f,) = ex.run_day()
    assert f.fees.stamp_duty_fen == 0 and f.fees.commission_fen == 500


def test_fill_refs_are_unique_and_orders_ids_too(days):
    ex = session(days, "2016-01-05")
    bar = bar_of(days, "2016-01-05", "000001")
    ex.submit("o", "a", "000001", Side.BUY, 2_000_000, bar.band.limit_up_fen)
    with pytest.raises(Conflict):
        ex.submit("o", "a", "000001", Side.BUY, 100, 930)
    fills = ex.run_day()
    assert len(fills) > 1
    assert len({f.fill_ref for f in fills}) == len(fills)


def test_cancel_and_session_errors(days):
    ex = SimulatedExchange()
    with pytest.raises(Conflict, match="no trading session"):
        ex.submit("o", "a", "000001", Side.BUY, 100, 930)
    ex.open_day(days[dt.date(2016, 1, 5)])
    with pytest.raises(Conflict, match="still open"):
        ex.open_day(days[dt.date(2016, 1, 6)])
    with pytest.raises(NotFound):
        ex.submit("o", "a", "999999", Side.BUY, 100, 930)
    ex.submit("o", "a", "000001", Side.BUY, 100, 930)
    assert ex.cancel("o").status is OrderStatus.CANCELLED
    with pytest.raises(Conflict):
        ex.cancel("o")
    assert ex.run_day() == []
    with pytest.raises(InvalidInput):
        ExchangeConfig(participation_bps=0)


def test_a_whole_week_of_fills_obeys_the_rules(days):
    """Every stock, a buy near the open price and a sell near it, each day of the week."""
    cfg = ExchangeConfig()
    total = 0
    for day in days.values():
        ex = SimulatedExchange(cfg)
        ex.open_day(day)
        for bar in day.stocks:
            if bar.halted:
                continue
            ex.submit(f"b{bar.code}", "a", bar.code, Side.BUY, 100_000, bar.open)
            ex.submit(f"s{bar.code}", "a", bar.code, Side.SELL, 100_000, bar.open, holding=100_000)
        fills = ex.run_day()
        total += len(fills)
        for f in fills:
            assert fill_obeys_rules(f, day.bars[f.code], ex.order(f.order_id), cfg) == []
        ex.close_day()
    assert total > 1_000
