"""Replay: a stream of trading days, and of intraday ticks derived from each day's bar.

Intraday path from OHLC (the usual convention): open → low → high → close on an up day,
open → high → low → close on a down day, linearly interpolated on the tick grid over the four
hours of continuous trading (09:30–11:30, 13:00–15:00). A halted bar has no ticks. A day
locked at a limit has one price all day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.market.bars import Bar, by_day
from crowdleverage.market.calendar import SHANGHAI

MORNING = (dt.time(9, 30), dt.time(11, 30))
AFTERNOON = (dt.time(13, 0), dt.time(15, 0))
TRADING_MINUTES = 240


@dataclass(frozen=True, slots=True)
class TradingDay:
    date: dt.date
    bars: dict[str, Bar]

    @property
    def stocks(self) -> list[Bar]:
        return [b for b in self.bars.values() if not b.is_index]

    @property
    def indices(self) -> list[Bar]:
        return [b for b in self.bars.values() if b.is_index]


@dataclass(frozen=True, slots=True)
class Tick:
    code: str
    at: dt.datetime
    price_fen: int
    volume: int  # shares traded since the previous tick (an even split of the bar's volume)


@dataclass(frozen=True, slots=True)
class DaySummary:
    date: dt.date
    indices: dict[str, tuple[int, int]]  # code → (close, change bps)
    stocks: int
    halted: int
    sealed_down: int
    sealed_up: int
    locked_down: int
    down_9_5: int  # fell ≥ 9.5% (a limit-down day on adjusted data too)

    def as_dict(self) -> dict[str, object]:
        return {
            "date": self.date.isoformat(),
            "indices": {
                k: {"close": c, "change_bps": bps} for k, (c, bps) in sorted(self.indices.items())
            },
            "stocks": self.stocks,
            "halted": self.halted,
            "sealed_limit_down": self.sealed_down,
            "sealed_limit_up": self.sealed_up,
            "locked_limit_down": self.locked_down,
            "fell_9_5pct_or_more": self.down_9_5,
        }


def trading_days(
    bars: Iterable[Bar], start: dt.date | None = None, end: dt.date | None = None
) -> Iterator[TradingDay]:
    """Days in [start, end] that have bars, in order."""
    if start and end and end < start:
        raise InvalidInput(f"--to {end} is before --from {start}")
    for day, group in by_day(bars):
        if (start is None or day >= start) and (end is None or day <= end):
            yield TradingDay(day, {b.code: b for b in group})


def summarise(day: TradingDay) -> DaySummary:
    stocks = day.stocks
    live = [b for b in stocks if not b.halted]
    return DaySummary(
        date=day.date,
        indices={b.code: (b.close, b.change_bps) for b in day.indices},
        stocks=len(stocks),
        halted=len(stocks) - len(live),
        sealed_down=sum(b.sealed_down for b in live),
        sealed_up=sum(b.sealed_up for b in live),
        locked_down=sum(b.locked_down for b in live),
        down_9_5=sum(b.change_bps <= -950 for b in live),
    )


def _minute_to_time(day: dt.date, minute: int) -> dt.datetime:
    """Minute 0…240 of continuous trading → wall-clock time (the lunch break skipped)."""
    base = MORNING[0] if minute < 120 else AFTERNOON[0]
    offset = minute if minute < 120 else minute - 120
    start = dt.datetime.combine(day, base, tzinfo=SHANGHAI)
    return start + dt.timedelta(minutes=offset)


def intraday_ticks(bar: Bar, ticks_per_day: int = 16) -> list[Tick]:
    """Ticks along the OHLC path, on the fen grid, the last one at the close price."""
    if bar.halted:
        return []
    if ticks_per_day < 4:
        raise InvalidInput("ticks_per_day must be at least 4")
    up = bar.close >= bar.open
    path = (
        [bar.open, bar.low, bar.high, bar.close] if up else [bar.open, bar.high, bar.low, bar.close]
    )
    legs = len(path) - 1
    out: list[Tick] = []
    vol_each = bar.volume // ticks_per_day
    for i in range(ticks_per_day):
        pos = i * legs / (ticks_per_day - 1)  # 0 … legs along the path
        leg = min(int(pos), legs - 1)
        frac = pos - leg
        price = round(path[leg] + (path[leg + 1] - path[leg]) * frac)
        minute = round(i * (TRADING_MINUTES - 1) / (ticks_per_day - 1))
        vol = bar.volume - vol_each * (ticks_per_day - 1) if i == ticks_per_day - 1 else vol_each
        out.append(Tick(bar.code, _minute_to_time(bar.date, minute), price, vol))
    return out


def day_ticks(day: TradingDay, ticks_per_day: int = 16) -> Iterator[list[Tick]]:
    """All instruments' ticks of one day, grouped by time step (one list per step)."""
    series = [intraday_ticks(b, ticks_per_day) for b in day.bars.values() if not b.halted]
    for step in range(ticks_per_day):
        yield [s[step] for s in series]
