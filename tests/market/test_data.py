"""Facts of the shipped real data, and rejection of malformed files."""

import datetime as dt
from pathlib import Path

import pytest

from crowdleverage.domain.errors import DataFileError
from crowdleverage.market.bars import parse_bars, read_bars, write_bars
from crowdleverage.market.convert import convert
from crowdleverage.market.replay import intraday_ticks, summarise, trading_days

DATA = Path(__file__).resolve().parents[2] / "data" / "market"
SAMPLE = DATA / "ashare_sample_2015-11_2016-03.csv"
D = dt.date


@pytest.fixture(scope="module")
def sample() -> list:
    return read_bars(SAMPLE)


@pytest.fixture(scope="module")
def shanghai() -> dict:
    return {b.date: b for b in read_bars(DATA / "sh000001_2013_2020.csv")}


def test_shanghai_composite_facts(shanghai: dict) -> None:
    assert shanghai[D(2015, 6, 12)].close == 516635  # 5166.35, the 2015 peak close
    assert shanghai[D(2015, 7, 8)].close == 350719
    assert shanghai[D(2015, 7, 27)].change_bps == -848  # −8.48%
    assert shanghai[D(2015, 8, 24)].change_bps == -849  # −8.49%


def test_shipped_file_is_the_conversion_of_the_raw_files(tmp_path: Path) -> None:
    raw = DATA / "raw"
    sh, _ = convert("tushare-index", raw / "sh000001_tushare_2013_2020.csv")
    out = tmp_path / "sh.csv"
    write_bars(sh, out)
    assert out.read_text() == (DATA / "sh000001_2013_2020.csv").read_text()
    stocks, rep = convert("tushare-qfq", raw / "ashare_qfq_sample_every8th_20151125_20160331.csv")
    assert rep.rows_in == 25828 and rep.halted_added > 0
    assert {(b.code, b.date) for b in stocks} <= {(b.code, b.date) for b in read_bars(SAMPLE)}


def test_csi300_circuit_breaker_days(sample: list) -> None:
    csi = {b.date: b for b in sample if b.code == "000300.SH"}
    assert csi[D(2016, 1, 4)].change_bps == -702
    assert csi[D(2016, 1, 7)].change_bps == -693


@pytest.mark.parametrize("day", [D(2016, 1, 4), D(2016, 1, 7)])
def test_most_stocks_sealed_limit_down(sample: list, day: dt.date) -> None:
    (td,) = trading_days(sample, day, day)
    s = summarise(td)
    live = s.stocks - s.halted
    assert s.sealed_down > live / 2, s
    assert s.down_9_5 > live / 2
    assert s.sealed_up < 10


def test_calm_day_has_few_seals(sample: list) -> None:
    (td,) = trading_days(sample, D(2016, 1, 6), D(2016, 1, 6))
    assert summarise(td).sealed_down == 0


def test_every_stock_bar_obeys_its_band(sample: list) -> None:
    for b in sample:
        if not b.is_index and b.band is not None and b.band.limit_down_fen is not None:
            assert b.band.contains(b.low) and b.band.contains(b.high), b


def test_ticks_follow_the_bar(sample: list) -> None:
    bar = next(b for b in sample if b.code == "000001" and b.date == D(2016, 1, 7))
    ticks = intraday_ticks(bar, 16)
    assert ticks[0].price_fen == bar.open and ticks[-1].price_fen == bar.close
    assert min(t.price_fen for t in ticks) == bar.low
    assert max(t.price_fen for t in ticks) == bar.high
    assert sum(t.volume for t in ticks) == bar.volume
    assert all(t.at.hour < 12 or t.at.hour >= 13 for t in ticks)  # nothing in the lunch break
    assert [t.at for t in ticks] == sorted(t.at for t in ticks)


HEADER = "code,date,open,high,low,close,prev_close,volume,amount,halted\n"
GOOD = "600000,2016-01-07,1000,1010,990,1000,1000,100,100000,0\n"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("code,date,open,high,low,close,volume,amount,halted\n" + GOOD, 1, "missing column"),
        (HEADER + GOOD + "600000,2016-01-08,1000,990,1010,1000,1000,1,1,0\n", 3, "below low"),
        (HEADER + "600000,2016-13-01,1000,1010,990,1000,1000,1,1,0\n", 2, "not YYYY-MM-DD"),
        (HEADER + "600000,2016-01-07,10.00,1010,990,1000,1000,1,1,0\n", 2, "not an integer"),
        (HEADER + "600000,2016-01-07,abc,1010,990,1000,1000,1,1,0\n", 2, "not an integer"),
        (HEADER + "600000,2016-01-09,1000,1010,990,1000,1000,1,1,0\n", 2, "not an XSHG trading"),
        (HEADER + GOOD + GOOD, 3, "duplicate"),
        (HEADER + "600000,2016-01-07,1000,1010,990,1000,1000,1,1\n", 2, "number of fields"),
        (HEADER + "12345,2016-01-07,1000,1010,990,1000,1000,1,1,0\n", 2, "six digits"),
        (HEADER + "600000,2016-01-07,1000,1010,990,1000,1000,5,1,1\n", 2, "halted day"),
        (HEADER + "600000,2016-01-07,1000,1010,990,1020,1000,1,1,0\n", 2, "within"),
    ],
)
def test_malformed_files_are_rejected_whole(text: str, line: int, reason: str) -> None:
    with pytest.raises(DataFileError, match=reason) as exc:
        parse_bars(text, "bad.csv")
    assert exc.value.line == line
    assert exc.value.path == "bad.csv"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="not found"):
        read_bars(tmp_path / "nope.csv")


def test_source_file_with_bad_number_names_its_line(tmp_path: Path) -> None:
    src = tmp_path / "k.csv"
    src.write_text(
        "code,date,open,high,low,close,volume,amount\n"
        "600000,2016-01-06,10.00,10.10,9.90,10.00,100,1000\n"
        "600000,2016-01-07,x,10.10,9.90,10.00,100,1000\n"
    )
    with pytest.raises(DataFileError, match="not a number") as exc:
        convert("tushare-qfq", src)
    assert exc.value.line == 3
