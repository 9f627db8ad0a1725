"""Futures–spot basis: long the cheap leg, short the rich one, until the basis converges.

basis_bps = (F / S − 1) × 10⁴ with F the main IF/IH futures close and S the spot index close.
The fair basis is the carry to the front contract's expiry (third Friday of the month):
fair_bps = (carry_apr_bps − dividend_yield_bps) × days_to_expiry / 365 — financing makes the
future rich, expected dividends (the CSI 300 and SSE 50 are price indices) make it cheap. The
mispricing m = basis − fair, smoothed by an exponential average over `smooth_days` (causal).

- m > entry_bps (future rich): +1 = long spot (ETF or basket, financed on the platform), short
  futures (off-platform). Exit when m < exit_bps; stop when m > stop_bps.
- m < −entry_bps (future cheap) and `allow_reverse`: −1 = long futures, short spot through
  securities lending (off-platform, borrow fee in the backtest). Mirror exits.

The spot leg is the 50ETF for IH when `spot="etf"` (real prices, tracking error included) and a
basket valued at the index otherwise (no CSI 300 ETF data is shipped).

The futures closes are at 15:15 until 2015-12-31 and the index's at 15:00, so the close basis
carries 15 minutes of market move; the smoothing and the thresholds are there for that noise.
The main continuous contract rolls between contracts at dates the data do not give; the roll
jump is part of the futures P&L (a known limitation, see the package README).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.strategies.base import LegKind, LegSpec, StrategyFrame, threshold_positions
from crowdleverage.strategies.data import FUTURES_SPOT, MarketData


@dataclass(frozen=True, slots=True)
class BasisParams:
    product: str = "IF"
    spot: Literal["basket", "etf"] = "basket"
    entry_bps: float = 100.0
    exit_bps: float = 20.0
    stop_bps: float = 400.0
    carry_apr_bps: float = 650.0
    dividend_yield_bps: float = 200.0
    smooth_days: int = 3
    allow_reverse: bool = True
    cooldown_days: int = 5

    def __post_init__(self) -> None:
        if self.spot not in ("basket", "etf"):
            raise InvalidInput(f"basis: spot must be 'basket' or 'etf', got {self.spot!r}")
        if not 0 <= self.exit_bps < self.entry_bps < self.stop_bps:
            raise InvalidInput("basis: need 0 ≤ exit_bps < entry_bps < stop_bps")
        if self.smooth_days < 1 or self.cooldown_days < 0:
            raise InvalidInput("basis: smooth_days ≥ 1 and cooldown_days ≥ 0")


def third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def days_to_expiry(day: dt.date) -> int:
    """Calendar days to the front contract's last trading day (third Friday; the next
    month's once this month's has passed)."""
    exp = third_friday(day.year, day.month)
    if day > exp:
        y, m = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
        exp = third_friday(y, m)
    return (exp - day).days


def build(data: MarketData, p: BasisParams) -> StrategyFrame:
    return build_many(data, [p])[0]


def build_many(data: MarketData, ps: list[BasisParams]) -> list[StrategyFrame]:
    """`build` for many settings at once: the data-only work (aligned days, basis, days to
    expiry, the frame's price columns) is done once per (product, spot), the mispricing once
    per (carry, dividend yield, smoothing), the band rule per setting. Same results as one
    `build` per setting (a sweep's shared work)."""
    bases: dict[tuple[str, str], tuple[pd.DataFrame, pd.Series, np.ndarray, LegSpec, LegSpec]] = {}
    mis_cache: dict[tuple[str, str, float, float, int], np.ndarray] = {}
    out = []
    for p in ps:
        key = (p.product, p.spot)
        if key not in bases:
            bases[key] = _base(data, p)
        base, basis, dte, a, b = bases[key]
        mkey = (*key, p.carry_apr_bps, p.dividend_yield_bps, p.smooth_days)
        mis = mis_cache.get(mkey)
        if mis is None:
            fair = (p.carry_apr_bps - p.dividend_yield_bps) * dte / 365.0
            ewm = (basis - fair).ewm(span=max(p.smooth_days, 1), adjust=False).mean()
            mis = mis_cache[mkey] = -ewm.to_numpy()
        signal = threshold_positions(
            mis,
            p.entry_bps,
            p.exit_bps,
            p.stop_bps,
            allow_short=p.allow_reverse,
            cooldown=p.cooldown_days,
        )
        # −1 here means short spot / long futures, which needs allow_reverse; +1 long spot.
        frame = base.copy(deep=False)
        frame.insert(len(frame.columns) - 1, "signal", signal)
        out.append(StrategyFrame(f"basis-{p.product}-{p.spot}", a, b, frame))
    return out


def _base(
    data: MarketData, p: BasisParams
) -> tuple[pd.DataFrame, pd.Series, np.ndarray, LegSpec, LegSpec]:
    """The setting-independent part of `build`: the frame without a signal, the basis in bps,
    the days to expiry and the legs."""
    if p.product not in FUTURES_SPOT:
        raise InvalidInput(f"basis: unknown futures product {p.product!r}")
    index_sym, etf_sym = FUTURES_SPOT[p.product]
    if p.spot == "etf" and etf_sym is None:
        raise InvalidInput(f"basis: no ETF data shipped for {p.product}; use spot=basket")
    fut = data.futures[p.product]
    idx = data.indices[index_sym]
    spot_src = data.etf[etf_sym] if p.spot == "etf" and etf_sym else idx
    days = fut.index.intersection(idx.index).intersection(spot_src.index)
    f, s, x = fut.loc[days], idx.loc[days], spot_src.loc[days]
    basis = (f["close"] / s["close"] - 1.0) * 1e4
    dte = np.array([days_to_expiry(d.date()) for d in days], dtype=float)
    frame = pd.DataFrame(
        {
            "a_px": x["close"],
            "b_px": f["close"],
            "a_prev": x["close"].shift(1),
            "b_prev": f["close"].shift(1),
            "a_low": x["low"],
            "a_high": x["high"],
            "b_low": f["low"],
            "b_high": f["high"],
            "a_vol": x["volume"],
            "b_vol": f["volume"],
            "spread_bps": basis,
            "hedge": 1.0,
        },
        index=days,
    )
    kind = LegKind.ETF if p.spot == "etf" else LegKind.BASKET
    a = LegSpec(etf_sym if p.spot == "etf" and etf_sym else index_sym, kind)
    b = LegSpec(p.product, LegKind.FUTURES, product=p.product)
    return frame, basis, dte, a, b
