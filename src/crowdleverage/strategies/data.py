"""Strict loaders for the strategy data sets (data/strategies, see its README).

Each loader reads one published file format, checks every row it uses and raises
`DataFileError(path, line, reason)` on the first bad one (nothing half-loaded). The result is a
pandas DataFrame indexed by trading date (ascending, unique), float64 prices in the source's
unit: index points for futures and indices, 元 for A shares and the ETF, HKD for H shares.
Floats are fine here: these series feed analytics and the backtest's marks, whose accounting
converts to integer fen at each booking (see backtest.py).

Formats:
- futures (xquant):   `,open,high,low,close,volume` with the date in the first column
- index (NetEase):    UTF-8 BOM, newest first, Chinese headers 日期,股票代码,名称,收盘价,最高价,
                      最低价,开盘价,前收盘,…,成交量,成交金额; dates like 2015/7/7; the first row
                      ever may carry `None` for 前收盘 (no previous close)
- yahoo (A/H shares): `Date,Open,High,Low,Close,Volume,Dividends,Stock Splits`
- fx (FRED):          `Date,HKDCNY` = HKD per 1 CNY
- etf (DataYes):      `,secID,…,tradeDate,…,closePrice,…,turnoverVol,…,discount,…`; NAV = close
                      + discount (the source's definition)
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from crowdleverage.domain.errors import DataFileError

DATA_DIR = Path(__file__).resolve().parents[3] / "data" / "strategies"

FileRows = Iterator[tuple[int, dict[str, str]]]


def _rows(path: Path, required: tuple[str, ...], encoding: str = "utf-8-sig") -> FileRows:
    """(line number, row) for each data row; the header must hold `required`."""
    if not path.is_file():
        raise DataFileError(str(path), None, "file not found")
    try:
        with path.open(newline="", encoding=encoding) as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise DataFileError(str(path), 1, f"missing columns {missing} in header {header}")
            reader.fieldnames = header
            for row in reader:
                yield reader.line_num, row
    except UnicodeDecodeError as err:
        raise DataFileError(str(path), None, f"not {encoding}: {err}") from err


def _num(path: Path, line: int, row: dict[str, str], col: str, *, positive: bool = True) -> float:
    text = (row.get(col) or "").strip()
    try:
        v = float(text)
    except ValueError:
        raise DataFileError(str(path), line, f"{col} {text!r} is not a number") from None
    if not math.isfinite(v) or (positive and v <= 0) or (not positive and v < 0):
        raise DataFileError(str(path), line, f"{col} {text!r} out of range")
    return v


def _date(path: Path, line: int, text: str, fmt: str) -> dt.date:
    try:
        return dt.datetime.strptime(text.strip(), fmt).date()
    except ValueError:
        raise DataFileError(str(path), line, f"date {text!r} is not {fmt}") from None


# Rows the source gets wrong that a strict check refuses, each fixed explicitly and listed in
# data/strategies/README.md: (file name, date) → the columns set to NaN (unused by strategies).
ERRATA: dict[tuple[str, str], tuple[str, ...]] = {
    # high 27.935 < low 28.296 and close 28.783 above both
    ("2318.HK.csv", "2010-01-15"): ("high", "low"),
}


def _frame(path: Path, records: list[tuple[int, dt.date, dict[str, float]]]) -> pd.DataFrame:
    """Sort by date, refuse duplicate dates and empty files, check high ≥ low."""
    if not records:
        raise DataFileError(str(path), None, "no data rows")
    seen: dict[dt.date, int] = {}
    for line, day, vals in records:
        if day in seen:
            raise DataFileError(str(path), line, f"duplicate date {day} (also line {seen[day]})")
        seen[day] = line
        for col in ERRATA.get((path.name, day.isoformat()), ()):
            vals[col] = float("nan")
        if "high" in vals and "low" in vals and vals["high"] < vals["low"]:
            raise DataFileError(str(path), line, f"high {vals['high']} < low {vals['low']}")
    records.sort(key=lambda r: r[1])
    idx = pd.DatetimeIndex([pd.Timestamp(r[1]) for r in records], name="date")
    return pd.DataFrame([r[2] for r in records], index=idx)


def _ohlc(path: Path, line: int, row: dict[str, str], cols: dict[str, str]) -> dict[str, float]:
    out = {k: _num(path, line, row, c) for k, c in cols.items() if k != "volume"}
    if "volume" in cols:
        out["volume"] = _num(path, line, row, cols["volume"], positive=False)
    return out


def load_futures(path: Path) -> pd.DataFrame:
    """Index futures main continuous contract: open, high, low, close (points), volume (lots)."""
    cols = {k: k for k in ("open", "high", "low", "close", "volume")}
    recs = []
    for line, row in _rows(path, ("", *cols)):
        recs.append((line, _date(path, line, row[""], "%Y-%m-%d"), _ohlc(path, line, row, cols)))
    return _frame(path, recs)


def load_index(path: Path) -> pd.DataFrame:
    """A NetEase index file: open, high, low, close, prev_close (NaN on the first row ever),
    volume. A zero-volume row (the index before its launch, e.g. 2002 for CSI 300) is kept."""
    cols = {
        "open": "开盘价",
        "high": "最高价",
        "low": "最低价",
        "close": "收盘价",
        "volume": "成交量",
    }
    recs = []
    for line, row in _rows(path, ("日期", "前收盘", *cols.values())):
        vals = _ohlc(path, line, row, cols)
        pc = (row["前收盘"] or "").strip()
        vals["prev_close"] = float("nan") if pc == "None" else _num(path, line, row, "前收盘")
        recs.append((line, _date(path, line, row["日期"], "%Y/%m/%d"), vals))
    return _frame(path, recs)


def load_yahoo(path: Path) -> pd.DataFrame:
    """A or H share daily bars (split- and dividend-adjusted by the source). yfinance writes a
    dividend event as its own row with empty prices (e.g. 601318.SS on 2010-07-13): such a row
    is skipped because the adjusted prices already carry the dividend; a row with empty prices
    and no dividend is an error. A zero-volume row is a halted day (kept, volume 0)."""
    cols = {"open": "Open", "high": "High", "low": "Low", "close": "Close", "volume": "Volume"}
    recs = []
    for line, row in _rows(path, ("Date", "Dividends", *cols.values())):
        if not (row["Close"] or "").strip() and _num(path, line, row, "Dividends") > 0:
            continue
        recs.append(
            (line, _date(path, line, row["Date"], "%Y-%m-%d"), _ohlc(path, line, row, cols))
        )
    return _frame(path, recs)


def load_fx(path: Path) -> pd.DataFrame:
    """HKD per 1 CNY (column hkd_per_cny); FRED leaves holidays out."""
    recs = []
    for line, row in _rows(path, ("Date", "HKDCNY")):
        v = _num(path, line, row, "HKDCNY")
        if not 0.5 < v < 2.0:
            raise DataFileError(str(path), line, f"HKDCNY {v} is not a plausible HKD per CNY")
        recs.append((line, _date(path, line, row["Date"], "%Y-%m-%d"), {"hkd_per_cny": v}))
    return _frame(path, recs)


def load_etf(path: Path) -> pd.DataFrame:
    """The 50ETF: open, high, low, close, prev_close, volume (shares), nav (= close + discount,
    the source's definition), in 元 with three decimals (the ETF tick is 0.001 元)."""
    cols = {
        "open": "openPrice",
        "high": "highestPrice",
        "low": "lowestPrice",
        "close": "closePrice",
        "prev_close": "preClosePrice",
        "volume": "turnoverVol",
    }
    recs = []
    for line, row in _rows(path, ("tradeDate", "discount", *cols.values())):
        vals = _ohlc(path, line, row, cols)
        disc = (row["discount"] or "").strip()
        try:
            d = float(disc)
        except ValueError:
            raise DataFileError(str(path), line, f"discount {disc!r} is not a number") from None
        vals["nav"] = round(vals["close"] + d, 3)
        if vals["nav"] <= 0:
            raise DataFileError(str(path), line, f"NAV {vals['nav']} is not positive")
        recs.append((line, _date(path, line, row["tradeDate"], "%Y-%m-%d"), vals))
    return _frame(path, recs)


# ── the bundle a backtest uses ──────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class MarketData:
    """Every series a strategy can use, each indexed by its own trading dates."""

    futures: dict[str, pd.DataFrame]  # "IF", "IH"
    indices: dict[str, pd.DataFrame]  # "000300", "000016"
    shares: dict[str, pd.DataFrame]  # "601318.SS", "2318.HK", …
    fx: pd.DataFrame  # hkd_per_cny
    etf: dict[str, pd.DataFrame]  # "510050"


FILES: dict[str, tuple[str, str, Callable[[Path], pd.DataFrame]]] = {
    "IF": ("futures", "xquant_IF.csv", load_futures),
    "IH": ("futures", "xquant_IH.csv", load_futures),
    "000300": ("indices", "netease_399300.csv", load_index),
    "000016": ("indices", "netease_000016.csv", load_index),
    "601318.SS": ("shares", "601318.SS.csv", load_yahoo),
    "2318.HK": ("shares", "2318.HK.csv", load_yahoo),
    "600036.SS": ("shares", "600036.SS.csv", load_yahoo),
    "3968.HK": ("shares", "3968.HK.csv", load_yahoo),
    "510050": ("etf", "510050.csv", load_etf),
}

# Futures product → its spot index and (when shipped) a tradable ETF on that index.
FUTURES_SPOT: dict[str, tuple[str, str | None]] = {
    "IF": ("000300", None),
    "IH": ("000016", "510050"),
}
# A/H pairs: A symbol → H symbol.
AH_PAIRS: dict[str, str] = {"601318.SS": "2318.HK", "600036.SS": "3968.HK"}


NETEASE_CODES = {"399300": "000300"}  # the Shenzhen code of the CSI 300 → its index code


def load_market(data_dir: Path | None = None) -> MarketData:
    """Load every strategy file of a folder (strict; the first bad row raises).

    The shipped files (`FILES`) must be there; further files of the same formats are picked
    up by name, so that other instruments can be backtested without code: `xquant_<P>.csv`
    (futures product P), `netease_<code>.csv` (an index), `<code>.SS|SZ|HK.csv` (a share,
    yfinance) and `<6 digits>.csv` (an ETF in the DataYes format)."""
    base = data_dir or DATA_DIR
    parts: dict[str, dict[str, pd.DataFrame]] = {
        "futures": {},
        "indices": {},
        "shares": {},
        "etf": {},
    }
    for name, (kind, fname, loader) in FILES.items():
        parts[kind][name] = loader(base / fname)
    if base.is_dir():
        for path in sorted(base.glob("*.csv")):
            name, kind, loader = _classify(path.name)
            if kind and name not in parts[kind]:
                parts[kind][name] = loader(path)
    return MarketData(fx=load_fx(base / "HKDCNY.csv"), **parts)


def _classify(fname: str) -> tuple[str, str, Callable[[Path], pd.DataFrame]]:
    stem = fname.removesuffix(".csv")
    if stem.startswith("xquant_"):
        return stem.removeprefix("xquant_"), "futures", load_futures
    if stem.startswith("netease_"):
        code = stem.removeprefix("netease_")
        return NETEASE_CODES.get(code, code), "indices", load_index
    if stem.endswith((".SS", ".SZ", ".HK")):
        return stem, "shares", load_yahoo
    if stem.isdigit() and len(stem) == 6:
        return stem, "etf", load_etf
    return stem, "", load_fx
