"""Financing fixtures: the whole platform (identity, oracle, cash, certificates, pool with two
tranches, insurance fund, margin engine) deployed once per session with titanoboa; each test
runs inside an anchor so its state changes roll back. Helpers live in fin_system.py (a unique
module name: several test directories have a conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fin_system import Platform, deploy_platform, rollback


@pytest.fixture(scope="session")
def platform() -> Platform:
    return deploy_platform()


@pytest.fixture(autouse=True)
def _rollback(platform: Platform) -> Iterator[None]:
    with rollback(platform):
        yield
