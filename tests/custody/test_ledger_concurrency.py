"""Concurrent writers (threads with their own connections) on SQLite and PostgreSQL: batches
are serialised by the writer lock, so a constrained account is never overdrawn and the totals
still follow from the transfers."""

from __future__ import annotations

import threading

from sqlalchemy.engine import Engine

from crowdleverage.custody.ledger import Ledger
from crowdleverage.custody.types import Account, AccountFlags, CreateTransferResult, Transfer

CNY = 156
R = CreateTransferResult


def test_concurrent_batches_never_overdraw(engine: Engine) -> None:
    ledger = Ledger(engine)
    ledger.create_schema()
    ledger.create_accounts(
        [Account(1, CNY, 1), Account(2, CNY, 2, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
         Account(3, CNY, 1)]
    )  # fmt: skip
    assert ledger.create_transfers([Transfer(10, 1, 2, 100_000, CNY, 1)]) == [R.CREATED]
    results: list[CreateTransferResult] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def spend(worker: int) -> None:
        try:
            for k in range(15):
                batch = [
                    Transfer(1_000_000 * (worker + 1) + 100 * k + j, 2, 3, 700, CNY, 2)
                    for j in range(10)
                ]
                res = ledger.create_transfers(batch)
                with lock:
                    results.extend(res)
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=spend, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    created = results.count(R.CREATED)
    assert created == 100_000 // 700  # exactly as many as the balance allows, from all writers
    assert results.count(R.EXCEEDS_CREDITS) == len(results) - created
    [spender] = ledger.lookup_accounts([2])
    assert spender.debits_posted == created * 700 <= spender.credits_posted
    assert ledger.audit() == []
