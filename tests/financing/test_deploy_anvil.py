"""Every financing contract deploys on a real node (anvil, EIP-170 enforced) and works there."""

from __future__ import annotations

import pytest
from fin_anvil import anvil, deploy_rpc_platform, fund
from fin_system import PAB, YUAN

from crowdleverage.chain.artifacts import EIP170_LIMIT_BYTES

pytestmark = pytest.mark.anvil


def test_system_deploys_on_anvil_within_eip170(anvil_bin: str) -> None:
    with anvil(anvil_bin) as url:
        p = deploy_rpc_platform(url)
        for name in ("TranchePool", "InsuranceFund", "MarginEngine"):
            size = p.code_size(name)
            assert 0 < size <= EIP170_LIMIT_BYTES, (name, size)
        # and a first buy goes through end to end on the node
        fund(p, "junior", 1_000_000 * YUAN, "TranchePool")
        p.send("TranchePool", "subscribe", False, 1_000_000 * YUAN, by="junior")
        p.time_travel(86_400)
        p.send("TranchePool", "close_epoch", by="keeper")
        p.send("MarginEngine", "open_account", p.actor["borrower"], 1, by="compliance")
        fund(p, "borrower", 10_000 * YUAN, "MarginEngine")
        p.send("MarginEngine", "deposit", 10_000 * YUAN, False, by="borrower")
        p.send("OrderBook", "request_buy", PAB, 300, 1_000, by="borrower")
        assert p.call("MarginEngine", "buying", p.actor["borrower"], PAB) == 300
