"""`market validate`: every bar against the schema and the rules in force on its date.

Checks, per row (each violation with the file, the CSV line and the reason):

- the schema (`bars.parse_row`): a malformed row is one violation, the rest still checked;
- the price band of the bar's date (`rules.price_band`: board, ST flag, the board's history —
  ±10% main board, ±5% ST, ChiNext ±20% from 2020-08-24, STAR ±20%, BSE ±30%): open, high,
  low and close inside [limit-down, limit-up] of the previous close;
- a listing's first days have no limit (or +44%/−36% on a pre-2023 main-board first day)
  when a listings file gives the listing date; without it every bar is checked as long
  listed. A resumption after a trading halt has the usual band against the last close before
  the halt (the previous close of the row), which is what the rules say for a suspension;
- a halted bar is flat at the previous close (open = high = low = close = prev_close) with
  volume and amount 0;
- prev_close is not compared with the previous row's close: on an ex-rights or
  ex-dividend day the exchange's reference price differs from it (and a forward-adjusted
  file differs by rounding), so a mismatch is not a rule violation;
- indices carry no band and are only checked for the schema.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

from crowdleverage.domain.errors import DataFileError, InvalidInput
from crowdleverage.domain.security import Security
from crowdleverage.market.bars import (
    COLUMNS,
    OPTIONAL_COLUMNS,
    Bar,
    parse_row,
    read_text_file,
)
from crowdleverage.market.calendar import xshg
from crowdleverage.market.rules import price_band


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    code: str
    date: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.code} {self.date}: {self.reason}"


@dataclass
class ValidationResult:
    file: str
    rows: int
    codes: int
    first_day: str | None
    last_day: str | None
    violations: list[Violation]


def load_listings(path: Path) -> dict[str, dt.date]:
    """code → listing date, from a CSV with `code` and `listing_date` (YYYY-MM-DD) or
    tushare's `timeToMarket` (YYYYMMDD; 0 = unknown)."""
    reader = csv.DictReader(io.StringIO(read_text_file(path)))
    out: dict[str, dt.date] = {}
    for rec in reader:
        raw = (rec.get("listing_date") or rec.get("timeToMarket") or "").strip()
        if not raw or raw == "0":
            continue
        try:
            day = dt.date.fromisoformat(raw) if "-" in raw else dt.datetime.strptime(
                raw, "%Y%m%d").date()  # fmt: skip
        except ValueError as exc:
            raise DataFileError(str(path), reader.line_num, f"bad listing date {raw!r}") from exc
        out[str(rec["code"]).strip().zfill(6)] = day
    return out


def _listing_index(listed: dt.date | None, day: dt.date) -> int | None:
    """1 on the listing day, 2 on the next trading day, …; None when unknown."""
    if listed is None or day < listed or (day - listed).days > 60:
        return None  # unknown, or long past the first days any rule treats apart
    cal = xshg()
    return len(cal.trading_days(listed, day))


def _band_reasons(bar: Bar, listed: dt.date | None) -> list[str]:
    sec = Security.parse(bar.code)
    idx = _listing_index(listed, bar.date)
    band = price_band(sec, bar.date, bar.prev_close, st=bar.st, listing_day_index=idx)
    rule = (
        f"{sec.board.value}{' ST' if bar.st else ''} "
        + (f"±{band.limit_bps / 100:g}%" if band.limit_bps is not None else "first-day band")
        + f" of prev close {bar.prev_close}"
    )
    out = []
    for name, price in (("open", bar.open), ("high", bar.high), ("low", bar.low),
                        ("close", bar.close)):  # fmt: skip
        if band.limit_down_fen is not None and price < band.limit_down_fen:
            out.append(f"{name} {price} fen is below the limit-down {band.limit_down_fen} "
                       f"fen ({rule})")  # fmt: skip
        elif band.limit_up_fen is not None and price > band.limit_up_fen:
            out.append(f"{name} {price} fen is above the limit-up {band.limit_up_fen} "
                       f"fen ({rule})")  # fmt: skip
    return out


def _halt_reasons(bar: Bar) -> list[str]:
    moved = [n for n, p in (("open", bar.open), ("high", bar.high), ("low", bar.low),
                            ("close", bar.close)) if p != bar.prev_close]  # fmt: skip
    out = []
    if moved:
        out.append(f"halted bar is not flat at prev close {bar.prev_close}: "
                   f"{', '.join(moved)} differ")  # fmt: skip
    if bar.volume or bar.amount:
        out.append("halted bar with volume or amount")
    return out


def validate_text(
    text: str, name: str, listings: dict[str, dt.date] | None = None
) -> ValidationResult:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [h for h in header if h not in COLUMNS and h not in OPTIONAL_COLUMNS]
    if missing or unknown:
        why = f"missing column(s): {', '.join(missing)}" if missing else (
            f"unknown column(s): {', '.join(unknown)}")  # fmt: skip
        raise DataFileError(name, 1, why)
    reader.fieldnames = header
    listings = listings or {}
    rows: list[tuple[int, Bar]] = []
    violations: list[Violation] = []
    seen: set[tuple[str, dt.date]] = set()
    for rec in reader:
        line = reader.line_num
        if None in rec or any(v is None for v in rec.values()):
            violations.append(
                Violation(name, line, str(rec.get("code")), "", "wrong number of fields")
            )
            continue
        try:
            bar = parse_row(rec)
        except (ValueError, InvalidInput) as exc:
            msg = exc.message if isinstance(exc, InvalidInput) else str(exc)
            violations.append(Violation(name, line, rec["code"], rec["date"], msg))
            continue
        if (bar.code, bar.date) in seen:
            violations.append(Violation(name, line, bar.code, bar.date.isoformat(),
                                        "duplicate row"))  # fmt: skip
            continue
        seen.add((bar.code, bar.date))
        rows.append((line, bar))
    violations.extend(_rule_violations(rows, name, listings))
    violations.sort(key=lambda v: v.line)
    days = sorted({b.date for _, b in rows})
    return ValidationResult(
        file=name,
        rows=len(rows),
        codes=len({b.code for _, b in rows}),
        first_day=days[0].isoformat() if days else None,
        last_day=days[-1].isoformat() if days else None,
        violations=violations,
    )


def _rule_violations(
    rows: list[tuple[int, Bar]], name: str, listings: dict[str, dt.date]
) -> list[Violation]:
    out: list[Violation] = []
    for line, bar in sorted(rows, key=lambda r: (r[1].date, r[1].code)):
        if bar.is_index:
            continue
        reasons: list[str] = []
        try:
            reasons += _band_reasons(bar, listings.get(bar.code))
        except InvalidInput as exc:
            reasons.append(exc.message)
        if bar.halted:
            reasons += _halt_reasons(bar)
        out += [Violation(name, line, bar.code, bar.date.isoformat(), r) for r in reasons]
    return out


def validate_file(path: Path, listings: dict[str, dt.date] | None = None) -> ValidationResult:
    return validate_text(read_text_file(path), str(path), listings)
