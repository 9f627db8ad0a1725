"""The market as the platform sees it: the shipped history replayed tick by tick.

Each trading day of the bar file becomes `ticks_per_day` steps (market.replay's OHLC path);
`advance()` moves one step and returns the new prices. The feed knows each stock's band and
whether it is sitting at limit-down (a sell cannot fill through a seal) or halted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from crowdleverage.domain.errors import InvalidInput, NotFound, RuleViolation
from crowdleverage.domain.security import Security
from crowdleverage.market.bars import Bar, read_bars
from crowdleverage.market.replay import TradingDay, intraday_ticks, trading_days


@dataclass(frozen=True, slots=True)
class Quote:
    code: str
    price_fen: int
    prev_close_fen: int
    limit_down_fen: int | None
    limit_up_fen: int | None
    halted: bool
    st: bool

    @property
    def at_limit_down(self) -> bool:
        return self.limit_down_fen is not None and self.price_fen <= self.limit_down_fen

    @property
    def at_limit_up(self) -> bool:
        return self.limit_up_fen is not None and self.price_fen >= self.limit_up_fen


class MarketFeed:
    def __init__(
        self,
        bars: list[Bar],
        *,
        start: dt.date | None = None,
        ticks_per_day: int = 8,
        codes: set[str] | None = None,
    ) -> None:
        if ticks_per_day < 4:
            raise InvalidInput("ticks_per_day must be at least 4")
        keep = [b for b in bars if not b.is_index and (codes is None or b.code in codes)]
        self.indices = [b for b in bars if b.is_index]
        self.days: list[TradingDay] = list(trading_days(keep, start=start))
        if not self.days:
            raise InvalidInput(f"no trading days in the market data from {start}")
        self.ticks_per_day = ticks_per_day
        self.day_index = 0
        self.step = 0
        self._paths: dict[str, list[int]] = {}
        self._load_day()

    @classmethod
    def from_file(cls, path: Path, **kw: object) -> MarketFeed:
        return cls(read_bars(path), **kw)  # type: ignore[arg-type]

    # ------------------------------------------------------------------------------ state

    @property
    def today(self) -> dt.date:
        return self.days[self.day_index].date

    @property
    def finished(self) -> bool:
        return self.day_index == len(self.days) - 1 and self.step == self.ticks_per_day - 1

    def _load_day(self) -> None:
        day = self.days[self.day_index]
        self._paths = {}
        for code, bar in day.bars.items():
            ticks = intraday_ticks(bar, self.ticks_per_day)
            self._paths[code] = [t.price_fen for t in ticks] if ticks else []

    def quote(self, code: str) -> Quote:
        bar = self.days[self.day_index].bars.get(code)
        if bar is None:
            raise NotFound(f"security {code} has no market data on {self.today}")
        path = self._paths.get(code) or []
        price = path[self.step] if path else bar.prev_close
        band = bar.band
        return Quote(
            code,
            price,
            bar.prev_close,
            band.limit_down_fen if band else None,
            band.limit_up_fen if band else None,
            bar.halted,
            bar.st,
        )

    def quote_or_last(self, code: str) -> Quote:
        """Today's quote, or — for a security with no bar today (suspended all day, not in
        the file) — a halted quote at its last close before today."""
        try:
            return self.quote(code)
        except NotFound:
            for day in reversed(self.days[: self.day_index]):
                bar = day.bars.get(code)
                if bar is not None:
                    return Quote(code, bar.close, bar.close, None, None, True, bar.st)
            raise

    def prices(self) -> dict[str, int]:
        return {code: self.quote(code).price_fen for code in self.days[self.day_index].bars}

    def codes(self) -> list[str]:
        return sorted(self.days[self.day_index].bars)

    def tradable(self, code: str) -> Quote:
        Security.parse(code)
        q = self.quote(code)
        if q.halted:
            raise RuleViolation(f"{code} is halted on {self.today}", rule="halted", code=code,
                                date=self.today.isoformat())  # fmt: skip
        return q

    # ---------------------------------------------------------------------------- advance

    def advance(self) -> bool:
        """One step forward. True when the step started a new trading day (the previous
        day closed: the caller runs its end of day first)."""
        if self.step < self.ticks_per_day - 1:
            self.step += 1
            return False
        if self.day_index == len(self.days) - 1:
            return False
        self.day_index += 1
        self.step = 0
        self._load_day()
        return True

    def seek(self, day: dt.date, step: int) -> None:
        """Resume at (day, step), e.g. from a saved snapshot."""
        idx = next((i for i, d in enumerate(self.days) if d.date == day), None)
        if idx is None or not 0 <= step < self.ticks_per_day:
            raise InvalidInput(
                f"cannot resume the replay at {day} step {step}: not in the loaded market data"
            )
        self.day_index, self.step = idx, step
        self._load_day()

    def at_close(self) -> bool:
        return self.step == self.ticks_per_day - 1
