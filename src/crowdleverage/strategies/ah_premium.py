"""A/H premium mean reversion on a dual-listed pair, FX converted.

H in CNY = H_HKD / (HKD per CNY) with the day's FRED rate (carried forward over at most
`fx_max_gap_days` missing days). On each refit day the model is estimated on the previous
`fit_days` rows only (statsmodels):
- hedge ratio: OLS ln A = α + β ln H_cny (β is the notional of H per unit of A);
- stationarity: Engle–Granger cointegration test (ADF on the OLS residual with the right
  critical values); no new entry while its p-value > `adf_max_p`;
- half-life: OLS Δs_t = a + b s_{t−1} on the residual, half-life = −ln 2 / ln(1 + b) days.
The z-score of today's residual against the fit window's residual spread drives a band rule:
z < −entry (A cheap): +1 = long A (financed on the platform), short H (off-platform);
z > entry: −1 = short A (securities lending, off-platform), long H (off-platform). Exit at
|z| < exit, stop at |z| > stop, and a trade is closed after `max_hold_halflives` half-lives.

The shipped A/H files are split- and dividend-adjusted (yfinance): good for the spread's
dynamics, not for published premium levels (the README of the data says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.tsa.stattools import coint

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.strategies.base import LegKind, LegSpec, StrategyFrame, threshold_positions
from crowdleverage.strategies.data import AH_PAIRS, MarketData


@dataclass(frozen=True, slots=True)
class AHParams:
    a_symbol: str = "601318.SS"
    h_symbol: str = ""  # empty: the shipped pair of a_symbol (AH_PAIRS)
    fit_days: int = 250
    refit_days: int = 20
    entry_z: float = 2.0
    exit_z: float = 0.5
    stop_z: float = 4.0
    adf_max_p: float = 0.10
    max_hold_halflives: float = 3.0
    fx_max_gap_days: int = 5
    cooldown_days: int = 5

    def __post_init__(self) -> None:
        if not 0 <= self.exit_z < self.entry_z < self.stop_z:
            raise InvalidInput("A/H: need 0 ≤ exit_z < entry_z < stop_z")
        if self.fit_days < 30 or self.refit_days < 1 or not 0 < self.adf_max_p <= 1:
            raise InvalidInput("A/H: fit_days ≥ 30, refit_days ≥ 1, 0 < adf_max_p ≤ 1")


@dataclass(frozen=True, slots=True)
class Fit:
    alpha: float
    beta: float
    resid_std: float
    half_life_days: float
    adf_p: float


def fit_pair(log_a: np.ndarray, log_h: np.ndarray) -> Fit:
    """Hedge ratio, residual spread, ADF p-value and half-life on one window."""
    ols = sm.OLS(log_a, sm.add_constant(log_h)).fit()
    alpha, beta = float(ols.params[0]), float(ols.params[1])
    resid = log_a - alpha - beta * log_h
    ar = sm.OLS(np.diff(resid), sm.add_constant(resid[:-1])).fit()
    b = float(ar.params[1])
    hl = -math.log(2) / math.log(1 + b) if -1 < b < 0 else math.inf
    # Engle–Granger: the ADF test of an estimated residual needs its own critical values
    adf_p = float(coint(log_a, log_h, trend="c", maxlag=1, autolag=None)[1])
    return Fit(alpha, beta, float(resid.std(ddof=1)), hl, adf_p)


def h_symbol(p: AHParams) -> str:
    if p.h_symbol:
        return p.h_symbol
    if p.a_symbol not in AH_PAIRS:
        raise InvalidInput(
            f"A/H: no H share known for {p.a_symbol!r}: give h_symbol (shipped: {AH_PAIRS})"
        )
    return AH_PAIRS[p.a_symbol]


def pair_prices(data: MarketData, p: AHParams) -> pd.DataFrame:
    h_sym = h_symbol(p)
    for sym in (p.a_symbol, h_sym):
        if sym not in data.shares:
            raise InvalidInput(f"A/H: no data for {sym!r} (have: {sorted(data.shares)})")
    a = data.shares[p.a_symbol]
    h = data.shares[h_sym]
    days = a.index.intersection(h.index)
    fx = data.fx["hkd_per_cny"].reindex(days.union(data.fx.index)).ffill(limit=p.fx_max_gap_days)
    fx = fx.reindex(days)
    df = pd.DataFrame({"a": a.loc[days, "close"], "h_hkd": h.loc[days, "close"], "fx": fx})
    for col in ("open", "low", "high", "volume"):
        df[f"a_{col}"] = a.loc[days, col]
        df[f"h_{col}"] = h.loc[days, col]
    df = df.dropna(subset=["a", "h_hkd", "fx"])
    df["h"] = df["h_hkd"] / df["fx"]
    return df


def build(data: MarketData, p: AHParams) -> StrategyFrame:
    df = pair_prices(data, p)
    la, lh = np.log(df["a"].to_numpy()), np.log(df["h"].to_numpy())
    n = len(df)
    z = np.full(n, np.nan)
    beta = np.full(n, np.nan)
    max_hold = np.full(n, np.inf)
    ok = np.zeros(n, dtype=bool)
    fit: Fit | None = None
    for t in range(p.fit_days, n):
        if fit is None or (t - p.fit_days) % p.refit_days == 0:
            fit = fit_pair(la[t - p.fit_days : t], lh[t - p.fit_days : t])  # rows before t
        if fit.resid_std > 0:
            z[t] = (la[t] - fit.alpha - fit.beta * lh[t]) / fit.resid_std
        beta[t] = fit.beta
        max_hold[t] = p.max_hold_halflives * fit.half_life_days
        ok[t] = fit.adf_p <= p.adf_max_p and math.isfinite(fit.half_life_days)
    signal = threshold_positions(
        z, p.entry_z, p.exit_z, p.stop_z, cooldown=p.cooldown_days, max_hold=max_hold, tradeable=ok
    )
    h_sym = h_symbol(p)
    frame = pd.DataFrame(
        {
            "a_px": df["a"],
            "b_px": df["h"],
            "a_prev": df["a"].shift(1),
            "b_prev": df["h"].shift(1),
            "a_low": df["a_low"],
            "a_high": df["a_high"],
            "b_low": df["h_low"] / df["fx"],
            "b_high": df["h_high"] / df["fx"],
            "a_vol": df["a_volume"],
            "b_vol": df["h_volume"],
            "spread_bps": (df["a"] / df["h"] - 1.0) * 1e4,
            "signal": signal,
            "hedge": np.where(np.isnan(beta), 1.0, np.clip(beta, 0.2, 5.0)),
            "z": z,
        },
        index=df.index,
    )
    a = LegSpec(p.a_symbol, LegKind.ASHARE)
    b = LegSpec(h_sym, LegKind.HSHARE)
    return StrategyFrame(f"ah-{p.a_symbol}", a, b, frame, spread_sign=-1)
