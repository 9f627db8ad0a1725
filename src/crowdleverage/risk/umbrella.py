"""The 2015 comparator: an umbrella trust (伞形信托) at the same leverage, from the same bars.

A borrower's junior capital J and a senior loan L × J buy the borrower's own initial
portfolio (same weights, valued at the setup day's close). At every close the unit NAV is
assets / ((1 + L) × J); at or below the stop line (0.90) the trust is liquidated from the next
trading day on: each security is sold at its open on the first day it is neither halted nor
locked at limit-down all day (一字跌停) — nothing is sold while sealed or suspended. What is
still unsold at the end is valued as in `accounting.end_marks` (one more limit-down for a
sealed or halted security). The senior loan carries no interest here (it flatters the trust
a little). Junior loss = 1 − max(0, assets − L × J) / J.
"""

from __future__ import annotations

from dataclasses import dataclass

from crowdleverage.market.replay import TradingDay
from crowdleverage.risk.accounting import end_marks

STOP_NAV = 0.90


@dataclass(frozen=True, slots=True)
class UmbrellaResult:
    leverage: float
    stopped_on: str | None
    junior_loss_pct: float
    senior_loss_pct: float
    unsold_at_end: int  # securities still held when the window ended


def umbrella_trust(
    weights: dict[str, float],
    setup_close_fen: dict[str, int],
    leverage: float,
    days: list[TradingDay],
    *,
    stop_nav: float = STOP_NAV,
) -> UmbrellaResult:
    """One trust over `days` (the replay window); `weights` sum to 1."""
    assets0 = 1.0 + leverage
    units = {c: assets0 * w / setup_close_fen[c] for c, w in weights.items() if w > 0}
    last = dict(setup_close_fen)
    cash = 0.0
    stopped: str | None = None
    for day in days:
        if stopped is not None:
            for code in list(units):
                bar = day.bars.get(code)
                if bar is None or bar.halted or bar.locked_down:
                    continue
                cash += units.pop(code) * bar.open
        for code in units:
            bar = day.bars.get(code)
            if bar is not None:
                last[code] = bar.close
        nav = (cash + sum(q * last[c] for c, q in units.items())) / assets0
        if stopped is None and nav <= stop_nav:
            stopped = day.date.isoformat()
    last_bars = {}
    for day in days:
        for code in units:
            if code in day.bars:
                last_bars[code] = day.bars[code]
    marks = end_marks(last_bars)
    value = cash + sum(
        q * (marks[c].price_fen if c in marks else last[c]) for c, q in units.items()
    )
    junior = max(0.0, value - leverage)
    senior_short = max(0.0, leverage - value)
    return UmbrellaResult(
        leverage=round(leverage, 3),
        stopped_on=stopped,
        junior_loss_pct=round(100.0 * (1.0 - junior), 2),
        senior_loss_pct=round(100.0 * senior_short / leverage, 2) if leverage else 0.0,
        unsold_at_end=len(units),
    )
