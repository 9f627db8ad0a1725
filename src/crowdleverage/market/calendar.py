"""The Shanghai (XSHG) trading calendar from exchange-calendars, with fast lookups.

Trading days are `datetime.date` in Asia/Shanghai. Continuous sessions: 09:30–11:30 and
13:00–15:00 (the lunch break). Outside the calendar's range every lookup raises OutOfRange.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals

from crowdleverage.domain.errors import InvalidInput, OutOfRange

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR_START = "2000-01-04"


@dataclass(frozen=True, slots=True)
class Session:
    """One trading day's continuous-trading windows, as aware datetimes in Asia/Shanghai."""

    day: dt.date
    open: dt.datetime
    break_start: dt.datetime
    break_end: dt.datetime
    close: dt.datetime

    def is_trading(self, at: dt.datetime) -> bool:
        """True inside 09:30–11:30 or 13:00–15:00 (closed ends at the close)."""
        return self.open <= at < self.break_start or self.break_end <= at < self.close


def parse_date(text: str | dt.date) -> dt.date:
    if isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(text.strip())
    except (ValueError, AttributeError) as exc:
        raise InvalidInput(f"date {text!r} is not YYYY-MM-DD") from exc


class TradingCalendar:
    """XSHG trading days. Lookups are bisects over a sorted list built once."""

    def __init__(self) -> None:
        self._xcal = xcals.get_calendar("XSHG", start=CALENDAR_START)
        self._days: list[dt.date] = [ts.date() for ts in self._xcal.sessions]
        self._set = frozenset(self._days)
        self.first_day = self._days[0]
        self.last_day = self._days[-1]

    def _check(self, day: dt.date) -> None:
        if not (self.first_day <= day <= self.last_day):
            raise OutOfRange(
                f"{day} is outside the XSHG calendar ({self.first_day} … {self.last_day})",
                first=str(self.first_day),
                last=str(self.last_day),
            )

    def is_trading_day(self, day: dt.date | str) -> bool:
        d = parse_date(day)
        self._check(d)
        return d in self._set

    def next_trading_day(self, day: dt.date | str) -> dt.date:
        """The first trading day strictly after `day`."""
        d = parse_date(day)
        self._check(d)
        i = bisect.bisect_right(self._days, d)
        if i >= len(self._days):
            raise OutOfRange(f"no trading day after {d} in the calendar")
        return self._days[i]

    def previous_trading_day(self, day: dt.date | str) -> dt.date:
        """The last trading day strictly before `day`."""
        d = parse_date(day)
        self._check(d)
        i = bisect.bisect_left(self._days, d)
        if i == 0:
            raise OutOfRange(f"no trading day before {d} in the calendar")
        return self._days[i - 1]

    def trading_days(self, start: dt.date | str, end: dt.date | str) -> list[dt.date]:
        """Trading days in [start, end]."""
        a, b = parse_date(start), parse_date(end)
        self._check(a)
        self._check(b)
        if b < a:
            raise InvalidInput(f"range end {b} is before its start {a}")
        return self._days[bisect.bisect_left(self._days, a) : bisect.bisect_right(self._days, b)]

    def trading_days_between(self, start: dt.date, end: dt.date) -> int:
        """How many trading days after `start` up to and including `end` (0 if end ≤ start)."""
        return max(0, bisect.bisect_right(self._days, end) - bisect.bisect_right(self._days, start))

    def session(self, day: dt.date | str) -> Session:
        d = parse_date(day)
        if not self.is_trading_day(d):
            raise InvalidInput(f"{d} is not an XSHG trading day")
        ts = d.isoformat()

        def local(x: object) -> dt.datetime:
            return x.tz_convert(SHANGHAI).to_pydatetime()  # type: ignore[attr-defined,no-any-return]

        return Session(
            day=d,
            open=local(self._xcal.session_open(ts)),
            break_start=local(self._xcal.session_break_start(ts)),
            break_end=local(self._xcal.session_break_end(ts)),
            close=local(self._xcal.session_close(ts)),
        )


@lru_cache(maxsize=1)
def xshg() -> TradingCalendar:
    """The process-wide calendar (building it costs ~50 ms)."""
    return TradingCalendar()
