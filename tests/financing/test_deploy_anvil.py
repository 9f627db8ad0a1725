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


def test_liquidity_cap_and_stressed_haircuts_on_anvil(anvil_bin: str) -> None:
    """Parity on a real node: a financed buy over the liquidity cap reverts with its reason,
    one under it passes; the stressed regime set at the OrderBook cuts RiskParams' haircut."""
    from web3.exceptions import ContractLogicError

    with anvil(anvil_bin) as url:
        p = deploy_rpc_platform(url)
        fund(p, "junior", 1_000_000 * YUAN, "TranchePool")
        p.send("TranchePool", "subscribe", False, 1_000_000 * YUAN, by="junior")
        p.time_travel(86_400)
        p.send("TranchePool", "close_epoch", by="keeper")
        p.send("RiskParams", "set_limits", (10_000, 500, 100, 10_500, 30, 30_000), by="operator")
        p.send("RiskParams", "set_liquidity", [PAB], [200_000 * YUAN], by="operator")
        assert p.call("RiskParams", "liquidity_cap_fen", PAB) == 20_000 * YUAN  # 10%
        who = p.actor["borrower"]
        p.send("MarginEngine", "open_account", who, 3, by="compliance")
        fund(p, "borrower", 10_000 * YUAN, "MarginEngine")
        p.send("MarginEngine", "deposit", 10_000 * YUAN, False, by="borrower")
        p.send("OrderBook", "request_buy", PAB, 1_500, 1_000, by="borrower")  # 15k: 5k financed
        assert p.call("MarginEngine", "debt_of", who) > 0
        over = p.c["OrderBook"].functions.request_buy(PAB, 600, 1_000)  # 21k > 20k
        with pytest.raises(ContractLogicError, match="margin: above liquidity cap"):
            over.call({"from": who})
        p.send("OrderBook", "request_buy", PAB, 500, 1_000, by="borrower")  # exactly 20k
        assert p.call("MarginEngine", "platform_qty", PAB) == 2_000
        day = p.call("PriceOracle", "trading_day")
        assert p.call("RiskParams", "haircut", PAB, day) == 10_000
        p.send("OrderBook", "set_regime", 1, 12_000, by="operator")
        assert p.call("RiskParams", "haircut", PAB, day) == 9_000
