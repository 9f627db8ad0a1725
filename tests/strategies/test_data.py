"""The strategy data sets: facts of 2015 they must reproduce, and strict rejection of bad files."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest

from crowdleverage.domain.errors import DataFileError, InvalidInput
from crowdleverage.strategies import ah_premium
from crowdleverage.strategies import futures_rules as fr
from crowdleverage.strategies.data import (
    DATA_DIR,
    MarketData,
    load_etf,
    load_futures,
    load_index,
    load_market,
    load_yahoo,
)

T = pd.Timestamp


def basis_pct(market: MarketData, product: str, index: str, day: str) -> float:
    f = market.futures[product].loc[T(day), "close"]
    s = market.indices[index].loc[T(day), "close"]
    return (f / s - 1) * 100


def test_if_basis_facts(market: MarketData) -> None:
    # IF main closed 3696.8 on 2015-07-07 against CSI 300 at 3928.003
    assert market.futures["IF"].loc[T("2015-07-07"), "close"] == 3696.8
    assert market.indices["000300"].loc[T("2015-07-07"), "close"] == 3928.003
    assert round(basis_pct(market, "IF", "000300", "2015-07-07"), 2) == -5.89
    assert round(basis_pct(market, "IF", "000300", "2015-09-02"), 2) == -11.89


def test_if_limit_down_on_2015_08_25(market: MarketData) -> None:
    f = market.futures["IF"]
    prev, bar = f.loc[T("2015-08-24")], f.loc[T("2015-08-25")]
    assert bar["close"] == 2821.6 == bar["low"]
    day = dt.date(2015, 8, 25)
    assert fr.is_sealed_down("IF", day, prev["close"], bar["low"], bar["close"])
    # the day before closed on its low too but only 7.9% down: not a seal
    prev2 = f.loc[T("2015-08-21"), "close"]
    assert not fr.is_sealed_down("IF", dt.date(2015, 8, 24), prev2, prev["low"], prev["close"])


def test_volume_collapse_on_the_rule_change(market: MarketData) -> None:
    v = market.futures["IF"]["volume"]
    drop = v.loc[T("2015-09-07")] / v.loc[T("2015-09-02")] - 1
    assert round(drop * 100, 1) == -93.6


def test_50etf_nav_on_2015_08_25(market: MarketData) -> None:
    row = market.etf["510050"].loc[T("2015-08-25")]
    assert row["nav"] == 1.921 and row["close"] == 1.886
    assert round((row["close"] / row["nav"] - 1) * 100, 2) == -1.82


def test_every_series_is_sorted_and_unique(market: MarketData) -> None:
    frames = [*market.futures.values(), *market.indices.values(), *market.shares.values()]
    for df in [*frames, market.fx, *market.etf.values()]:
        assert df.index.is_monotonic_increasing and df.index.is_unique
    # NetEase files are newest first on disk; the loader sorts them
    assert market.indices["000300"].index[0] < market.indices["000300"].index[-1]


def test_the_source_errata_is_explicit(market: MarketData) -> None:
    row = market.shares["2318.HK"].loc[T("2010-01-15")]
    assert pd.isna(row["high"]) and pd.isna(row["low"]) and row["close"] == 28.783
    # the yfinance dividend-only row of 601318.SS is not a price row
    assert T("2010-07-13") not in market.shares["601318.SS"].index


def _copy(tmp_path: Path, name: str) -> Path:
    dst = tmp_path / name
    shutil.copy(DATA_DIR / name, dst)
    dst.chmod(0o644)
    return dst


def _edit_line(path: Path, line_no: int, new: str) -> None:
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    lines[line_no - 1] = new
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("2015-07-07,4021.8,4024.4,3650.0,abc,1518689.0", "close 'abc' is not a number"),
        ("2015-07-07,4021.8,4024.4,3650.0,-1,1518689.0", "close '-1' out of range"),
        ("2015-07-7x,4021.8,4024.4,3650.0,3696.8,1", "is not %Y-%m-%d"),
        ("2015-07-07,4021.8,3000.0,3650.0,3696.8,1", "high 3000.0 < low 3650.0"),
    ],
)
def test_bad_futures_rows_name_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    path = _copy(tmp_path, "xquant_IF.csv")
    _edit_line(path, 5, line)
    with pytest.raises(DataFileError) as err:
        load_futures(path)
    assert err.value.line == 5 and reason in err.value.reason and err.value.path == str(path)


def test_duplicate_date_and_missing_column(tmp_path: Path) -> None:
    path = _copy(tmp_path, "xquant_IH.csv")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[-1]]) + "\n")
    with pytest.raises(DataFileError, match="duplicate date 2017-12-29"):
        load_futures(path)
    bad = tmp_path / "noclose.csv"
    bad.write_text("Date,Open,High,Low,Volume,Dividends\n2015-01-05,1,2,1,3,0\n")
    with pytest.raises(DataFileError, match="missing columns"):
        load_yahoo(bad)
    with pytest.raises(DataFileError, match="file not found"):
        load_market(tmp_path / "nowhere")


def test_bad_index_and_etf_rows(tmp_path: Path) -> None:
    idx = _copy(tmp_path, "netease_000016.csv")
    _edit_line(idx, 3, "2019/9/26,'000016,上证50,x,2952.8,2926.5,2939.6,2928.8,-0.9,-0.03,1,1")
    with pytest.raises(DataFileError, match="收盘价 'x'") as err:
        load_index(idx)
    assert err.value.line == 3
    etf = _copy(tmp_path, "510050.csv")
    lines = etf.read_text(encoding="utf-8").splitlines()
    cells = lines[10].split(",")
    cells[15] = "n/a"  # discount
    lines[10] = ",".join(cells)
    etf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="discount 'n/a'") as err:
        load_etf(etf)
    assert err.value.line == 11


def test_further_instruments_are_picked_up_by_file_name(tmp_path: Path) -> None:
    for f in DATA_DIR.glob("*.csv"):
        _copy(tmp_path, f.name)
    # a further A/H pair and a further index, in the same formats (copies for the test)
    shutil.copy(DATA_DIR / "600036.SS.csv", tmp_path / "601398.SS.csv")
    shutil.copy(DATA_DIR / "3968.HK.csv", tmp_path / "1398.HK.csv")
    shutil.copy(DATA_DIR / "netease_000016.csv", tmp_path / "netease_000905.csv")
    (tmp_path / "notes.csv").write_text("not,a,data,file\n")  # not a known name: ignored
    m = load_market(tmp_path)
    assert {"601398.SS", "1398.HK"} <= set(m.shares) and "000905" in m.indices
    sf = ah_premium.build(m, ah_premium.AHParams(a_symbol="601398.SS", h_symbol="1398.HK"))
    assert sf.b.symbol == "1398.HK" and len(sf.frame) > 1_000
    with pytest.raises(InvalidInput, match="no H share known"):
        ah_premium.build(m, ah_premium.AHParams(a_symbol="601398.SS"))
    with pytest.raises(InvalidInput, match=r"no data for '0939\.HK'"):
        ah_premium.build(m, ah_premium.AHParams(a_symbol="601398.SS", h_symbol="0939.HK"))
