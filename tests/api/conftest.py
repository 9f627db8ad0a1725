"""API fixtures: a fresh platform and app per test (SQLite in tmp_path), the shipped market
history parsed once per session, and the demo world seeded through the real use cases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_world import MARKET, World, make_world

from crowdleverage.market.bars import Bar, read_bars


@pytest.fixture(scope="session")
def market_bars() -> list[Bar]:
    return read_bars(MARKET)


@pytest.fixture
def world(tmp_path: Path, market_bars: list[Bar]) -> Iterator[World]:
    w = make_world(tmp_path, market_bars, trade=False)
    yield w
    w.client.close()
    w.state.engine.dispose()
