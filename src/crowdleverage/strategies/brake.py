"""Liquidity-reversal brake: a platform-level monitor of strategy crowding and liquidity.

In extreme markets arbitrage books turn into a systemic event: the spread moves against the
crowd, the legs' volume dries up, exchanges change the rules, and forced exits cascade. The
brake watches, each day and with data up to that day only:

1. crowding — the share of the pool's assets financing this strategy (`pool_share_bps`);
2. the spread's move against the crowd's side over `lookback_days` (`adverse_move_bps`);
3. liquidity — the thinnest leg's volume against its average of the previous
   `volume_avg_days` (`volume_ratio`);
4. the market regime — a stress level in [0, 1] (risk/regime.py's indicator when wired by the
   integrator; `regime_proxy` below otherwise: the spot index's drawdown from its 60-day high);
5. exchange rule changes — a margin increase announced for the coming days
   (`futures_rules.known_margin_step`: announced margin over yesterday's).

Each signal beyond its threshold scores one point. The stage follows the score at once when it
rises and steps down one stage only after `calm_days` days in a row with a lower score
(hysteresis); while it holds, a cap never loosens (the backtest keeps the tightest):
- 0 NORMAL: nothing;
- 1 NO_NEW: no new strategy financing (no new or larger positions);
- 2 LIMIT: the book is capped at `limit_fraction` of its size when the stage began;
- 3 UNWIND: an orderly unwind, `1/unwind_days` of that size a day, before the lines are hit.
`state()` gives what the operator's risk panel and the transparency page show.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import pandas as pd


class Stage(IntEnum):
    NORMAL = 0
    NO_NEW = 1
    LIMIT = 2
    UNWIND = 3


@dataclass(frozen=True, slots=True)
class BrakeParams:
    max_pool_share_bps: int = 1_500  # crowding: > 15% of pool assets in one strategy
    adverse_move_bps: float = 150.0  # spread against the crowd over the lookback
    lookback_days: int = 10
    volume_ratio_min: float = 0.5  # thinnest leg's volume < 50% of its average
    volume_avg_days: int = 20
    regime_stressed: float = 0.5  # stress level at or above which the regime counts
    margin_step_max: float = 1.25  # an announced margin rise of more than 25%
    calm_days: int = 10
    limit_fraction: float = 0.5
    unwind_days: int = 5


@dataclass(frozen=True, slots=True)
class BrakeInputs:
    day: dt.date
    pool_share_bps: int
    adverse_move_bps: float
    volume_ratio: float
    regime: float
    margin_step: float = 1.0


@dataclass(frozen=True)
class BrakeState:
    day: dt.date | None
    stage: Stage
    score: int
    reasons: tuple[str, ...]
    inputs: BrakeInputs | None
    cap_fraction: float  # allowed size as a fraction of the reference size (1 = no cap)
    params: BrakeParams

    def to_dict(self) -> dict[str, Any]:
        """For the operator panel and the transparency page (JSON-ready)."""
        return {
            "day": self.day.isoformat() if self.day else None,
            "stage": self.stage.name,
            "stage_level": int(self.stage),
            "score": self.score,
            "reasons": list(self.reasons),
            "inputs": None
            if self.inputs is None
            else {
                k: (v.isoformat() if isinstance(v, dt.date) else v)
                for k, v in asdict(self.inputs).items()
            },
            "cap_fraction": round(self.cap_fraction, 4),
            "new_financing": self.stage < Stage.NO_NEW,
            "params": asdict(self.params),
        }


@dataclass
class LiquidityBrake:
    params: BrakeParams = field(default_factory=BrakeParams)
    stage: Stage = Stage.NORMAL
    calm: int = 0
    stage_days: int = 0
    history: list[BrakeState] = field(default_factory=list)

    def score(self, x: BrakeInputs) -> tuple[int, tuple[str, ...]]:
        p, why = self.params, []
        if x.pool_share_bps > p.max_pool_share_bps:
            why.append(f"crowding {x.pool_share_bps / 100:.1f}% of pool assets")
        if x.adverse_move_bps > p.adverse_move_bps:
            why.append(f"spread {x.adverse_move_bps:.0f} bps against the crowd")
        if x.volume_ratio < p.volume_ratio_min:
            why.append(f"legs' volume at {x.volume_ratio:.0%} of average")
        if x.regime >= p.regime_stressed:
            why.append(f"market regime stressed ({x.regime:.2f})")
        if x.margin_step > p.margin_step_max:
            why.append(f"exchange margin rise announced (×{x.margin_step:.2f})")
        return len(why), tuple(why)

    def update(self, x: BrakeInputs) -> BrakeState:
        score, why = self.score(x)
        target = Stage(min(score, int(Stage.UNWIND)))
        if target > self.stage:
            self.stage, self.calm, self.stage_days = target, 0, 0
        elif target < self.stage:
            self.calm += 1
            if self.calm >= self.params.calm_days:
                self.stage, self.calm, self.stage_days = Stage(self.stage - 1), 0, 0
        else:
            self.calm = 0
        if target >= self.stage:
            self.calm = 0  # stepping down needs `calm_days` calm days in a row
        self.stage_days += 1
        st = BrakeState(x.day, self.stage, score, why, x, self.cap_fraction(), self.params)
        self.history.append(st)
        return st

    def cap_fraction(self) -> float:
        p = self.params
        if self.stage is Stage.LIMIT:
            return p.limit_fraction
        if self.stage is Stage.UNWIND:
            return max(0.0, 1.0 - self.stage_days / p.unwind_days)
        return 1.0

    def state(self) -> BrakeState:
        """The latest state (NORMAL before the first update)."""
        if self.history:
            return self.history[-1]
        return BrakeState(None, Stage.NORMAL, 0, (), None, 1.0, self.params)


def regime_proxy(index_close: pd.Series, window: int = 60, stressed_dd: float = 0.15) -> pd.Series:
    """A stand-in market stress level in [0, 1] until risk/regime.py's indicator is wired:
    the drawdown from the trailing `window`-day high, scaled so `stressed_dd` maps to 1.
    Causal: day t uses closes up to t."""
    high = index_close.rolling(window, min_periods=1).max()
    dd = 1.0 - index_close / high
    return (dd / stressed_dd).clip(0.0, 1.0)


def volume_ratio(volume: np.ndarray, t: int, avg_days: int) -> float:
    """volume[t] over the mean of the `avg_days` before t (1.0 without history)."""
    lo = max(0, t - avg_days)
    past = volume[lo:t]
    past = past[np.isfinite(past) & (past > 0)]
    if len(past) == 0 or not np.isfinite(volume[t]):
        return 1.0
    return float(volume[t] / past.mean())


def brake_state(brake: LiquidityBrake | None) -> dict[str, Any]:
    """The brake's state for the operator's risk panel and the transparency page (the
    integrator wires it); a platform without a brake shows NORMAL with default parameters."""
    return (brake or LiquidityBrake()).state().to_dict()
