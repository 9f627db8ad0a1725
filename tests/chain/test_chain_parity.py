"""Parity: the same deploy script and scenario on the embedded chain and on anvil give the same
addresses, balances, events and revert reasons. Runs against a real anvil node (CI: required)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdleverage.chain.artifacts import DEPLOYABLES
from crowdleverage.chain.codes import ref_to_bytes32
from crowdleverage.chain.deploy import deploy_system, read_manifest
from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.rpc import RpcChain
from crowdleverage.chain.scenario import SCENARIO_ACTORS, basic_scenario, summary
from crowdleverage.domain.errors import ContractRevert, InvalidInput, ServiceUnavailable

pytestmark = pytest.mark.anvil


@pytest.fixture
def rpc(anvil_url: str, dev_keys: ActorKeys, tmp_path: Path) -> Iterator[RpcChain]:
    chain = RpcChain(anvil_url, dev_keys, tmp_path / "rpc", controlled_clock=True)
    chain._rpc("anvil_reset", [])  # a fresh chain per test: same nonces, same addresses
    chain.fund(SCENARIO_ACTORS, 10**21)
    yield chain
    chain.close()


@pytest.fixture
def emb(dev_keys: ActorKeys, tmp_path: Path) -> Iterator[EmbeddedChain]:
    chain = EmbeddedChain(tmp_path / "emb", dev_keys)
    yield chain
    chain.close()


def _align_clocks(*chains: ChainPort) -> None:
    start = max(c.block_time() for c in chains) + 1_000
    for c in chains:
        c.set_block_time(start)


def test_same_scenario_same_state(rpc: RpcChain, emb: EmbeddedChain, tmp_path: Path) -> None:
    # Arrange
    _align_clocks(rpc, emb)
    # Act
    for chain, sub in ((rpc, "rpc"), (emb, "emb")):
        deploy_system(chain, tmp_path / sub)
        basic_scenario(chain)
    # Assert: same addresses (same keys, same nonces), same clock, balances and events
    rpc_m, emb_m = read_manifest(tmp_path / "rpc"), read_manifest(tmp_path / "emb")
    for name in DEPLOYABLES:
        assert rpc_m["contracts"][name] == emb_m["contracts"][name]
    assert (rpc.block_number(), rpc.block_time()) == (emb.block_number(), emb.block_time())
    rpc_s, emb_s = summary(rpc), summary(emb)
    assert rpc_s == emb_s
    assert rpc_s["cash"] == {"investor": 500_000, "borrower": 2_600_000, "pool": 8_400_000}
    assert len(rpc_s["events"]) > 30


def test_same_gas_per_transaction(rpc: RpcChain, emb: EmbeddedChain, tmp_path: Path) -> None:
    """Embedded gas = intrinsic + execution - refund with cold access, as anvil charges."""
    _align_clocks(rpc, emb)
    gas = []
    for chain, sub in ((rpc, "rpc"), (emb, "emb")):
        deploy_system(chain, tmp_path / sub)
        basic_scenario(chain)
        pool, investor = chain.address_of("pool"), chain.address_of("investor")
        results = [
            chain.send("CashToken", "mint", investor, 5, ref_to_bytes32("g1"), actor="custodian"),
            chain.send("CashToken", "mint", investor, 5, ref_to_bytes32("g2"), actor="custodian"),
            chain.send("CashToken", "transfer", pool, 7, actor="investor"),
            chain.send("PriceOracle", "report", 600000, 1_001, actor="reporter1"),
            chain.send("ShareCertificates", "transfer", investor, 600000, 100, actor="pool"),
        ]
        gas.append([r.gas_used for r in results])
    assert gas[0] == gas[1]
    assert all(g > 21_000 for g in gas[0])


def test_same_revert_reasons(rpc: RpcChain, emb: EmbeddedChain, tmp_path: Path) -> None:
    _align_clocks(rpc, emb)
    reasons = []
    for chain, sub in ((rpc, "rpc"), (emb, "emb")):
        deploy_system(chain, tmp_path / sub)
        investor = chain.address_of("investor")
        got = []
        with pytest.raises(ContractRevert) as e1:  # unverified receiver, on send
            chain.send("CashToken", "mint", investor, 1, ref_to_bytes32("x"), actor="custodian")
        got.append(e1.value.reason)
        with pytest.raises(ContractRevert) as e2:  # wrong role
            chain.send("PriceOracle", "open_day", 1, actor="broker")
        got.append(e2.value.reason)
        with pytest.raises(ContractRevert) as e3:  # view revert
            chain.call("PriceOracle", "price", 600000)
        got.append(e3.value.reason)
        reasons.append(got)
    assert (
        reasons[0]
        == reasons[1]
        == [
            "cash: receiver not verified",
            "oracle: caller is not operator",
            "oracle: price unreliable",
        ]
    )


def test_rpc_reopens_deployment_from_manifest(
    rpc: RpcChain, anvil_url: str, dev_keys: ActorKeys, tmp_path: Path
) -> None:
    deploy_system(rpc, tmp_path / "rpc")
    again = RpcChain(anvil_url, dev_keys, tmp_path / "rpc")
    assert again.deployed() == rpc.deployed()
    assert again.call("IdentityRegistry", "owner") == rpc.address_of("admin")
    events = again.events("IdentityRegistry", "IdentitySet")
    assert len(events) == 8
    assert again.events("IdentityRegistry", "IdentitySet", since=events[3].seq) == events[4:]


def test_rpc_time_only_moves_forward(rpc: RpcChain) -> None:
    t = rpc.block_time()
    rpc.advance_time(3_600)
    assert rpc.block_time() == t + 3_600
    with pytest.raises(InvalidInput):
        rpc.set_block_time(t)


def test_rpc_unreachable_node_is_service_unavailable(dev_keys: ActorKeys) -> None:
    with pytest.raises(ServiceUnavailable):
        RpcChain("http://127.0.0.1:9", dev_keys, timeout_s=2)


def test_keys_are_never_printed(dev_keys: ActorKeys) -> None:
    secret = dev_keys.key("admin").get_secret_value()
    assert secret not in repr(dev_keys)
    assert secret not in str(dev_keys.key("admin"))


def test_rpc_events_in_small_windows_are_complete(
    rpc: RpcChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crowdleverage.chain.rpc as rpc_module

    deploy_system(rpc, tmp_path / "rpc")
    basic_scenario(rpc)
    whole = rpc.events()
    monkeypatch.setattr(rpc_module, "LOG_WINDOW_BLOCKS", 3)
    assert rpc.events() == whole
    assert rpc.events("CashToken", "Minted", since=whole[5].seq) == [
        e
        for e in whole
        if e.seq > whole[5].seq and (e.contract, e.event) == ("CashToken", "Minted")
    ]
