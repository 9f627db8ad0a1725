"""What a strategy hands the backtest: two legs and a causal daily signal.

A strategy builds a `StrategyFrame`: one row per trading day common to both legs, with
- `a_px`, `b_px`: closes in the leg's unit (index points for futures and a basket, 元 for A
  shares and the ETF, 元 for an H share converted at the day's HKD/CNY);
- `a_prev`, `b_prev`, `a_low`, `a_high`, `b_low`, `b_high` for limit seals, `a_vol`, `b_vol`;
- `spread_bps`: the quantity the strategy trades (basis, premium), for reports and the brake;
- `signal` ∈ {−1, 0, +1}: the target decided *with data up to that day's close*: +1 = long leg
  A and short leg B, −1 the reverse, 0 flat. The backtest executes it `lag` days later;
- `hedge`: leg B notional per unit of leg A notional, known at the same time as the signal.

Causality is the contract: a row's signal and hedge may depend only on rows up to it (the
shift test in tests/strategies checks this for every strategy).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd


class LegKind(StrEnum):
    FUTURES = "futures"  # CFFEX index future, lots, off-platform
    ETF = "etf"  # exchange-traded fund, lots of 100, tick 0.001 元
    BASKET = "basket"  # a stock basket replicating an index, valued at the index
    ASHARE = "ashare"  # an A share, lots of 100
    HSHARE = "hshare"  # an H share in Hong Kong, off-platform


@dataclass(frozen=True, slots=True)
class LegSpec:
    symbol: str
    kind: LegKind
    product: str | None = None  # futures product (IF, IH)

    def on_platform_when_long(self) -> bool:
        """A long leg the platform can custody and finance (MarginEngine)."""
        return self.kind in (LegKind.ETF, LegKind.BASKET, LegKind.ASHARE)


COLUMNS = (
    "a_px",
    "b_px",
    "a_prev",
    "b_prev",
    "a_low",
    "a_high",
    "b_low",
    "b_high",
    "a_vol",
    "b_vol",
    "spread_bps",
    "signal",
    "hedge",
)


@dataclass(frozen=True)
class StrategyFrame:
    name: str
    a: LegSpec
    b: LegSpec
    frame: pd.DataFrame
    instant: bool = False  # an arbitrage completed the day it is done (ETF creation/redemption)
    lag: int = 1  # days between the signal and its execution
    spread_sign: int = 1  # +1: a +1 position loses when spread_bps rises; −1: when it falls

    def __post_init__(self) -> None:
        missing = [c for c in COLUMNS if c not in self.frame.columns]
        assert not missing, f"dev: strategy frame lacks {missing}"


def threshold_positions(
    x: np.ndarray,
    entry: float,
    exit_: float,
    stop: float,
    *,
    allow_long: bool = True,
    allow_short: bool = True,
    cooldown: int = 0,
    max_hold: np.ndarray | None = None,
    tradeable: np.ndarray | None = None,
) -> np.ndarray:
    """A causal band rule on a standardised spread `x` (NaN = no information: stay flat).

    Flat → +1 when x < −entry (leg A cheap: long A, short B) and → −1 when x > entry. A +1
    position exits when x > −exit_, stops out when x < −stop; symmetric for −1. After a stop the
    rule stays flat `cooldown` days. `max_hold` (per row, days) closes a trade held too long;
    `tradeable` False forbids new entries that day. Row t uses x[:t+1] only."""
    n = len(x)
    out = np.zeros(n, dtype=np.int8)
    pos, held, cool = 0, 0, 0
    for t in range(n):
        v = x[t]
        if np.isnan(v):
            pos, held = 0, 0
        elif pos == 0:
            if cool > 0:
                cool -= 1
            elif tradeable is None or tradeable[t]:
                if allow_long and v < -entry:
                    pos = 1
                elif allow_short and v > entry:
                    pos = -1
            held = 0
        else:
            held += 1
            stopped = (pos == 1 and v < -stop) or (pos == -1 and v > stop)
            done = (pos == 1 and v > -exit_) or (pos == -1 and v < exit_)
            too_long = max_hold is not None and held > max_hold[t]
            if stopped:
                cool = cooldown
            if stopped or done or too_long:
                pos, held = 0, 0
        out[t] = pos
    return out
