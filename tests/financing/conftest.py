"""Financing fixtures: the whole platform (identity, oracle, cash, certificates, pool with two
tranches, insurance fund, margin engine) deployed once per session with titanoboa; each test
runs inside an anchor so its state changes roll back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import boa
import pytest
from fin_system import Platform, deploy_platform
from hypothesis import settings

settings.register_profile("fin_ci", max_examples=20, stateful_step_count=30, deadline=None)
settings.register_profile("fin_long", max_examples=300, stateful_step_count=60, deadline=None)


def fin_profile() -> settings:
    return settings.get_profile("fin_long" if os.environ.get("CROWDLEV_LONG") == "1" else "fin_ci")


@pytest.fixture(scope="session")
def platform() -> Platform:
    return deploy_platform()


@contextmanager
def rollback(platform: Platform) -> Iterator[None]:
    """Roll back the chain and the Python-side market clock together."""
    saved = (platform.day, dict(platform.prices), dict(platform.prev_close))
    with boa.env.anchor():
        try:
            yield
        finally:
            platform.day, platform.prices, platform.prev_close = saved


@pytest.fixture(autouse=True)
def _rollback(platform: Platform) -> Iterator[None]:
    with rollback(platform):
        yield
