"""The stress engine's liquidity is the platform's rolling 20-day figure as of each day (not
the stock's average over the whole window): the real panel's figure equals what
risk/regime.py publishes, and the model market rolls its simulated days in."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from crowdleverage.market.bars import read_bars
from crowdleverage.market.replay import trading_days
from crowdleverage.risk.regime import average_amounts
from crowdleverage.risk.stress.data import STOCK_FILE, fit_factor_model, load_panel
from crowdleverage.risk.stress.market import ModelMarket, PanelMarket


@pytest.fixture(scope="module")
def days():
    return list(trading_days(read_bars(STOCK_FILE)))


def _previous(days, on: dt.date) -> dt.date:
    return max(d.date for d in days if d.date < on)


@pytest.mark.parametrize("on", [dt.date(2016, 1, 4), dt.date(2016, 1, 8), dt.date(2016, 2, 1)])
def test_panel_liquidity_is_the_platforms_20_day_figure_before_the_session(days, on) -> None:
    # Arrange: what the platform publishes before `on`'s session (closes up to the day before)
    panel = load_panel()
    published = average_amounts(days, _previous(days, on), panel.codes)
    # Act
    row = panel.liquidity[panel.day(on)]
    # Assert: equal to the fen for every stock, and not the whole window's average
    assert [int(x) for x in row] == [published[c] for c in panel.codes]
    whole = panel.amount.mean(axis=0)
    assert np.abs(row - whole).max() > 0.2 * whole.max()


def test_panel_market_publishes_each_days_figure(days) -> None:
    # Arrange: the 2016-01 circuit-breaker days, 3 paths of 4 real stocks
    panel = load_panel()
    d0 = panel.day(dt.date(2016, 1, 4))
    pick = np.array([[0, 1, 2, 3], [10, 20, 30, 40], [5, 50, 100, 200]])
    mkt = PanelMarket(panel, pick, d0, fit_factor_model())
    codes = [[panel.codes[i] for i in row] for row in pick]
    # Act / Assert: at the opening and each day after a step, the figure as of the last close
    for t in range(-1, 5):
        if t >= 0:
            mkt.step(t)
        on = panel.dates[d0 + max(t, 0)]
        published = average_amounts(days, _previous(days, on), panel.codes)
        want = np.array([[published[c] for c in row] for row in codes]) / 100.0
        assert np.array_equal(mkt.adv, want), t


def test_model_market_rolls_each_simulated_day_into_the_20_day_window() -> None:
    # Arrange: a −12% factor day then a quiet one; high betas so most stocks seal
    model = fit_factor_model()
    rng = np.random.default_rng(1)
    pick = np.tile(np.arange(30), (2, 1))
    factor = np.array([[-0.12, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mkt = ModelMarket(model, pick, factor, np.ones((2, 3)), model.limit_bps(dt.date(2016, 1, 4)),
                      rng)  # fmt: skip
    base = model.adv_yuan[pick]
    assert np.allclose(mkt.adv, base)  # 20 ordinary days before the start
    # Act
    mkt.step(0)
    assert np.allclose(mkt.adv, base)  # the day's own amount is published at its close
    X, halted, sealed, locked = mkt.X.copy(), mkt.halted.copy(), mkt.sealed.copy(), mkt.locked
    mkt.step(1)
    # Assert: the window dropped one ordinary day and took day 0's amount at its close
    share = np.where(locked, model.locked_volume_share,
                     np.where(sealed, model.sealed_volume_share, 1.0))  # fmt: skip
    day0 = np.where(halted, 0.0, base * X * share)
    assert np.allclose(mkt.adv, (19 * base + day0) / 20)
    crash = sealed[0] & ~halted[0]
    assert crash.sum() >= 5 and (mkt.adv[0][crash] < base[0][crash]).all()
    assert mkt.adv[0][halted[0]] == pytest.approx(19 / 20 * base[0][halted[0]])
    assert 0.5 < model.sealed_volume_share < 1.5 and model.locked_volume_share < 0.5
