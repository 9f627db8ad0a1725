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


def test_shipped_calibrated_parameters_load_and_every_key_deploys(tmp_path: Path) -> None:
    """The shipped file has every key the platform reads (the loader is strict) and they all
    deploy: the on-chain ones through the operators' setters on a fresh chain, read back
    equal; the off-chain ones are what the platform runs."""
    import tomllib

    from crowdleverage.config import SHIPPED_DATA
    from crowdleverage.domain import params as P
    from crowdleverage.risk.stress.deploy import apply_policy, deploy_problems, read_policy
    from crowdleverage.risk.world import World, open_financing_chain

    # Arrange
    path = SHIPPED_DATA / "stress" / "params-calibrated.toml"
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    for key in (
        "liquidity_cap_bps",
        "liquidity_adv_days",
        "nav_stop_bps",
        "nav_stop_below_bps",
        "st_haircut_bps",
        "hard_floor_bps",
        "withdrawal_floor_with_debt_bps",
    ):
        assert key in raw, key
    assert {"phase_in_days", "st_haircut_bps", "haircut_mult_bps"} <= set(raw["stressed_regime"])
    policy = load_params_toml(path)
    assert deploy_problems(policy) == []
    assert "deploys: yes" in path.read_text(encoding="utf-8")
    codes = ["600000", "000001", "300015", "688001"]
    chain = open_financing_chain(tmp_path / "chain", ["x"])
    try:
        World(chain).list_securities(codes)
        # Act
        apply_policy(chain, policy, codes)
        got = read_policy(chain, codes)
    finally:
        chain.close()
    # Assert: every on-chain key as the file says
    assert {k: got["tiers"][k] for k in policy.tiers} == policy.tiers
    for key in ("max_single_security_bps", "max_platform_exposure_bps", "liquidation_penalty_bps",
                "hard_floor_bps", "max_fee_allowance_bps", "withdrawal_floor_with_debt_bps",
                "st_haircut_bps", "liquidity_cap_bps", "nav_stop_bps", "nav_stop_below_bps",
                "senior_target_apr_bps", "insurance_premium_bps", "platform_fee_bps",
                "min_junior_ratio_bps", "max_utilisation_bps"):  # fmt: skip
        assert got[key] == raw[key], key
    s = raw["stressed_regime"]
    assert (got["haircut_mult_bps"], got["stressed_st_haircut_bps"]) == (
        s["haircut_mult_bps"], s["st_haircut_bps"])  # fmt: skip
    assert (got["line_share_bps"], got["target_add_bps"], got["full_close"]) == (
        s["line_share_bps"], s["target_add_bps"], s["full_close"])  # fmt: skip
    assert got["board_haircuts"] == {
        "600000": raw["haircut_bps"]["MAIN"], "000001": raw["haircut_bps"]["MAIN"],
        "300015": raw["haircut_bps"]["CHINEXT"], "688001": raw["haircut_bps"]["STAR"],
    }  # fmt: skip
    # off chain: the operator's phase-in schedule and the liquidity window the platform runs
    assert s["phase_in_days"] == P.STRESSED_PHASE_IN_DAYS
    assert raw["liquidity_adv_days"] == P.LIQUIDITY_ADV_DAYS


def test_the_loader_is_strict_about_every_key(tmp_path: Path) -> None:
    import tomli_w

    from crowdleverage.domain.errors import InvalidInput
    from crowdleverage.risk.stress.deploy import deploy_problems

    base = MarginPolicy().to_toml_dict()
    for table, key in (("", "liquidity_cap_bps"), ("stressed_regime", "phase_in_days"),
                       ("", "hard_floor_bps"), ("regime", "calm_closes")):  # fmt: skip
        d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
        del (d[table] if table else d)[key]
        p = tmp_path / f"{key}.toml"
        p.write_text(tomli_w.dumps(d), encoding="utf-8")
        with pytest.raises(InvalidInput, match=f"missing {key}"):
            load_params_toml(p)
    d = {**base, "liquidity_cap": 1_000}
    (tmp_path / "extra.toml").write_text(tomli_w.dumps(d), encoding="utf-8")
    with pytest.raises(InvalidInput, match="unknown liquidity_cap"):
        load_params_toml(tmp_path / "extra.toml")
    # what the chain cannot carry is named
    odd = MarginPolicy().replace(liquidation_full_close=True)
    assert any("liquidation_full_close" in p for p in deploy_problems(odd))
    assert deploy_problems(MarginPolicy()) == []
