"""Bridge custody ↔ chain on the embedded chain (SQLite and PostgreSQL): deposits are minted
once with the ledger transfer id as reference, withdrawals burn then reserve the payout, a
restart completes in-flight work exactly once, and the result reconciles clean."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from crowdleverage.audit.reconcile import ChainGateway, Reconciler
from crowdleverage.custody.bridge import ref32
from crowdleverage.domain.errors import PlatformPaused, RuleViolation

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bridge_crash_worker as w


@pytest.fixture
def world(engine_factory: Any, tmp_path: Path) -> Iterator[tuple[Any, Any, Any]]:
    url, schema = engine_factory.url_and_schema()
    custody, chain, bridge = w.open_world(url, schema, tmp_path)
    yield custody, chain, bridge
    chain.close()
    custody.engine.dispose()


def minted_refs(chain: Any) -> list[str]:
    return [e.args["ref"] for e in chain.events("CashToken", "Minted")]


def test_deposits_are_minted_once_and_reconcile(world: tuple[Any, Any, Any]) -> None:
    custody, chain, bridge = world
    report = custody.import_statement(w.round_statement(0))
    stats = bridge.process()
    assert (stats.queued, stats.minted) == (3, 3)
    for dep in report.deposits:
        assert chain.call("CashToken", "ref_used", ref32(dep.transfer_id))
        addr = chain.address_of(w.INVESTORS[dep.investor_id])
        assert chain.call("CashToken", "balanceOf", addr) == dep.amount_fen
    assert bridge.process().queued == 0
    assert len(minted_refs(chain)) == 3
    assert Reconciler(custody).check(ChainGateway(chain)).ok


def test_restart_after_send_before_record_does_not_mint_twice(world: tuple[Any, Any, Any]) -> None:
    custody, chain, bridge = world
    custody.import_statement(w.round_statement(0))
    bridge.queue_deposits()
    # The crash point: the first mint reached the chain, its op was not marked done.
    from crowdleverage.custody.bridge import ops

    with custody.engine.connect() as conn:
        first = conn.execute(ops.select().order_by(ops.c.op_id).limit(1)).one()
    chain.send("CashToken", "mint", first.address, first.amount_fen,
               ref32(int(first.op_id, 16)), actor="custodian")  # fmt: skip
    stats = bridge.process()
    assert (stats.minted, stats.already_on_chain) == (2, 1)
    assert len(minted_refs(chain)) == len(set(minted_refs(chain))) == 3
    assert Reconciler(custody).check(ChainGateway(chain)).ok


def test_redeem_burns_reserves_and_settles_through_pain001(world: tuple[Any, Any, Any]) -> None:
    custody, chain, bridge = world
    custody.import_statement(w.round_statement(0))
    bridge.process()
    with pytest.raises(RuleViolation, match="cannot redeem"):
        bridge.redeem("INV-0002", 20_001, payout_id=55)
    bridge.redeem("INV-0002", 15_000, payout_id=56)
    bridge.redeem("INV-0002", 15_000, payout_id=56)  # retry: nothing more happens
    assert chain.call("CashToken", "balanceOf", chain.address_of("inv2")) == 5_000
    assert len(chain.events("CashToken", "Burned")) == 1
    assert Reconciler(custody).check(ChainGateway(chain)).ok
    pain = custody.export_payouts(at=datetime(2026, 3, 3), execution_date=date(2026, 3, 3))
    assert pain is not None and f"{56:032x}".encode() in pain
    assert custody.investor_balances()["INV-0002"] == 20_000  # reserved until the bank pays


def test_paused_chain_keeps_ops_pending(world: tuple[Any, Any, Any]) -> None:
    custody, chain, bridge = world
    custody.import_statement(w.round_statement(0))
    chain.send("CashToken", "pause", actor="operator")
    with pytest.raises(PlatformPaused):
        bridge.process()
    chain.send("CashToken", "unpause", actor="operator")
    assert bridge.process().minted == 3
