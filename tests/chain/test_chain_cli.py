"""`crowdlev chain deploy` / `crowdlev chain status --json` on the embedded chain and on anvil."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowdleverage.cli import app

runner = CliRunner()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"CROWDLEV_DATA_DIR": str(tmp_path), **extra}


def test_status_before_deploy_is_not_found(tmp_path: Path) -> None:
    res = runner.invoke(app, ["chain", "status", "--json"], env=_env(tmp_path))
    assert res.exit_code == 3
    assert json.loads(res.stderr)["error"] == "not_found"


def test_deploy_then_status(tmp_path: Path) -> None:
    res = runner.invoke(app, ["chain", "deploy", "--json"], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.stdout)
    res = runner.invoke(app, ["chain", "status", "--json"], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    status = json.loads(res.stdout)
    assert status["chain"] == "embedded"
    assert status["block"] == manifest["block"] == 12  # 4 deploys + 8 registrations
    assert (
        status["contracts"]["CashToken"]["address"] == manifest["contracts"]["CashToken"]["address"]
    )
    assert all(c["abi_matches_sources"] for c in status["contracts"].values())
    assert (status["trading_day"], status["cash_supply_fen"], status["cash_paused"]) == (
        0,
        0,
        False,
    )


def test_events_with_filter_and_cursor(tmp_path: Path) -> None:
    assert runner.invoke(app, ["chain", "deploy"], env=_env(tmp_path)).exit_code == 0
    args = ["chain", "events", "--contract", "IdentityRegistry", "--event", "IdentitySet"]
    res = runner.invoke(app, [*args, "--limit", "3", "--json"], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    page = json.loads(res.stdout)
    assert [e["event"] for e in page["events"]] == ["IdentitySet"] * 3
    assert page["events"][0]["args"]["roles_after"] == 128  # compliance first
    res = runner.invoke(app, [*args, "--since", str(page["next"]), "--json"], env=_env(tmp_path))
    rest = json.loads(res.stdout)["events"]
    assert len(rest) == 5 and rest[0]["seq"] > page["next"]
    bad = runner.invoke(app, ["chain", "events", "--limit", "0"], env=_env(tmp_path))
    assert bad.exit_code == 2


def test_deploy_twice_exits_with_conflict(tmp_path: Path) -> None:
    assert runner.invoke(app, ["chain", "deploy"], env=_env(tmp_path)).exit_code == 0
    res = runner.invoke(app, ["chain", "deploy", "--json"], env=_env(tmp_path))
    assert res.exit_code == 4
    assert json.loads(res.stderr)["error"] == "conflict"


def test_deploy_rejects_bad_quorum(tmp_path: Path) -> None:
    res = runner.invoke(app, ["chain", "deploy", "--quorum", "0"], env=_env(tmp_path))
    assert res.exit_code == 2


def test_rpc_without_keys_is_a_config_error(tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["chain", "deploy", "--json"], env=_env(tmp_path, CROWDLEV_CHAIN="rpc")
    )
    assert res.exit_code == 78
    assert "CROWDLEV_CHAIN_KEY_COMPLIANCE" in json.loads(res.stderr)["message"]


@pytest.mark.anvil
def test_deploy_and_status_on_anvil(tmp_path: Path, anvil_url: str) -> None:
    env = _env(tmp_path, CROWDLEV_CHAIN="rpc", CROWDLEV_RPC_URL=anvil_url)
    res = runner.invoke(app, ["chain", "deploy", "--dev-keys", "--json"], env=env)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["chain", "status", "--dev-keys", "--json"], env=env)
    assert res.exit_code == 0, res.output
    status = json.loads(res.stdout)
    assert status["chain"] == "rpc" and status["chain_id"] == 31337
    assert status["events"] >= 8


FINANCING = {"TranchePool", "InsuranceFund", "MarginEngine", "SeniorShare", "JuniorShare"}


def test_deploy_with_financing(tmp_path: Path) -> None:
    res = runner.invoke(app, ["chain", "deploy", "--financing", "--json"], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.stdout)
    assert {*FINANCING, "LiabilityRoots"} <= set(manifest["contracts"])
    assert manifest["actors"]["engine"] == manifest["contracts"]["MarginEngine"]["address"]
    res = runner.invoke(app, ["chain", "status", "--json"], env=_env(tmp_path))
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["chain", "deploy", "--financing", "--json"], env=_env(tmp_path))
    assert res.exit_code == 4  # already deployed: a conflict, nothing written twice


def test_deploy_with_financing_on_anvil(tmp_path: Path, anvil_url: str) -> None:
    env = _env(tmp_path, CROWDLEV_CHAIN="rpc", CROWDLEV_RPC_URL=anvil_url)
    res = runner.invoke(app, ["chain", "deploy", "--financing", "--dev-keys", "--json"], env=env)
    assert res.exit_code == 0, res.output
    assert {*FINANCING, "LiabilityRoots"} <= set(json.loads(res.stdout)["contracts"])
