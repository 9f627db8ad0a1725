"""Oracle feeder against the embedded chain and the real January 2016 bars: day open, honest
and faulty reporters (stale, outlier, manipulated), halts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdleverage.chain.codes import code_to_chain
from crowdleverage.chain.deploy import deploy_system
from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import SYSTEM_ACTORS, ActorKeys
from crowdleverage.config import SHIPPED_DATA
from crowdleverage.domain.errors import ContractRevert, InvalidInput
from crowdleverage.market.bars import read_bars
from crowdleverage.market.replay import TradingDay, intraday_ticks, trading_days
from crowdleverage.oracle.feeder import (
    OracleFeeder,
    Reporter,
    ReporterMode,
    session_index,
)

DATA = SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv"
CODES = ["000001", "000010", "000803", "600004"]  # 000803 is halted on 2016-01-04


@pytest.fixture(scope="module")
def days() -> dict[dt.date, TradingDay]:
    bars = read_bars(DATA)
    return {d.date: d for d in trading_days(bars, dt.date(2016, 1, 4), dt.date(2016, 1, 8))}


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[EmbeddedChain]:
    port = EmbeddedChain(tmp_path, ActorKeys.dev(20160104, SYSTEM_ACTORS))
    deploy_system(port, tmp_path)  # quorum 2, max age 600 s
    yield port
    port.close()


def reporters(*modes: ReporterMode, **kw) -> list[Reporter]:
    return [Reporter(f"reporter{i + 1}", m, **kw) for i, m in enumerate(modes)]


def feed_until(feeder: OracleFeeder, day: TradingDay, code: str, steps: int) -> list[int]:
    """Feed the first `steps` ticks of the day; returns the tick prices of `code`."""
    series = {c: intraday_ticks(day.bars[c]) for c in feeder.codes if not day.bars[c].halted}
    for step in range(steps):
        feeder.on_ticks(s[step] for s in series.values())
    return [t.price_fen for t in series[code][:steps]]


def test_day_open_sets_prev_close_band_and_halts(chain, days):
    day = days[dt.date(2016, 1, 4)]
    feeder = OracleFeeder(chain, reporters(*[ReporterMode.HONEST] * 3), CODES)
    index = feeder.open_day(day)
    assert index == session_index(dt.date(2016, 1, 4))
    assert chain.call("PriceOracle", "trading_day") == index
    bar = day.bars["000001"]
    assert chain.call("PriceOracle", "prev_close", 1) == bar.prev_close == 987
    assert tuple(chain.call("PriceOracle", "band", 1)) == (888, 1086)  # ±10% half-up
    assert chain.call("PriceOracle", "halted", code_to_chain("000803"))
    assert not chain.call("PriceOracle", "halted", 1)
    # the next session: the band follows the new previous close
    feeder.open_day(days[dt.date(2016, 1, 5)])
    assert chain.call("PriceOracle", "trading_day") == index + 1
    assert chain.call("PriceOracle", "prev_close", 1) == 932


def test_honest_reporters_give_the_market_price(chain, days):
    day = days[dt.date(2016, 1, 5)]
    feeder = OracleFeeder(chain, reporters(*[ReporterMode.HONEST] * 3), CODES)
    feeder.open_day(day)
    prices = feed_until(feeder, day, "000001", 5)
    assert chain.call("PriceOracle", "price", 1) == prices[-1]
    assert feeder.stats().reports_sent == 3 * 3 * 5  # 3 live codes, 3 reporters, 5 ticks
    assert feeder.stats().batches_refused == 0


def test_one_manipulated_reporter_cannot_move_the_median(chain, days):
    day = days[dt.date(2016, 1, 5)]
    feeder = OracleFeeder(
        chain, reporters(ReporterMode.HONEST, ReporterMode.MANIPULATED, ReporterMode.HONEST),
        CODES,
    )  # fmt: skip
    feeder.open_day(day)
    prices = feed_until(feeder, day, "000001", 3)
    assert chain.call("PriceOracle", "price", 1) == prices[-1]
    _, n, ok = chain.call("PriceOracle", "latest", 1)
    assert n == 3 and ok
    assert chain.call("PriceOracle", "report_of", 1, chain.address_of("reporter2"))[0] == (
        day.bars["000001"].band.limit_down_fen
    )


def test_two_colluding_reporters_do_move_it_but_only_inside_the_band(chain, days):
    day = days[dt.date(2016, 1, 5)]
    feeder = OracleFeeder(
        chain,
        reporters(ReporterMode.MANIPULATED, ReporterMode.MANIPULATED, ReporterMode.HONEST),
        CODES,
    )
    feeder.open_day(day)
    feed_until(feeder, day, "000001", 2)
    assert chain.call("PriceOracle", "price", 1) == day.bars["000001"].band.limit_down_fen


def test_an_outlier_is_refused_by_the_chain_and_recorded(chain, days):
    day = days[dt.date(2016, 1, 5)]
    feeder = OracleFeeder(
        chain, reporters(ReporterMode.HONEST, ReporterMode.OUTLIER, ReporterMode.HONEST), CODES
    )
    feeder.open_day(day)
    prices = feed_until(feeder, day, "000001", 2)
    stats = feeder.stats()
    assert stats.reasons == {"oracle: price outside band": 2}
    assert feeder.reporters[1].sent == 0
    assert chain.call("PriceOracle", "price", 1) == prices[-1]  # two honest: still a quorum


def test_stale_reporters_age_out_and_the_price_becomes_unreliable(chain, days):
    day = days[dt.date(2016, 1, 5)]
    feeder = OracleFeeder(
        chain,
        reporters(ReporterMode.HONEST, ReporterMode.STALE, ReporterMode.STALE, stale_after_tick=1),
        CODES,
    )
    feeder.open_day(day)
    feed_until(feeder, day, "000001", 1)
    assert chain.call("PriceOracle", "is_reliable", 1)  # all three reported tick 0
    chain.advance_time(601)  # past max_age_s: the stale reports no longer count
    feeder.on_ticks([intraday_ticks(day.bars["000001"])[8]])
    assert not chain.call("PriceOracle", "is_reliable", 1)
    with pytest.raises(ContractRevert, match="oracle: price unreliable"):
        chain.call("PriceOracle", "price", 1)
    # liquidation valuation falls back to the worst legal price of the day
    assert chain.call("PriceOracle", "conservative_price", 1) == (
        day.bars["000001"].band.limit_down_fen
    )


def test_a_halted_security_gets_no_reports_and_is_valued_at_prev_close(chain, days):
    day = days[dt.date(2016, 1, 4)]
    feeder = OracleFeeder(chain, reporters(*[ReporterMode.HONEST] * 3), CODES)
    feeder.open_day(day)
    feed_until(feeder, day, "000001", 2)
    halted = code_to_chain("000803")
    assert not chain.call("PriceOracle", "is_reliable", halted)
    assert chain.call("PriceOracle", "conservative_price", halted) == day.bars["000803"].prev_close


def test_sealed_limit_down_is_visible_on_chain(chain, days):
    day = days[dt.date(2016, 1, 4)]  # 000010 closed sealed at its 917 limit-down
    feeder = OracleFeeder(chain, reporters(*[ReporterMode.HONEST] * 3), CODES)
    feeder.open_day(day)
    feed_until(feeder, day, "000010", 16)
    assert chain.call("PriceOracle", "is_sealed_limit_down", 10)


def test_feeder_refuses_bad_setups(chain, days):
    with pytest.raises(InvalidInput, match="three"):
        OracleFeeder(chain, reporters(ReporterMode.HONEST, ReporterMode.HONEST), CODES)
    with pytest.raises(InvalidInput, match="different"):
        OracleFeeder(chain, [Reporter("reporter1")] * 3, CODES)
    feeder = OracleFeeder(chain, reporters(*[ReporterMode.HONEST] * 3), CODES)
    with pytest.raises(InvalidInput, match="open a day"):
        feeder.on_ticks([])
    feeder.open_day(days[dt.date(2016, 1, 5)])
    with pytest.raises(InvalidInput, match="already at session"):
        feeder.open_day(days[dt.date(2016, 1, 4)])
