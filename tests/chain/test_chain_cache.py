"""CachedReads: a view's answer is reused within a block and never across a transaction."""

from __future__ import annotations

from pathlib import Path

from crowdleverage.chain.cache import CachedReads
from crowdleverage.chain.codes import ref_to_bytes32
from crowdleverage.chain.roles import Role
from crowdleverage.risk.world import open_financing_chain, register


def test_views_are_cached_per_block(tmp_path: Path) -> None:
    raw = open_financing_chain(tmp_path, ["alice"])
    chain = CachedReads(raw)
    register(raw, "alice", Role.INVESTOR)
    alice = chain.address_of("alice")  # passes through
    assert chain.call("CashToken", "balanceOf", alice) == 0
    assert chain.call("CashToken", "balanceOf", alice) == 0
    assert (chain.hits, chain.misses) == (1, 1)
    chain.send("CashToken", "mint", alice, 500, ref_to_bytes32("t-1"), actor="custodian")
    assert chain.call("CashToken", "balanceOf", alice) == 500  # a new block: read again
    assert (chain.hits, chain.misses) == (1, 2)
    raw.close()
