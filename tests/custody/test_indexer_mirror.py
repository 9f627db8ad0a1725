"""Internal chain movements mirrored into the custody ledger (SQLite and PostgreSQL), on the
embedded chain: after a sync every mirrored balance equals its chain balance, replays after a
crash book nothing twice, and a movement the ledger cannot follow is reported, not hidden."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from crowdleverage.audit.reconcile import BreakKind, ChainGateway, Reconciler
from crowdleverage.custody.indexer import ChainMirror, mirror_failures, mirror_state
from crowdleverage.custody.types import new_id

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bridge_crash_worker as w


@pytest.fixture
def world(engine_factory: Any, tmp_path: Path) -> Iterator[tuple[Any, Any, ChainMirror]]:
    url, schema = engine_factory.url_and_schema()
    custody, chain, bridge = w.open_world(url, schema, tmp_path)
    custody.import_statement(w.round_statement(0))  # 10_000 / 20_000 / 30_000 fen
    bridge.process()
    by_address = {chain.address_of(actor).lower(): inv for inv, actor in w.INVESTORS.items()}
    mirror = ChainMirror(custody, chain, lambda a: by_address.get(a.lower()))
    yield custody, chain, mirror
    chain.close()
    custody.engine.dispose()


def addresses(chain: Any) -> dict[str, str]:
    return {inv: chain.address_of(actor) for inv, actor in w.INVESTORS.items()}


def test_internal_movements_are_mirrored_and_reconcile(world: tuple[Any, Any, ChainMirror]) -> None:
    custody, chain, mirror = world
    platform = chain.address_of("operator")  # a verified non-investor address
    chain.send("CashToken", "transfer", platform, 3_000, actor="inv1")
    chain.send("CashToken", "transfer", chain.address_of("inv2"), 1_000, actor="operator")
    rec = Reconciler(custody)
    before = rec.check(ChainGateway(chain), addresses=addresses(chain))
    assert sorted(b.kind for b in before.breaks) == [BreakKind.BALANCE_MISMATCH] * 2

    stats = mirror.sync()
    assert (stats.events, stats.created, stats.failed) == (2, 2, 0)
    after = rec.check(ChainGateway(chain), addresses=addresses(chain))
    assert after.ok, after.to_dict()
    assert after.checked["mirrored_accounts"] == 4
    assert custody.investor_balances() == {
        "INV-0001": 7_000,
        "INV-0002": 21_000,
        "INV-0003": 30_000,
    }
    assert mirror.sync().events == 0

    # A crash after booking but before the cursor moved: the replay books nothing twice.
    with custody.engine.begin() as conn:
        conn.execute(mirror_state.update().values(cursor_seq=0))
    replay = mirror.sync()
    assert (replay.created, replay.existed) == (0, 2)
    assert rec.check(ChainGateway(chain), addresses=addresses(chain)).ok
    assert custody.ledger.audit() == []


def test_movement_the_ledger_cannot_follow_is_reported(world: tuple[Any, Any, ChainMirror]) -> None:
    custody, chain, mirror = world
    # The ledger took 9_500 fen from INV-0001 without a burn (a chargeback), so it cannot
    # follow INV-0001 paying 1_000 on chain.
    custody.book_correction(
        new_id(), investor_id="INV-0001", amount_fen=9_500, credit_investor=False
    )
    chain.send("CashToken", "transfer", chain.address_of("operator"), 1_000, actor="inv1")
    stats = mirror.sync()
    assert stats.failed == 1
    with custody.engine.connect() as conn:
        [failure] = conn.execute(sa.select(mirror_failures)).all()
    assert failure.result == "exceeds_credits"
    report = Reconciler(custody).check(ChainGateway(chain), addresses=addresses(chain))
    assert {b.kind for b in report.breaks} == {BreakKind.SUPPLY_DRIFT, BreakKind.BALANCE_MISMATCH}
