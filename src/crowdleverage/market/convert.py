"""Converters from published data formats to the project's bar schema (market/bars.py).

Formats:
- `tushare-qfq`: tushare `get_k_data` stock bars `code,date,open,high,low,close,volume,amount`
  (元, forward-adjusted; suspended days absent). The previous close is the previous row's
  close; each code's first row only seeds it. Trading days missing between a code's first and
  last row become halted bars. Adjusted prices blur limit moves (−9.6%…−10.5% for a −10% day):
  a price within `snap_bps` (default 50 bps) of the day's band edge, or beyond it, is set to
  the exact limit price, so that the file obeys the rules the exchange simulator enforces; the
  converter reports how many prices it snapped.
- `tushare-index`: tushare index daily `ts_code,trade_date,Close,open,high,low,pre_close,…,
  Volume,amount` (points; Volume in lots, amount in thousand 元).
- `netease`: NetEase (163) index history, newest first, Chinese headers
  `日期,股票代码,名称,收盘价,最高价,最低价,开盘价,前收盘,…,成交量,成交金额`.
- `tushare-hist`: tushare `get_hist_data` stock bars, one file per code named `<code>.csv`,
  newest first, `date,open,high,close,low,volume,price_change,…` (元, **not adjusted**,
  volume in lots of 100 shares, no traded amount: written as 0). The previous close is
  `close − price_change`, the exchange's own previous close: on an ex-rights or ex-dividend
  day it is the ex-rights reference price (除权除息参考价), not the previous row's close, so
  corporate actions stay visible (`crowdlev market corporate-actions --infer`). Trading days
  missing between a code's first and last rows become halted bars at the previous close.
  Only rows inside `--from`/`--to` are read (the published files carry a bar dated on a
  holiday, 2017-02-02, outside the shipped window).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

from crowdleverage.domain.errors import DataFileError, InvalidInput
from crowdleverage.domain.security import Security
from crowdleverage.market.bars import Bar, classify_code, with_band
from crowdleverage.market.calendar import xshg
from crowdleverage.market.rules import price_band

FORMATS = ("tushare-qfq", "tushare-index", "netease", "tushare-hist")


@dataclass
class ConvertReport:
    rows_in: int = 0
    bars_out: int = 0
    halted_added: int = 0
    snapped: int = 0


def _hundredths(value: str, column: str) -> int:
    """'12.345' → 1235 (half-up): source files carry floats; fen is our unit."""
    try:
        d = Decimal(value.strip())
    except (InvalidOperation, AttributeError) as exc:
        raise ValueError(f"{column} {value!r} is not a number") from exc
    if not d.is_finite():
        raise ValueError(f"{column} {value!r} is not a number")
    return int((d * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _signed_hundredths(value: str, column: str) -> int:
    """Like `_hundredths` for a signed change ('-0.48' → -48), half away from zero."""
    v = value.strip()
    neg = v.startswith("-")
    return -_hundredths(v[1:], column) if neg else _hundredths(v, column)


def _whole(value: str, column: str, scale: int = 1) -> int:
    try:
        d = Decimal(value.strip() or "0") * scale
    except (InvalidOperation, AttributeError) as exc:
        raise ValueError(f"{column} {value!r} is not a number") from exc
    if not d.is_finite() or d < 0:
        raise ValueError(f"{column} {value!r} must be a non-negative number")
    return int(d.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _read(path: Path, encoding: str = "utf-8") -> list[dict[str, str]]:
    try:
        with path.open(encoding=encoding, newline="") as fh:
            return list(csv.DictReader(fh))
    except FileNotFoundError as exc:
        raise DataFileError(str(path), None, "file not found") from exc
    except UnicodeDecodeError as exc:
        raise DataFileError(str(path), None, f"not {encoding} text") from exc


def _need(path: Path, rows: list[dict[str, str]], cols: tuple[str, ...]) -> None:
    if not rows:
        raise DataFileError(str(path), None, "no rows")
    missing = [c for c in cols if c not in rows[0]]
    if missing:
        raise DataFileError(str(path), 1, f"missing column(s): {', '.join(missing)}")


def _date(text: str) -> dt.date:
    t = text.strip()
    try:
        if len(t) == 8 and t.isdigit():
            return dt.date(int(t[:4]), int(t[4:6]), int(t[6:]))
        return dt.date.fromisoformat(t)
    except ValueError as exc:
        raise ValueError(f"date {text!r} is not a date") from exc


def _checked(bar: Bar) -> Bar:
    if bar.high < bar.low:
        raise ValueError(f"high {bar.high} is below low {bar.low}")
    if min(bar.open, bar.high, bar.low, bar.close, bar.prev_close) <= 0:
        raise ValueError("prices must be positive")
    if not xshg().is_trading_day(bar.date):
        raise ValueError(f"{bar.date} is not an XSHG trading day")
    return with_band(bar)


def _snap(bar: Bar, snap_bps: int) -> tuple[Bar, int]:
    """Move prices near or beyond the band edges onto the exact limit prices."""
    band = price_band(Security.parse(bar.code), bar.date, bar.prev_close, st=bar.st)
    if band.limit_down_fen is None or band.limit_up_fen is None:
        return bar, 0
    tol = bar.prev_close * snap_bps // 10_000
    down, up = band.limit_down_fen, band.limit_up_fen
    snapped = 0

    def fix(p: int) -> int:
        nonlocal snapped
        q = down if p <= down + tol else up if p >= up - tol else p
        snapped += q != p
        return q

    o, h, lo, c = fix(bar.open), fix(bar.high), fix(bar.low), fix(bar.close)
    h, lo = max(h, o, c), min(lo, o, c)
    return Bar(bar.code, bar.date, o, h, lo, c, bar.prev_close, bar.volume, bar.amount), snapped


def convert_tushare_qfq(
    path: Path, start: dt.date | None = None, end: dt.date | None = None, snap_bps: int = 50
) -> tuple[list[Bar], ConvertReport]:
    rows = _read(path)
    _need(path, rows, ("code", "date", "open", "high", "low", "close", "volume", "amount"))
    rep = ConvertReport(rows_in=len(rows))
    per_code: dict[str, list[tuple[int, dict[str, str]]]] = defaultdict(list)
    for i, r in enumerate(rows, start=2):
        per_code[r["code"].strip().zfill(6)].append((i, r))
    cal = xshg()
    out: list[Bar] = []
    for code, items in per_code.items():
        prev: int | None = None
        last_day: dt.date | None = None
        for line, r in sorted(items, key=lambda x: x[1]["date"]):
            try:
                classify_code(code)
                day = _date(r["date"])
                o, h, lo, c = (_hundredths(r[k], k) for k in ("open", "high", "low", "close"))
                vol = _whole(r["volume"], "volume")
                amt = _whole(r["amount"], "amount", 100)
                if prev is not None and last_day is not None:
                    for gap in cal.trading_days(cal.next_trading_day(last_day), day)[:-1]:
                        out.append(Bar(code, gap, prev, prev, prev, prev, prev, 0, 0, True))
                        rep.halted_added += 1
                    bar, n = _snap(Bar(code, day, o, h, lo, c, prev, vol, amt), snap_bps)
                    rep.snapped += n
                    out.append(_checked(bar))
                prev, last_day = c, day
            except (ValueError, InvalidInput) as exc:
                msg = exc.message if isinstance(exc, InvalidInput) else str(exc)
                raise DataFileError(str(path), line, msg) from exc
    return _window(out, start, end, rep)


def _window(
    bars: list[Bar], start: dt.date | None, end: dt.date | None, rep: ConvertReport
) -> tuple[list[Bar], ConvertReport]:
    kept = [
        with_band(b) if b.band is None else b
        for b in bars
        if (start is None or b.date >= start) and (end is None or b.date <= end)
    ]
    kept.sort(key=lambda b: (b.date, b.code))
    rep.bars_out = len(kept)
    return kept, rep


def _index_bar(code: str, r: dict[str, str], cols: tuple[str, ...], vol: int, amt: int) -> Bar:
    """One index row; `cols` names the source columns of date, open, high, low, close,
    previous close."""
    day = _date(r[cols[0]])
    o, h, lo, c, pc = (_hundredths(r[k], k) for k in cols[1:])
    bar = Bar(code, day, o, h, lo, c, pc, vol, amt, is_index=True)
    if not (lo <= o <= h and lo <= c <= h):
        raise ValueError(f"open {o} and close {c} must lie within [low {lo}, high {h}]")
    return _checked(bar)


def convert_tushare_index(
    path: Path, start: dt.date | None = None, end: dt.date | None = None
) -> tuple[list[Bar], ConvertReport]:
    cols = ("trade_date", "open", "high", "low", "Close", "pre_close")
    rows = _read(path)
    _need(path, rows, (*cols, "ts_code", "Volume", "amount"))
    rep = ConvertReport(rows_in=len(rows))
    out = []
    for line, r in enumerate(rows, start=2):
        try:
            code, is_index = classify_code(r["ts_code"])
            if not is_index:
                raise ValueError(f"{r['ts_code']} is not an index symbol")
            vol = _whole(r["Volume"], "Volume", 100)  # lots → shares
            amt = _whole(r["amount"], "amount", 1000 * 100)  # thousand 元 → fen
            out.append(_index_bar(code, r, cols, vol, amt))
        except (ValueError, InvalidInput) as exc:
            msg = exc.message if isinstance(exc, InvalidInput) else str(exc)
            raise DataFileError(str(path), line, msg) from exc
    return _window(out, start, end, rep)


def convert_netease(
    path: Path, start: dt.date | None = None, end: dt.date | None = None
) -> tuple[list[Bar], ConvertReport]:
    cols = ("日期", "开盘价", "最高价", "最低价", "收盘价", "前收盘")
    rows = _read(path)
    _need(path, rows, (*cols, "股票代码", "成交量", "成交金额"))
    rep = ConvertReport(rows_in=len(rows))
    out = []
    for line, r in enumerate(rows, start=2):
        try:
            raw = r["股票代码"].strip().lstrip("'")
            code = f"{raw}.SZ" if raw.startswith("399") else f"{raw}.SH"
            if r["前收盘"].strip() == "None":  # the index's first day seeds the previous close
                continue
            vol = _whole(r["成交量"], "成交量")
            amt = _whole(r["成交金额"], "成交金额", 100)
            out.append(_index_bar(code, r, cols, vol, amt))
        except (ValueError, InvalidInput, InvalidOperation) as exc:
            msg = exc.message if isinstance(exc, InvalidInput) else str(exc)
            raise DataFileError(str(path), line, msg) from exc
    return _window(out, start, end, rep)


def convert_tushare_hist(
    path: Path, start: dt.date | None = None, end: dt.date | None = None
) -> tuple[list[Bar], ConvertReport]:
    rows = _read(path)
    _need(path, rows, ("date", "open", "high", "close", "low", "volume", "price_change"))
    rep = ConvertReport(rows_in=len(rows))
    code = path.stem.strip()
    cal = xshg()
    out: list[Bar] = []
    last: Bar | None = None
    numbered = sorted(enumerate(rows, start=2), key=lambda x: x[1]["date"].strip())
    for line, r in numbered:
        try:
            code, is_index = classify_code(code)
            if is_index:
                raise ValueError(f"{code} is an index symbol, not a stock")
            day = _date(r["date"])
            if (start is not None and day < start) or (end is not None and day > end):
                continue  # outside the window: not read (the source has bad rows elsewhere)
            if not cal.is_trading_day(day):
                raise ValueError(f"{day} is not an XSHG trading day")
            o, h, lo, c = (_hundredths(r[k], k) for k in ("open", "high", "low", "close"))
            prev = c - _signed_hundredths(r["price_change"], "price_change")
            vol = _whole(r["volume"], "volume", 100)  # lots → shares
            if last is not None:
                if day <= last.date:
                    raise ValueError(f"{day} appears twice")
                for gap in cal.trading_days(cal.next_trading_day(last.date), day)[:-1]:
                    p = last.close
                    out.append(Bar(code, gap, p, p, p, p, p, 0, 0, True))
                    rep.halted_added += 1
            bar = Bar(code, day, o, h, lo, c, prev, vol, 0)
            if not (lo <= o <= h and lo <= c <= h):
                raise ValueError(f"open {o} and close {c} must lie within [low {lo}, high {h}]")
            out.append(_checked(bar))
            last = bar
        except (ValueError, InvalidInput) as exc:
            msg = exc.message if isinstance(exc, InvalidInput) else str(exc)
            raise DataFileError(str(path), line, msg) from exc
    return _window(out, start, end, rep)


def convert(
    fmt: str, path: Path, start: dt.date | None = None, end: dt.date | None = None
) -> tuple[list[Bar], ConvertReport]:
    """Convert one source file; all or nothing."""
    if fmt == "tushare-qfq":
        return convert_tushare_qfq(path, start, end)
    if fmt == "tushare-index":
        return convert_tushare_index(path, start, end)
    if fmt == "netease":
        return convert_netease(path, start, end)
    if fmt == "tushare-hist":
        return convert_tushare_hist(path, start, end)
    raise InvalidInput(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
