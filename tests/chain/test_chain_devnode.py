"""`DevNodeChain` (RpcChain on a local dev node, unsigned sends, lean JSON-RPC) against the
embedded chain: the same deployment, state, events, gas, clock and revert reasons."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdleverage.chain.deploy import deploy_system, read_manifest
from crowdleverage.chain.devnode import DevNodeChain
from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.scenario import SCENARIO_ACTORS, basic_scenario, summary
from crowdleverage.domain.errors import ContractRevert, InvalidInput

pytestmark = pytest.mark.anvil


@pytest.fixture
def node(anvil_url: str, dev_keys: ActorKeys, tmp_path: Path) -> Iterator[DevNodeChain]:
    chain = DevNodeChain(anvil_url, dev_keys, tmp_path / "node")
    chain._rpc("anvil_reset", [])  # a fresh chain per test: same nonces, same addresses
    chain._sync_head()
    chain.fund(SCENARIO_ACTORS, 10**21)
    yield chain
    chain.close()


def test_same_scenario_same_state_gas_and_clock(
    node: DevNodeChain, embedded: EmbeddedChain, tmp_path: Path
) -> None:
    # Arrange: the same clock
    start = max(node.block_time(), embedded.block_time()) + 1_000
    for c in (node, embedded):
        c.set_block_time(start)
    # Act
    gas = []
    for chain, sub in ((node, "node"), (embedded, "emb")):
        deploy_system(chain, tmp_path / sub)
        basic_scenario(chain)
        gas.append(chain.send("PriceOracle", "report", 600000, 1_001, actor="reporter1").gas_used)
    # Assert
    assert (
        read_manifest(tmp_path / "node")["contracts"]
        == read_manifest(tmp_path / "emb")["contracts"]
    )
    assert (node.block_number(), node.block_time()) == (embedded.block_number(),
                                                        embedded.block_time())  # fmt: skip
    assert node._post("eth_getBlockByNumber", ["latest", False])["timestamp"] == hex(
        node.block_time()
    )  # the clock tracked here is the node's
    assert summary(node) == summary(embedded)
    assert gas[0] == gas[1]


def test_a_revert_is_decoded_and_mines_nothing(
    node: DevNodeChain, embedded: EmbeddedChain, tmp_path: Path
) -> None:
    reasons, blocks = [], []
    for chain, sub in ((node, "node"), (embedded, "emb")):
        deploy_system(chain, tmp_path / sub)
        before = chain.block_number()
        with pytest.raises(ContractRevert) as err:
            chain.send("CashToken", "transfer", chain.address_of("pool"), 1, actor="investor")
        reasons.append(err.value.reason)
        blocks.append(chain.block_number() - before)
    assert reasons[0] == reasons[1] and reasons[0]
    assert blocks == [0, 0]
    assert node._post("eth_blockNumber", []) == hex(node.block_number())


def test_time_only_moves_forward(node: DevNodeChain) -> None:
    with pytest.raises(InvalidInput):
        node.set_block_time(node.block_time())
    node.advance_time(60)
    assert node._post("eth_getBlockByNumber", ["latest", False])["timestamp"] == hex(
        node.block_time()
    )
