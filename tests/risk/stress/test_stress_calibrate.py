"""Calibration writes a parameter file that the platform's loader accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowdleverage.cli import app
from crowdleverage.risk.stress.calibrate import candidates
from crowdleverage.risk.stress.policy import MarginPolicy, load_params_toml


def test_calibration_output_is_loadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange
    monkeypatch.setenv("CROWDLEV_DATA_DIR", str(tmp_path))
    out = tmp_path / "chosen.toml"
    # Act
    res = CliRunner().invoke(app, ["stress", "calibrate", "--out", str(out), "--candidates", "2",
                                   "--paths-hist", "2", "--paths-mc", "4", "--accounts", "30",
                                   "--utilisation", "8000", "--json"])  # fmt: skip
    # Assert
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(report["rows"]) == 2
    assert report["rows"][0]["label"].startswith("lines today")  # today's set comes first
    policy = load_params_toml(out)
    chosen = report["chosen"]["candidate"]
    assert policy.insurance_premium_bps == chosen["premium"]
    assert policy.min_junior_ratio_bps == chosen["junior"]
    assert policy.stressed.full_close == chosen["full_close"]
    verdict = "meets every target" if report["chosen"]["feasible"] else "NO set met"
    assert verdict in out.read_text(encoding="utf-8").splitlines()[0]


def test_candidates_start_with_todays_parameters_and_are_valid() -> None:
    base = MarginPolicy()
    cands = candidates(12, seed=1, base=base)
    assert len(cands) == 12 and len(set(cands)) == 12
    assert cands[0].policy(base) == base
    for c in cands:
        pol = c.policy(base)  # validates the lines (initial ≥ warning ≥ liquidation > 100%)
        assert pol.tiers[3].liquidation_ratio_bps > 10_000


def test_shipped_calibrated_parameters_load() -> None:
    from crowdleverage.config import SHIPPED_DATA

    policy = load_params_toml(SHIPPED_DATA / "stress" / "params-calibrated.toml")
    assert policy.liquidation_full_close in (True, False)
    for t in policy.tiers.values():
        assert t.initial_ratio_bps > t.liquidation_ratio_bps > 10_000
