"""End-of-day suite, stored results, the latest result, the reports and the parameter file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowdleverage.cli import app
from crowdleverage.domain.errors import InvalidInput, NotFound
from crowdleverage.domain.security import Board
from crowdleverage.risk.stress.policy import MarginPolicy, load_params_toml, write_params_toml
from crowdleverage.risk.stress.suite import latest_result


def test_reduced_suite_cli_stores_a_result_and_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange
    monkeypatch.setenv("CROWDLEV_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    with pytest.raises(NotFound):
        latest_result(tmp_path)
    # Act
    res = runner.invoke(app, ["stress", "run", "--suite", "reduced", "--workers", "0",
                              "--as-of", "2026-11-27", "--json"])  # fmt: skip
    # Assert
    assert res.exit_code == 0, res.output
    printed = json.loads(res.stdout.strip().splitlines()[-1])
    latest = latest_result(tmp_path)
    assert latest["params_hash"] == printed["params_hash"]
    assert set(latest["scenarios"]) == {"cb2016", "crash2015", "mc60"}
    assert latest["date"] == "2026-11-27"
    for layer in ("borrower_margin", "insurance", "junior", "senior"):
        assert {"mean", "var99", "es99"} <= set(latest["scenarios"]["mc60"]["layers"][layer])
    assert "p_senior_loss" in latest["scenarios"]["cb2016"]
    assert latest["scenarios"]["cb2016"]["umbrella"]["3"]["median_account_loss"] > 0
    # the report: HTML with the plotly JavaScript inside (no CDN script tag) and a PDF
    out = tmp_path / "rep"
    res = runner.invoke(app, ["stress", "report", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    paths = json.loads(res.stdout.strip().splitlines()[-1])
    text = Path(paths["html"]).read_text(encoding="utf-8")
    assert "Plotly" in text and '<script src="http' not in text
    assert "cb2016" in text
    # the policy in words: the phase-in, the NAV stop, the cap and what the switch did
    assert "phased in over 5 stressed days" in text and "Liquidity cap: the platform" in text
    assert "accounts entering liquidation on a switch day" in text
    assert Path(paths["pdf"]).read_bytes()[:5] == b"%PDF-"


def test_bad_options_exit_with_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDLEV_DATA_DIR", str(tmp_path))
    res = CliRunner().invoke(app, ["stress", "run", "--scenario", "nope", "--workers", "0"])
    assert res.exit_code != 0
    assert "unknown scenario" in res.stderr
    assert not (tmp_path / "stress").exists()  # nothing half-written
    res = CliRunner().invoke(app, ["stress", "report"])
    assert res.exit_code != 0 and "no stress result" in res.stderr


def test_parameter_file_round_trip_and_rejects(tmp_path: Path) -> None:
    pol = MarginPolicy().replace(insurance_premium_bps=1_500, min_junior_ratio_bps=2_500)
    path = write_params_toml(pol, tmp_path / "p.toml", comment="test")
    back = load_params_toml(path)
    assert back == pol
    assert back.haircut_bps[Board.CHINEXT] == 8_000
    bad = tmp_path / "bad.toml"
    bad.write_text(path.read_text().replace("liquidation_ratio_bps = 11500",
                                            "liquidation_ratio_bps = 14000"))  # fmt: skip
    with pytest.raises(InvalidInput):
        load_params_toml(bad)
    with pytest.raises(InvalidInput):
        load_params_toml(tmp_path / "missing.toml")


def test_cli_help_names_every_scenario() -> None:
    from crowdleverage.risk.stress.cli import SCENARIO_NAMES
    from crowdleverage.risk.stress.scenarios import SCENARIOS

    assert ", ".join(SCENARIOS) == SCENARIO_NAMES
