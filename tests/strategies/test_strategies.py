"""Strategies: signals use only information available at the time (shift test), the A/H model
recovers a known hedge ratio and half-life, and the band rule behaves as documented."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from crowdleverage.strategies import ah_premium, basis, etf_premium
from crowdleverage.strategies.base import StrategyFrame, threshold_positions
from crowdleverage.strategies.data import MarketData

CUT = pd.Timestamp("2015-08-14")
PRICE_COLS = ("open", "high", "low", "close", "prev_close", "nav", "hkd_per_cny", "volume")


def perturb_after(market: MarketData, cut: pd.Timestamp, seed: int) -> MarketData:
    """The same market up to `cut`, and every number after it scrambled."""
    rng = np.random.default_rng(seed)

    def scramble(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        later = out.index > cut
        for col in PRICE_COLS:
            if col in out.columns:
                factor = rng.uniform(0.7, 1.3, later.sum())
                out.loc[later, col] = out.loc[later, col].to_numpy() * factor
        return out

    return MarketData(
        futures={k: scramble(v) for k, v in market.futures.items()},
        indices={k: scramble(v) for k, v in market.indices.items()},
        shares={k: scramble(v) for k, v in market.shares.items()},
        fx=scramble(market.fx),
        etf={k: scramble(v) for k, v in market.etf.items()},
    )


def past_differs(a: StrategyFrame, b: StrategyFrame, cut: pd.Timestamp) -> bool:
    fa, fb = a.frame.loc[:cut], b.frame.loc[:cut]
    assert len(fa) > 50 and fa.index.equals(fb.index)
    same_signal = np.array_equal(fa["signal"].to_numpy(), fb["signal"].to_numpy())
    same_hedge = np.allclose(fa["hedge"].to_numpy(), fb["hedge"].to_numpy(), equal_nan=True)
    return not (same_signal and same_hedge)


BUILDS: dict[str, Callable[[MarketData], StrategyFrame]] = {
    "basis-IF": lambda m: basis.build(m, basis.BasisParams()),
    "basis-IH-etf": lambda m: basis.build(m, basis.BasisParams(product="IH", spot="etf")),
    "ah-601318": lambda m: ah_premium.build(m, ah_premium.AHParams()),
    "ah-600036": lambda m: ah_premium.build(m, ah_premium.AHParams(a_symbol="600036.SS")),
    "etf-510050": lambda m: etf_premium.build(m, etf_premium.ETFParams()),
}


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_shift_future_data_does_not_change_past_signals(market: MarketData, name: str) -> None:
    build = BUILDS[name]
    original = build(market)
    scrambled = build(perturb_after(market, CUT, seed=7))
    assert not past_differs(original, scrambled, CUT)
    # and the scrambling is strong enough to change the signals after the cut
    later_a = original.frame.loc[CUT:, "signal"].to_numpy()[1:]
    later_b = scrambled.frame.loc[CUT:, "signal"].to_numpy()[1:]
    assert not np.array_equal(later_a, later_b)


def test_the_shift_test_catches_a_look_ahead(market: MarketData) -> None:
    def leaky(m: MarketData) -> StrategyFrame:
        sf = basis.build(m, basis.BasisParams())
        f = sf.frame.copy()
        f["signal"] = f["signal"].shift(-3).fillna(0).astype(int)  # uses the next 3 days
        return dataclasses.replace(sf, frame=f)

    assert past_differs(leaky(market), leaky(perturb_after(market, CUT, seed=7)), CUT)


def test_ah_fit_recovers_a_known_hedge_ratio_and_half_life() -> None:
    rng = np.random.default_rng(3)
    n, beta, phi = 2_000, 1.5, 0.9  # AR(1) spread: half-life −ln2/ln(0.9) ≈ 6.6 days
    log_h = np.cumsum(rng.normal(0, 0.02, n)) + 3.0
    s = np.zeros(n)
    for t in range(1, n):
        s[t] = phi * s[t - 1] + rng.normal(0, 0.01)
    fit = ah_premium.fit_pair(0.2 + beta * log_h + s, log_h)
    assert fit.beta == pytest.approx(beta, abs=0.02)
    assert fit.half_life_days == pytest.approx(-math.log(2) / math.log(phi), rel=0.2)
    assert fit.adf_p < 0.01
    # a random-walk spread is not cointegrated: at 5% the test rejects about 5% of the time
    rejected = 0
    for _ in range(40):
        walk = np.cumsum(rng.normal(0, 0.01, 500))
        lh = np.cumsum(rng.normal(0, 0.02, 500)) + 3.0
        rejected += ah_premium.fit_pair(0.2 + beta * lh + walk, lh).adf_p < 0.05
    assert rejected <= 8


def test_ah_hedge_is_in_cny_and_premium_from_fx(market: MarketData) -> None:
    sf = ah_premium.build(market, ah_premium.AHParams())
    day = pd.Timestamp("2015-07-07")
    h_hkd = market.shares["2318.HK"].loc[day, "close"]
    fx = market.fx.loc[day, "hkd_per_cny"]
    assert sf.frame.loc[day, "b_px"] == pytest.approx(h_hkd / fx)
    assert (sf.frame["hedge"] > 0).all()


def test_band_rule_entries_exits_and_stops() -> None:
    x = np.array([0.0, -2.5, -1.0, -0.2, 0.0, 2.5, 4.5, 0.0, 2.5, np.nan, -2.5])
    pos = threshold_positions(x, entry=2.0, exit_=0.5, stop=4.0, cooldown=1)
    # enter long at −2.5, hold at −1.0, exit at −0.2 (> −0.5); short at 2.5, stopped at 4.5,
    # one day of cooldown (0.0), short again at 2.5, NaN flattens, long at −2.5
    assert pos.tolist() == [0, 1, 1, 0, 0, -1, 0, 0, -1, 0, 1]
    no_short = threshold_positions(x, 2.0, 0.5, 4.0, allow_short=False)
    assert (no_short >= 0).all()


def test_etf_signal_needs_the_discount_to_beat_its_costs(market: MarketData) -> None:
    sf = etf_premium.build(market, etf_premium.ETFParams())
    f = sf.frame
    cost = etf_premium.round_trip_cost_bps(f.index, 1, etf_premium.ETFParams())
    longs = f["signal"] == 1
    assert longs.any()
    assert (-f.loc[longs, "spread_bps"] > cost[longs.to_numpy()]).all()
    # 2015-08-25: a 1.82% discount beats the ~0.3% round trip
    assert f.loc[pd.Timestamp("2015-08-25"), "signal"] == 1
