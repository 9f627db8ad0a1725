"""The seal/suspension model against the shipped January 2016 data.

Observed (shipped file, stocks trading that day): 214 of 296 sealed at limit-down on
2016-01-04 and 237 of 304 on 2016-01-07. The model (one factor on the CSI 300, Student-t
residuals, the fitted seal magnet, the halt chain) is driven by the CSI 300's real path from
2016-01-04; the stated tolerance is ±12 percentage points on each of the two days, and ±20% on
the number of sealed stock-days over the month. The magnet is fitted on the whole sample
(2015-11-27 → 2016-03-31), so this is an in-sample check of the model's shape, not a forecast.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from crowdleverage.risk.stress.data import fit_factor_model, load_index, load_panel
from crowdleverage.risk.stress.market import ModelMarket

TOLERANCE = 0.12


def test_sealed_share_on_the_circuit_breaker_days() -> None:
    # Arrange
    model, panel = fit_factor_model(), load_panel()
    days, r = load_index("csi300").returns(dt.date(2016, 1, 4), dt.date(2016, 1, 29))
    P, S = 100, len(model.codes)
    rng = np.random.default_rng(20160104)
    mkt = ModelMarket(model, np.tile(np.arange(S), (P, 1)), np.tile(np.log1p(r), (P, 1)),
                      np.ones((P, r.size)), model.limit_bps(days[0]), rng)  # fmt: skip
    simulated, observed, halted = {}, {}, []
    # Act
    for t, d in enumerate(days):
        mkt.step(t)
        i = panel.day(d)
        trading = panel.present[i] & ~panel.halted[i]
        simulated[d] = mkt.sealed.sum() / (~mkt.halted).sum()
        observed[d] = panel.sealed_down[i][trading].mean()
        halted.append(mkt.halted.mean())
    # Assert
    d4, d7 = dt.date(2016, 1, 4), dt.date(2016, 1, 7)
    assert observed[d4] == 214 / 296 and observed[d7] == 237 / 304
    assert abs(simulated[d4] - observed[d4]) <= TOLERANCE
    assert abs(simulated[d7] - observed[d7]) <= TOLERANCE
    ratio = sum(simulated.values()) / sum(observed.values())
    assert 0.8 <= ratio <= 1.2
    assert 0.01 <= float(np.mean(halted)) <= 0.04  # the sample: 2–4% of stocks halted


def test_seals_cluster_after_a_gap() -> None:
    # A −25% latent shock on one day leaves a gap: two more limit-down closes follow.
    model = fit_factor_model()
    P, S = 50, len(model.codes)
    f = np.zeros((P, 4))
    f[:, 0] = np.log(0.75) / np.maximum(model.beta.mean(), 0.5)
    mkt = ModelMarket(model, np.tile(np.arange(S), (P, 1)), f, np.full((P, 4), 0.01),
                      model.limit_bps(dt.date(2016, 1, 4)), np.random.default_rng(1))  # fmt: skip
    shares = []
    for t in range(4):
        mkt.step(t)
        shares.append(mkt.sealed.mean())
    assert shares[0] > 0.8 and shares[1] > 0.5 and shares[1] > shares[3]
