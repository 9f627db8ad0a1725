"""`market validate`: the shipped bars obey the rules of their dates; broken bars are reported
with file, line and reason (exit 6)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from crowdleverage.cli import app
from crowdleverage.config import SHIPPED_DATA
from crowdleverage.market.validate import validate_file, validate_text

runner = CliRunner()
DATA = SHIPPED_DATA / "market"
HEADER = "code,date,open,high,low,close,prev_close,volume,amount,halted,st\n"
# real rows of the shipped file (000001 on 2016-01-04 and 05; 300007 on 2016-01-04)
PAB_0104 = "000001,2016-01-04,987,990,924,932,987,56349788,66037612800,0,0\n"
PAB_0105 = "000001,2016-01-05,927,952,917,938,932,66326996,75553132800,0,0\n"
CHINEXT_0104 = "300007,2016-01-04,3466,3493,3119,3119,3466,7878714,25291849600,0,0\n"


def test_the_shipped_files_obey_the_rules_of_their_dates():
    for name in ("ashare_sample_2015-11_2016-03.csv", "sh000001_2013_2020.csv"):
        res = validate_file(DATA / name)
        assert res.rows > 1_000
        assert res.violations == [], res.violations[:5]


def test_real_rows_pass_and_each_broken_row_is_named_with_line_and_reason():
    ok = validate_text(HEADER + PAB_0104 + PAB_0105 + CHINEXT_0104, "ok.csv")
    assert ok.violations == []
    broken = (
        HEADER
        + PAB_0104
        # −50% close on a ±10% main-board stock (line 3)
        + "000001,2016-01-05,927,952,466,466,932,66326996,75553132800,0,0\n"
        # halted, yet its prices moved (line 4)
        + "600000,2016-01-05,1800,1850,1790,1820,1800,0,0,1,0\n"
        # ST on the main board (±5%) closing −20% (line 5)
        + "600001,2016-01-05,1000,1000,800,800,1000,1000,800000,0,1\n"
        # ChiNext before the 2020 reform is ±10%: −15% is out of band (line 6)
        + "300007,2016-01-05,3119,3119,2651,2651,3119,1000,2651000,0,0\n"
    )
    res = validate_text(broken, "bad.csv")
    by_line: dict[int, list[str]] = {}
    for v in res.violations:
        assert v.file == "bad.csv"
        by_line.setdefault(v.line, []).append(v.reason)
    assert sorted(by_line) == [3, 4, 5, 6]
    assert any("close 466 fen is below the limit-down 839 fen" in r for r in by_line[3])
    assert any("not flat at prev close 1800" in r for r in by_line[4])
    assert any("close 800 fen is below the limit-down 950 fen (MAIN ST ±5%" in r
               for r in by_line[5])  # fmt: skip
    assert any("limit-down 2807 fen" in r for r in by_line[6])


def test_a_listing_day_has_no_limit_only_where_the_rules_say_so(tmp_path: Path):
    listings = tmp_path / "listings.csv"
    listings.write_text("code,listing_date\n688001,2021-03-01\n600002,2021-03-01\n")
    # STAR: no limit in its first five days → +150% on day 1 is legal, −30% on day 6 is not;
    # main board before 2023-04-10: a first day is capped at +44% of the issue price
    rows = (
        HEADER
        + "688001,2021-03-01,2500,2600,2400,2500,1000,100,250000,0,0\n"
        + "688001,2021-03-08,2500,2500,1750,1750,2500,100,175000,0,0\n"
        + "600002,2021-03-01,1440,1500,1440,1500,1000,100,150000,0,0\n"
    )
    path = tmp_path / "ipo.csv"
    path.write_text(rows)
    result = runner.invoke(
        app, ["market", "validate", str(path), "--listings", str(listings), "--json"]
    )
    assert result.exit_code == 6
    out = json.loads(result.stdout)
    lines = sorted({v["line"] for v in out["violations"]})
    assert lines == [3, 4], out["violations"]
    assert any("above the limit-up 1440 fen" in v["reason"] for v in out["violations"])


def test_the_cli_exits_zero_on_valid_bars_and_six_on_violations(tmp_path: Path):
    good = tmp_path / "good.csv"
    good.write_text(HEADER + PAB_0104 + PAB_0105)
    res = runner.invoke(app, ["market", "validate", str(good)])
    assert res.exit_code == 0 and "0 violation(s)" in res.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + PAB_0104 + "000001,2016-01-05,927,952,466,466,932,1,466,0,0\n")
    res = runner.invoke(app, ["market", "validate", str(bad)])
    assert res.exit_code == 6
    assert f"{bad}:3: 000001 2016-01-05: close 466 fen is below" in res.stdout
