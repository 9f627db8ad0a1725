import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from crowdleverage.cli import app

runner = CliRunner()
DATA = Path(__file__).resolve().parents[2] / "data" / "market"


def test_limits_json() -> None:
    res = runner.invoke(
        app,
        ["market", "limits", "600000", "--date", "2016-01-04", "--prev-close", "10.05", "--json"],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["board"], out["limit_down_fen"], out["limit_up_fen"]) == ("MAIN", 905, 1106)


def test_limits_chinext_and_st() -> None:
    res = runner.invoke(
        app,
        ["market", "limits", "300059", "--date", "2021-01-04", "--prev-close", "10.05", "--json"],
    )
    assert json.loads(res.stdout)["limit_up_fen"] == 1206
    res = runner.invoke(
        app,
        ["market", "limits", "600000", "--date", "2016-01-04", "--prev-close", "10.05", "--st"],
    )
    assert "9.55" in res.stdout and "10.55" in res.stdout


def test_limits_bad_input_exit_codes() -> None:
    bad_price = ["market", "limits", "600000", "--date", "2016-01-04", "--prev-close", "10.055"]
    res = runner.invoke(app, [*bad_price, "--json"])
    assert res.exit_code == 2
    assert json.loads(res.stderr)["error"] == "invalid_input"
    res = runner.invoke(
        app, ["market", "limits", "999999", "--date", "2016-01-04", "--prev-close", "10.05"]
    )
    assert res.exit_code == 2 and "matches no A-share board" in res.stderr
    res = runner.invoke(
        app, ["market", "limits", "600000", "--date", "1980-01-04", "--prev-close", "10"]
    )
    assert res.exit_code == 0  # the rule itself needs no calendar; bands exist for any date


def test_replay_json_week() -> None:
    res = runner.invoke(
        app,
        [
            "market",
            "replay",
            "--data",
            str(DATA / "ashare_sample_2015-11_2016-03.csv"),
            "--from",
            "2016-01-04",
            "--to",
            "2016-01-08",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    days = json.loads(res.stdout)
    assert [d["date"] for d in days] == [f"2016-01-0{i}" for i in range(4, 9)]
    assert days[0]["indices"]["000300.SH"]["change_bps"] == -702
    assert days[3]["sealed_limit_down"] > days[3]["stocks"] // 2


def test_replay_rejects_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("code,date\n600000,2016-01-04\n")
    res = runner.invoke(app, ["market", "replay", "--data", str(bad), "--json"])
    assert res.exit_code == 2
    assert "missing column" in json.loads(res.stderr)["message"]


def test_replay_rejects_reversed_range() -> None:
    res = runner.invoke(
        app, ["market", "replay", "--from", "2016-01-08", "--to", "2016-01-04", "--json"]
    )
    assert res.exit_code == 2


def test_console_script_runs_the_main_job(tmp_path: Path) -> None:
    """`make run`'s job, shortened to the first two days of the week to keep the suite fast."""
    res = subprocess.run(
        [sys.executable, "-m", "crowdleverage.cli", "run", "--to", "2016-01-05"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "CROWDLEV_DATA_DIR": str(tmp_path / "var")},
    )
    assert res.returncode == 0, res.stderr
    assert "2016-01-04" in res.stdout and "circuit-breaker" in res.stdout
    assert "senior NAV" in res.stdout  # the platform replay ran to its end-of-run figures
    assert "✗" not in res.stdout  # no invariant failed


def test_merge_combines_files_and_refuses_overlaps(tmp_path: Path) -> None:
    header = "code,date,open,high,low,close,prev_close,volume,amount,halted\n"
    a, b, out = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "out.csv"
    a.write_text(header + "600000,2016-01-07,1000,1010,990,1000,1000,100,100000,0\n")
    b.write_text(header + "600000,2016-01-08,1000,1010,990,1000,1000,100,100000,0\n")
    res = runner.invoke(app, ["market", "merge", str(a), str(b), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["bars"] == 2
    assert len(out.read_text().splitlines()) == 3
    res = runner.invoke(app, ["market", "merge", str(a), str(a), "--out", str(out), "--json"])
    assert res.exit_code == 2
    assert "also in" in json.loads(res.stderr)["message"]
