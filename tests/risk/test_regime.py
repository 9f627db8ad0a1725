"""The market regime indicator on the shipped January 2016 data, its hysteresis, and the
liquidity caps from 20-day volumes."""

from __future__ import annotations

import datetime as dt
from functools import cache

import pytest

from crowdleverage.config import SHIPPED_DATA
from crowdleverage.market.bars import read_bars
from crowdleverage.market.replay import TradingDay, trading_days
from crowdleverage.risk.regime import (
    Observation,
    Regime,
    RegimeParams,
    RegimeTracker,
    average_amounts,
    average_volumes,
    liquidity_caps,
    observe_day,
    regime_history,
    transparency,
)

DATA = SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv"


@cache
def days() -> tuple[TradingDay, ...]:
    return tuple(trading_days(read_bars(DATA), None, dt.date(2016, 1, 29)))


def by_date() -> dict[str, object]:
    return {p.date.isoformat(): p for p in regime_history(days())}


def test_the_circuit_breaker_days_switch_the_regime_and_hysteresis_holds_it():
    h = by_date()
    assert h["2015-12-31"].regime is Regime.CALM
    jan4 = h["2016-01-04"]
    # 2016-01-04: 214 of 296 trading sample stocks closed sealed at limit-down (72%), the
    # Composite 9.7% below its 10-day high: both enter thresholds crossed
    assert jan4.regime is Regime.STRESSED and jan4.switched
    assert jan4.limit_down_bps == 214 * 10_000 // 296
    assert set(jan4.reasons) == {"limit_down", "drawdown"}
    # 01-06: no stock sealed, yet still stressed: the drawdown (7.5%) is above its exit line
    assert h["2016-01-06"].limit_down_bps == 0 and h["2016-01-06"].regime is Regime.STRESSED
    assert not h["2016-01-06"].reasons
    jan7 = h["2016-01-07"]
    assert jan7.regime is Regime.STRESSED and not jan7.switched
    assert "limit_down" in jan7.reasons and jan7.limit_down_bps > 7_000
    assert jan7.indicator_bps > 70_000  # 7.8× the limit-down threshold


def test_without_hysteresis_the_regime_would_flap_on_the_quiet_day_between():
    loose = RegimeParams(exit_limit_down_bps=1_000, exit_halted_bps=1_500,
                         exit_drawdown_bps=800, calm_closes=1)  # fmt: skip
    h = {p.date.isoformat(): p for p in regime_history(days(), loose)}
    assert h["2016-01-04"].regime is Regime.STRESSED
    assert h["2016-01-06"].regime is Regime.CALM  # the default keeps it stressed (above)
    assert h["2016-01-07"].regime is Regime.STRESSED and h["2016-01-07"].switched


def test_a_tick_can_enter_but_only_calm_closes_leave():
    t = RegimeTracker(RegimeParams(calm_closes=2))
    d = dt.date(2016, 1, 4)
    calm = Observation(d, 300, 300, 0, 0, 350_000)
    t.observe(calm, close=True)
    p = t.observe(Observation(d, 300, 300, 40, 0, 349_000), close=False)  # 13% at limit-down
    assert p.regime is Regime.STRESSED and p.switched
    assert t.observe(calm, close=False).regime is Regime.STRESSED  # calm ticks do not count
    assert t.observe(calm, close=True).regime is Regime.STRESSED  # 1 calm close of 2
    assert t.observe(calm, close=True).regime is Regime.CALM
    halted = t.observe(Observation(d, 300, 240, 0, 60, 350_000), close=True)  # 20% halted
    assert halted.regime is Regime.STRESSED and halted.reasons == ("halted",)


def test_the_parameters_are_checked():
    with pytest.raises(ValueError):
        RegimeParams(exit_drawdown_bps=900)  # above its enter threshold


def test_observation_of_a_real_day():
    jan7 = next(d for d in days() if d.date == dt.date(2016, 1, 7))
    obs = observe_day(jan7)
    assert (obs.stocks, obs.halted, obs.at_limit_down) == (313, 9, 237)
    assert obs.index_level == 312_500


def test_liquidity_caps_from_twenty_day_volumes():
    on = dt.date(2016, 1, 4)
    window = [d for d in days() if d.date <= on][-20:]
    code = "000001"
    expected = sum(d.bars[code].volume for d in window) // 20
    adv = average_volumes(days(), on, [code])
    assert adv[code] == expected > 0
    cap = expected * 1_000 // 10_000
    out = liquidity_caps(days(), on, [code], {"a": {code: cap}, "b": {code: 100}})
    (row,) = out["codes"]
    assert row["cap_shares"] == cap and row["platform_shares"] == cap + 100
    assert row["over_cap"] and out["over_cap"] == 1
    pub = transparency(days(), on)
    assert pub["regime"]["regime"] == "stressed" and pub["params"]["calm_closes"] == 3
    assert len(pub["liquidity"]["codes"]) > 300


def test_a_source_without_traded_amounts_gets_volume_times_close():
    """tushare-hist bars carry amount 0: the published 20-day amount is then volume × close
    (a published 0 would refuse every financed buy); halted days still count 0."""
    on = dt.date(2016, 10, 11)
    data = SHIPPED_DATA / "market" / "ashare_unadjusted_2016-04_2016-10.csv"
    tdays = tuple(trading_days(read_bars(data), None, on))
    window = [d for d in tdays if d.date <= on][-20:]
    code = "000420"
    assert all(d.bars[code].amount == 0 for d in window if code in d.bars)
    expected = sum(
        d.bars[code].volume * d.bars[code].close for d in window if code in d.bars
    ) // len(window)
    assert average_amounts(tdays, on, [code])[code] == expected > 0
    code = "000001"  # a source with amounts: the amount itself
    expected = sum(d.bars[code].amount for d in days()[-20:]) // 20
    assert average_amounts(days(), days()[-1].date, [code])[code] == expected > 0
