"""Issue 13: the monitor follows the Liquidator's stressed lines, and the stress engine's regime
indicator is risk/regime.py's (same states on the same observations)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from crowdleverage.domain import params as P
from crowdleverage.domain.errors import InvalidInput
from crowdleverage.risk.monitor import AccountState, RiskMonitor
from crowdleverage.risk.regime import Observation, RegimeParams, RegimeTracker
from crowdleverage.risk.stress.engine import PolicyArrays, RegimeState, regime_step
from crowdleverage.risk.stress.policy import MarginPolicy


def test_monitor_uses_the_stressed_lines_while_stressed() -> None:
    # Arrange: a tier-3 account at 128% (calm: above warning 125%, line 115%)
    m = RiskMonitor(["600000"], [10_000])
    m.update_prices(np.array([0]), [1_000])
    m.add_account("a", 3, debt_fen=100_000_000)
    m.set_position("a", "600000", 128_000)
    assert m.tick().state[0] == AccountState.HEALTHY
    # Act: the stressed lines of the Liquidator's defaults
    warn, liq = P.stressed_lines(P.TIERS[3])
    changed = m.set_lines({3: (warn, liq)})
    # Assert: below the raised line (115% + 90% of 18% = 131.2%) → liquidation due
    assert changed and liq == 13_120 and warn == 13_120
    assert m.tick().state[0] == AccountState.LIQUIDATION_DUE
    assert not m.set_lines({3: (warn, liq)})  # unchanged
    m.set_lines({3: (P.TIERS[3].warning_ratio_bps, P.TIERS[3].liquidation_ratio_bps)})
    assert m.tick().state[0] == AccountState.HEALTHY
    with pytest.raises(InvalidInput):
        m.set_lines({3: (11_000, 12_000)})  # warning below the line


class _Mkt:
    def __init__(self, sealed: np.ndarray, halted: np.ndarray, index: np.ndarray) -> None:
        self.sealed, self.halted, self.index_level = sealed, halted, index


def test_engine_regime_is_the_platform_indicator() -> None:
    """Random days on 40 paths × 20 stocks: the engine's vectorised step and RegimeTracker
    (one per path, closes only) give the same state every day."""
    rng = np.random.default_rng(13)
    params = RegimeParams()
    pol = PolicyArrays.of(MarginPolicy())
    n_paths, n_stocks, days = 40, 20, 60
    state = RegimeState.start(n_paths, pol)
    trackers = [RegimeTracker(params) for _ in range(n_paths)]
    for tr in trackers:  # the engine's paths start at index level 1 (the setup close)
        tr.observe(Observation(dt.date(2015, 12, 31), n_stocks, n_stocks, 0, 0, 1_000_000),
                   close=True)  # fmt: skip
    level = np.full(n_paths, 1.0)
    switched = 0
    for t in range(days):
        calmness = rng.random(n_paths)[:, None]  # some paths calm, some in turmoil
        sealed = rng.random((n_paths, n_stocks)) < 0.25 * calmness * (t % 17 < 5)
        halted = rng.random((n_paths, n_stocks)) < 0.2 * calmness * (t % 23 < 3)
        level = level * np.exp(rng.normal(0.0, 0.03, n_paths))
        before = state.stressed.copy()
        state = regime_step(state, _Mkt(sealed, halted, level.copy()), pol)
        switched += int((before != state.stressed).sum())
        for p in range(n_paths):
            obs = Observation(
                date=dt.date(2016, 1, 1) + dt.timedelta(days=t), stocks=n_stocks,
                trading=int((~halted[p]).sum()), at_limit_down=int((sealed[p] & ~halted[p]).sum()),
                halted=int(halted[p].sum()), index_level=round(level[p] * 1_000_000),
            )  # fmt: skip
            point = trackers[p].observe(obs, close=True)
            assert (point.regime.value == "stressed") == bool(state.stressed[p]), (t, p)
    assert switched > 20  # both directions happened many times
