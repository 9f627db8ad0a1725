"""The project's bar schema, its strict loader and writer, and sealed-day marking.

One CSV row per instrument and trading day (UTF-8, header required, any column order):

    code,date,open,high,low,close,prev_close,volume,amount,halted[,st]

- code: a six-digit A-share code (`600000`) or an index symbol with its exchange suffix
  (`000001.SH`, `000300.SH`, `399006.SZ`): a code whose suffix does not match the equity board
  of its prefix is an index. Indices have no price limits and are never sealed.
- date: YYYY-MM-DD, an XSHG trading day.
- open/high/low/close/prev_close: integers in fen (index points × 100).
- volume: integer shares; amount: integer fen; halted: 0/1 (a halted day has volume 0 and
  OHLC = prev_close); st: optional 0/1 (ST stocks have a ±5% band on the main board).

Malformed input is rejected whole with the file, the line and the reason; nothing is loaded.
Sealed flags are derived from the rules, not stored: a day *closed sealed at limit-down* when
the close equals the band's limit-down price; *locked* when it traded only at that price
(high == limit-down, 一字跌停). Likewise for limit-up.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from crowdleverage.domain.errors import DataFileError, InvalidInput
from crowdleverage.domain.security import Security
from crowdleverage.market.calendar import xshg
from crowdleverage.market.rules import PriceBand, price_band

COLUMNS = (
    "code",
    "date",
    "open",
    "high",
    "low",
    "close",
    "prev_close",
    "volume",
    "amount",
    "halted",
)
OPTIONAL_COLUMNS = ("st",)
_INDEX_RE = re.compile(r"^\d{6}\.(SH|SZ|BJ)$")
_INT_RE = re.compile(r"^-?\d+$")


@dataclass(frozen=True, slots=True)
class Bar:
    code: str
    date: dt.date
    open: int
    high: int
    low: int
    close: int
    prev_close: int
    volume: int
    amount: int
    halted: bool = False
    st: bool = False
    is_index: bool = False
    band: PriceBand | None = field(default=None, compare=False)

    @property
    def change_bps(self) -> int:
        """Close-to-close change in bps, rounded toward zero."""
        return int((self.close - self.prev_close) * 10_000 / self.prev_close)

    @property
    def sealed_down(self) -> bool:
        """Closed at the limit-down price (the seal held at the close)."""
        return self.band is not None and self.band.limit_down_fen == self.close and not self.halted

    @property
    def sealed_up(self) -> bool:
        return self.band is not None and self.band.limit_up_fen == self.close and not self.halted

    @property
    def locked_down(self) -> bool:
        """Traded only at limit-down all day (一字跌停): nothing could be sold."""
        return self.sealed_down and self.high == self.close

    @property
    def locked_up(self) -> bool:
        return self.sealed_up and self.low == self.close

    def row(self) -> list[str]:
        return [
            self.code,
            self.date.isoformat(),
            *(
                str(v)
                for v in (
                    self.open,
                    self.high,
                    self.low,
                    self.close,
                    self.prev_close,
                    self.volume,
                    self.amount,
                )
            ),
            "1" if self.halted else "0",
            "1" if self.st else "0",
        ]


def classify_code(code: str) -> tuple[str, bool]:
    """(normalised code, is_index). Raises InvalidInput for a code that is neither."""
    try:
        return Security.parse(code).code, False
    except InvalidInput:
        if _INDEX_RE.match(code.strip().upper()):
            return code.strip().upper(), True
        raise


def with_band(bar: Bar) -> Bar:
    """Attach the day's price band (equities only)."""
    if bar.is_index:
        return bar
    band = price_band(Security.parse(bar.code), bar.date, bar.prev_close, st=bar.st)
    return dataclasses.replace(bar, band=band)


def _int(value: str, column: str) -> int:
    v = value.strip()
    if not _INT_RE.match(v):
        raise ValueError(f"{column} {value!r} is not an integer (prices are in fen)")
    return int(v)


def _flag(value: str, column: str) -> bool:
    v = value.strip()
    if v not in ("0", "1", ""):
        raise ValueError(f"{column} {value!r} must be 0 or 1")
    return v == "1"


def parse_row(rec: dict[str, str]) -> Bar:
    """One CSV record → Bar, or ValueError with the reason."""
    try:
        code, is_index = classify_code(rec["code"])
    except InvalidInput as exc:
        raise ValueError(exc.message) from exc
    try:
        day = dt.date.fromisoformat(rec["date"].strip())
    except ValueError as exc:
        raise ValueError(f"date {rec['date']!r} is not YYYY-MM-DD") from exc
    o, h, lo, c, pc = (_int(rec[k], k) for k in ("open", "high", "low", "close", "prev_close"))
    vol, amt = _int(rec["volume"], "volume"), _int(rec["amount"], "amount")
    halted = _flag(rec["halted"], "halted")
    st = _flag(rec.get("st") or "0", "st")
    if min(o, h, lo, c, pc) <= 0:
        raise ValueError("prices must be positive")
    if h < lo:
        raise ValueError(f"high {h} is below low {lo}")
    if not (lo <= o <= h and lo <= c <= h):
        raise ValueError(f"open {o} and close {c} must lie within [low {lo}, high {h}]")
    if vol < 0 or amt < 0:
        raise ValueError("volume and amount must not be negative")
    if halted and vol != 0:
        raise ValueError("a halted day must have volume 0")
    if not xshg().is_trading_day(day):
        raise ValueError(f"{day} is not an XSHG trading day")
    return Bar(code, day, o, h, lo, c, pc, vol, amt, halted, st, is_index)


def read_text_file(path: Path | str) -> str:
    """A data file's text; a missing file or one that is not UTF-8 is a DataFileError."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataFileError(str(p), None, "file not found") from exc
    except UnicodeDecodeError as exc:
        raise DataFileError(str(p), None, f"not UTF-8 text ({exc.reason})") from exc


def read_bars(path: Path | str) -> list[Bar]:
    """Load a bar file, all or nothing. Rows come back sorted by (date, code), with bands."""
    return parse_bars(read_text_file(path), str(path))


def parse_bars(text: str, name: str = "<bars>") -> list[Bar]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataFileError(name, 1, f"missing column(s): {', '.join(missing)}")
    unknown = [h for h in header if h not in COLUMNS and h not in OPTIONAL_COLUMNS]
    if unknown:
        raise DataFileError(name, 1, f"unknown column(s): {', '.join(unknown)}")
    reader.fieldnames = header
    bars: list[Bar] = []
    seen: set[tuple[str, dt.date]] = set()
    for rec in reader:
        line = reader.line_num
        if None in rec or any(v is None for v in rec.values()):
            raise DataFileError(name, line, "wrong number of fields")
        try:
            bar = with_band(parse_row(rec))
        except (ValueError, InvalidInput) as exc:
            msg = exc.message if isinstance(exc, InvalidInput) else str(exc)
            raise DataFileError(name, line, msg) from exc
        key = (bar.code, bar.date)
        if key in seen:
            raise DataFileError(name, line, f"duplicate row for {bar.code} on {bar.date}")
        seen.add(key)
        bars.append(bar)
    if not bars:
        raise DataFileError(name, None, "no rows")
    bars.sort(key=lambda b: (b.date, b.code))
    return bars


def write_bars(bars: Iterable[Bar], path: Path | str) -> int:
    """Write bars in the schema (atomically: a temporary file renamed into place)."""
    p = Path(path)
    tmp = p.with_suffix(p.suffix + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow([*COLUMNS, "st"])
        for bar in sorted(bars, key=lambda b: (b.date, b.code)):
            w.writerow(bar.row())
            n += 1
    tmp.replace(p)
    return n


def by_day(bars: Iterable[Bar]) -> Iterator[tuple[dt.date, list[Bar]]]:
    """Group date-sorted bars by trading day."""
    day: dt.date | None = None
    group: list[Bar] = []
    for b in bars:
        if b.date != day:
            if group:
                assert day is not None
                yield day, group
            day, group = b.date, []
        group.append(b)
    if group:
        assert day is not None
        yield day, group
