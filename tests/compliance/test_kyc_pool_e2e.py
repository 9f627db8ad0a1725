"""End to end through the financing contracts (an embedded chain with TranchePool deployed):
an investor verified by the KYC workflow subscribes to the junior tranche; an AML
alert freezes them; they can no longer subscribe, and their redemption proceeds cannot be paid
out until compliance clears them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from crowdleverage.chain.codes import ref_to_bytes32
from crowdleverage.chain.embedded import DEFAULT_GENESIS_TIME_S
from crowdleverage.chain.port import ChainPort
from crowdleverage.compliance.aml import Transaction, TxnKind
from crowdleverage.compliance.chain_adapter import ChainIdentityWriter
from crowdleverage.compliance.repository import make_engine
from crowdleverage.compliance.service import ComplianceService, KycApplication
from crowdleverage.domain.errors import ContractRevert
from crowdleverage.risk.world import open_financing_chain

NOW = datetime.fromtimestamp(DEFAULT_GENESIS_TIME_S, UTC) + timedelta(hours=1)
WAN = 1_000_000  # 1万元 in fen


def close_epoch(chain: ChainPort) -> None:
    started = int(chain.call("TranchePool", "epoch_started_at"))
    wait = started + int(chain.call("TranchePool", "epoch_s")) - chain.block_time()
    if wait > 0:
        chain.advance_time(wait)
    chain.send("TranchePool", "close_epoch", actor="keeper")


def test_frozen_investor_cannot_subscribe_or_collect_a_redemption(tmp_path: Path) -> None:
    chain = open_financing_chain(tmp_path, ["investor"])
    svc = ComplianceService(
        make_engine(f"sqlite:///{tmp_path / 'c.db'}"), ChainIdentityWriter(chain)
    )
    investor = chain.address_of("investor")
    pool = chain.address_of("pool")
    app = KycApplication(
        investor, "王小明", "110105199001011232", "13800138000", "6222021234567890128",
        date(2030, 1, 1),
    )  # fmt: skip
    ident = svc.onboard(app, now=NOW).identity_id
    svc.verify(ident, actor="officer-li", now=NOW)
    for i in range(3):  # three deposits just under the 50万元 reporting threshold
        chain.send("CashToken", "mint", investor, 48 * WAN, ref_to_bytes32(f"dep-{i}"),
                   actor="custodian")  # fmt: skip
    chain.send("CashToken", "approve", pool, 144 * WAN, actor="investor")
    chain.send("TranchePool", "subscribe", False, 100 * WAN, actor="investor")
    close_epoch(chain)
    junior = chain.call("TranchePool", "JUNIOR")
    chain.register_at("Junior", junior, "TrancheShare")
    shares = int(chain.call("Junior", "balanceOf", investor))
    assert shares > 0

    deposits = [
        Transaction(f"dep-{i}", ident, TxnKind.DEPOSIT, 48 * WAN, NOW + timedelta(days=i))
        for i in range(3)
    ]
    svc.monitor(deposits, now=NOW)
    assert chain.call("IdentityRegistry", "is_verified", investor) is False

    with pytest.raises(ContractRevert, match="pool: caller is not investor"):
        chain.send("TranchePool", "subscribe", False, 10 * WAN, actor="investor")
    cash_before = int(chain.call("CashToken", "balanceOf", investor))
    chain.send("TranchePool", "redeem", False, shares, actor="investor")  # queued in escrow
    close_epoch(chain)
    claimable = int(chain.call("TranchePool", "claimable_fen", investor))
    assert claimable > 0
    with pytest.raises(ContractRevert, match="cash: receiver not verified"):
        chain.send("TranchePool", "withdraw", actor="investor")
    assert int(chain.call("CashToken", "balanceOf", investor)) == cash_before

    svc.set_frozen(ident, False, actor="officer-li", reason="source of funds documented")
    chain.send("TranchePool", "withdraw", actor="investor")
    assert int(chain.call("CashToken", "balanceOf", investor)) == cash_before + claimable
    chain.close()
