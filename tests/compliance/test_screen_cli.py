"""`crowdlev screen`, `screen-batch`, `lists load|show` through the real CLI app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowdleverage.cli import app

SDN = Path(__file__).parent / "fixtures" / "sdn_sample.csv"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CROWDLEV_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CROWDLEV_DATABASE_URL", raising=False)
    monkeypatch.delenv("CROWDLEV_CONFIG", raising=False)
    return CliRunner()


def test_screen_hit_exits_7_with_reasons(runner: CliRunner) -> None:
    res = runner.invoke(app, ["screen", "Ho Won Ri", "--dob", "1964-07-17", "--json"])

    assert res.exit_code == 7
    out = json.loads(res.stdout)
    assert out["hit"] is True
    assert out["matches"][0]["reference"] == "KPi.033"
    assert "date of birth matches 1964-07-17" in out["matches"][0]["reasons"]


def test_screen_clear_exits_0(runner: CliRunner) -> None:
    res = runner.invoke(app, ["screen", "张伟", "--json"])

    assert res.exit_code == 0
    assert json.loads(res.stdout)["hit"] is False


def test_screen_bad_dob_is_invalid_input(runner: CliRunner) -> None:
    res = runner.invoke(app, ["screen", "x", "--dob", "1964-13-01", "--json"])

    assert res.exit_code == 2
    assert json.loads(res.stderr)["error"] == "invalid_input"


def test_lists_load_then_batch(runner: CliRunner, tmp_path: Path) -> None:
    batch = tmp_path / "names.csv"
    batch.write_text("name,dob\n陈浩然,1975-02-03\nJohn Smith\n", encoding="utf-8")

    loaded = runner.invoke(app, ["lists", "load", str(SDN), "--json"])
    shown = runner.invoke(app, ["lists", "show", "--json"])
    res = runner.invoke(app, ["screen-batch", str(batch), "--json"])

    assert loaded.exit_code == 0, loaded.stderr
    assert json.loads(loaded.stdout)["entries"] == 4
    assert [x["list"] for x in json.loads(shown.stdout)["lists"]] == ["ofac_sdn"]
    assert res.exit_code == 7
    out = json.loads(res.stdout)
    assert (out["screened"], out["hits"]) == (2, 1)
    assert out["results"][0]["matches"][0]["entry_id"] == "9002"


def test_bad_files_name_the_line(runner: CliRunner, tmp_path: Path) -> None:
    batch = tmp_path / "names.csv"
    batch.write_text("Li Na,1990-02-30\n", encoding="utf-8")

    res = runner.invoke(app, ["screen-batch", str(batch), "--json"])
    bad_list = runner.invoke(app, ["lists", "load", str(batch), "--json"])

    assert res.exit_code == 2
    assert json.loads(res.stderr)["details"]["line"] == 1
    assert bad_list.exit_code == 2
    assert "expected 12 columns" in json.loads(bad_list.stderr)["message"]
