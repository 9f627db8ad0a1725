"""Deploying beyond the core four: labels, ERC-5202 blueprints, contracts created by other
contracts (register_at), recorded in the manifest and surviving a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowdleverage.chain.deploy import (
    FINANCING_ACTORS,
    FINANCING_CONTRACTS,
    INSTITUTIONAL_TIER,
    deploy_financing,
    deploy_system,
    read_manifest,
    record_contracts,
)
from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.params import read_params
from crowdleverage.chain.roles import Role
from crowdleverage.chain.rpc import RpcChain
from crowdleverage.chain.scenario import SCENARIO_ACTORS
from crowdleverage.domain import params as P
from crowdleverage.domain.errors import Conflict, NotFound

ERC5202_PREAMBLE = bytes.fromhex("fe7100")
FINANCING_KEYS = ActorKeys.dev(20160104, FINANCING_ACTORS)  # no "pool" key: it is an alias


def _extend(chain: EmbeddedChain | RpcChain) -> tuple[str, str]:
    registry = chain.contract_address("IdentityRegistry")
    second = chain.deploy("CashToken", [registry], actor="admin", label="CashTokenUSD")
    blueprint = chain.deploy_blueprint("CashToken", actor="admin")
    chain.register_at("Cash", chain.contract_address("CashToken"), "CashToken")
    return second, blueprint


def test_labels_blueprints_and_attachments_persist(tmp_path: Path, dev_keys: ActorKeys) -> None:
    chain = EmbeddedChain(tmp_path, dev_keys)
    deploy_system(chain, tmp_path)
    second, blueprint = _extend(chain)
    assert second != chain.contract_address("CashToken")
    assert chain.code_at(blueprint).startswith(ERC5202_PREAMBLE)
    assert chain.call("Cash", "decimals") == 2
    assert chain.call("CashTokenUSD", "REGISTRY") == chain.contract_address("IdentityRegistry")
    with pytest.raises(Conflict):
        chain.deploy("CashToken", [second], actor="admin", label="CashTokenUSD")
    with pytest.raises(NotFound):
        chain.register_at("Nothing", "0x" + "11" * 20, "CashToken")
    with pytest.raises(NotFound):
        chain.deploy("NoSuchContract", [], actor="admin")
    record_contracts(chain, tmp_path, ["CashTokenUSD", "Cash"])
    chain.alias("usd_pool", second)
    with pytest.raises(Conflict):
        chain.alias("custodian", second)
    root = chain.state_root()
    chain.close()

    again = EmbeddedChain(tmp_path, dev_keys, read_only=True)
    try:
        assert again.state_root() == root
        assert again.deployed()["CashTokenUSD"] == second
        assert again.call("Cash", "symbol") == "CNYC"
        assert "CashToken#blueprint" not in again.deployed()
        assert again.address_of("usd_pool") == second
    finally:
        again.close()
    manifest = read_manifest(tmp_path)
    assert manifest["contracts"]["CashTokenUSD"]["source"] == "CashToken"


@pytest.mark.anvil
def test_labels_blueprints_and_attachments_on_anvil(
    anvil_url: str, dev_keys: ActorKeys, tmp_path: Path
) -> None:
    chain = RpcChain(anvil_url, dev_keys, tmp_path)
    chain.fund(SCENARIO_ACTORS, 10**21)
    deploy_system(chain, tmp_path)
    second, blueprint = _extend(chain)
    assert chain.code_at(blueprint).startswith(ERC5202_PREAMBLE)
    assert chain.call("Cash", "decimals") == 2
    record_contracts(chain, tmp_path, ["CashTokenUSD", "Cash"])
    again = RpcChain(anvil_url, dev_keys, tmp_path)
    assert again.deployed()["CashTokenUSD"] == second
    assert again.call("CashTokenUSD", "totalSupply") == 0


def _check_financing(chain: EmbeddedChain | RpcChain) -> None:
    pool, engine = chain.address_of("pool"), chain.address_of("engine")
    assert pool == chain.contract_address("TranchePool")
    assert engine == chain.contract_address("MarginEngine")
    assert chain.call("IdentityRegistry", "has_role", engine, int(Role.PLATFORM | Role.BROKER))
    assert chain.call("TranchePool", "JUNIOR") == chain.contract_address("JuniorShare")
    assert chain.call("InsuranceFund", "engine") == engine
    # deployed from the one parameter definition
    for tier in P.TIERS.values():
        assert tuple(chain.call("RiskParams", "tiers", tier.tier)) == P.engine_tier(tier)
    assert tuple(chain.call("RiskParams", "limits")) == P.engine_limits()
    params = read_params(chain)
    assert (params.version, params.digest) == (P.VERSION, P.digest())
    # the definition's tiers, and the institutional tier set beside them (strategy accounts)
    assert {n: t for n, t in params.tiers.items() if n != INSTITUTIONAL_TIER} == P.TIERS
    assert INSTITUTIONAL_TIER in params.tiers
    assert chain.call("RiskParams", "engine") == engine


def test_financing_deploys_on_top_and_survives_a_restart(tmp_path: Path) -> None:
    chain = EmbeddedChain(tmp_path, FINANCING_KEYS)
    deploy_system(chain, tmp_path)
    manifest = deploy_financing(chain, tmp_path)
    _check_financing(chain)
    assert set(FINANCING_CONTRACTS) <= set(manifest["contracts"])
    assert manifest["actors"]["engine"] == chain.address_of("engine")
    with pytest.raises(Conflict):
        deploy_financing(chain, tmp_path)
    root = chain.state_root()
    chain.close()

    again = EmbeddedChain(tmp_path, FINANCING_KEYS, read_only=True)
    try:
        assert again.state_root() == root
        _check_financing(again)
    finally:
        again.close()


@pytest.mark.anvil
def test_financing_deploys_on_anvil(anvil_url: str, tmp_path: Path) -> None:
    chain = RpcChain(anvil_url, FINANCING_KEYS, tmp_path)
    chain.fund(FINANCING_ACTORS, 10**21)
    deploy_system(chain, tmp_path)
    deploy_financing(chain, tmp_path)
    _check_financing(chain)
    again = RpcChain(anvil_url, FINANCING_KEYS, tmp_path)
    assert again.deployed()["SeniorShare"] == chain.contract_address("SeniorShare")
    _check_financing(again)  # the keyless actors (pool, engine, …) come back from the manifest
