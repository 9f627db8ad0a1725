"""Fixtures: the shipped strategy data, loaded once per session (real files, strict loaders)."""

from __future__ import annotations

import pytest

from crowdleverage.strategies.data import MarketData, load_market


@pytest.fixture(scope="session")
def market() -> MarketData:
    return load_market()
