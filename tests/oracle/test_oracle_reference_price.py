"""The oracle opens an ex-date at the exchange's ex-rights reference price: real unadjusted
2016 bars (000420: 10 transfer shares per 10 on 2016-10-12; 000027: 0.20 元 dividend on
2016-06-28) and the embedded chain."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdleverage.chain.codes import code_to_chain
from crowdleverage.chain.deploy import deploy_system
from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import SYSTEM_ACTORS, ActorKeys
from crowdleverage.config import SHIPPED_DATA
from crowdleverage.market.bars import Bar, read_bars, with_band
from crowdleverage.market.corporate_actions import read_actions, with_reference_prices
from crowdleverage.market.replay import trading_days
from crowdleverage.oracle.feeder import OracleFeeder, Reporter

DATA = SHIPPED_DATA / "market" / "ashare_unadjusted_2016-04_2016-10.csv"
ACTIONS = SHIPPED_DATA / "market" / "corporate_actions.csv"


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[EmbeddedChain]:
    port = EmbeddedChain(tmp_path, ActorKeys.dev(20160104, SYSTEM_ACTORS))
    deploy_system(port, tmp_path)
    yield port
    port.close()


def _plain(bars: list[Bar]) -> list[Bar]:
    """The same bars with every previous close chained from the previous bar's close, as a
    converter without corporate-action data would write them."""
    last: dict[str, int] = {}
    out = []
    for b in bars:
        pc = last.get(b.code, b.prev_close)
        out.append(with_band(dataclasses.replace(b, prev_close=pc, band=None)))
        last[b.code] = b.close
    return out


@pytest.mark.parametrize(
    ("code", "ex_date", "reference", "band"),
    [("000420", dt.date(2016, 10, 12), 401, (361, 441)),
     ("000027", dt.date(2016, 6, 28), 634, (571, 697))],
)  # fmt: skip
def test_ex_date_opens_at_the_reference_price(chain, code, ex_date, reference, band) -> None:
    actions = read_actions(ACTIONS)
    plain = _plain(read_bars(DATA))
    chained = {(b.code, b.date): b for b in plain}
    assert chained[(code, ex_date)].prev_close != reference  # the plain close would jump
    fixed = with_reference_prices(plain, actions)
    (day,) = trading_days(fixed, ex_date, ex_date)
    feeder = OracleFeeder(chain, [Reporter(f"reporter{i}") for i in (1, 2, 3)], [code])
    feeder.open_day(day)
    c = code_to_chain(code)
    assert chain.call("PriceOracle", "prev_close", c) == reference
    assert tuple(chain.call("PriceOracle", "band", c)) == band
    # the day's first tick is legal in that band (the plain close's band would have refused it)
    assert band[0] <= day.bars[code].open <= band[1]
    # the unadjusted file already carries the exchange's reference: nothing to change
    shipped = {(b.code, b.date): b for b in read_bars(DATA)}
    assert shipped[(code, ex_date)].prev_close == reference
