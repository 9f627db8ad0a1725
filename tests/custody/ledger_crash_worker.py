"""Worker for the crash test: books a fixed, deterministic workload batch by batch and prints
one line per committed batch, and waits for a line on stdin before each next batch (the test
paces it, so that a kill always lands before the end however fast the machine). Run as
`python ledger_crash_worker.py URL SCHEMA N_BATCHES`.
Exits 3 if a batch answers anything but all-`created` or all-`exists` (a half-applied batch)."""

from __future__ import annotations

import sys

from crowdleverage.custody.db import make_engine
from crowdleverage.custody.ledger import Ledger
from crowdleverage.custody.types import (
    Account,
    AccountFlags,
    CreateTransferResult,
    Transfer,
    TransferFlags,
)

CNY = 156
BANK, HOLD = 1, 2
INVESTORS = list(range(10, 20))
SINGLES, PENDINGS = 1_500, 200


def batch(k: int) -> list[Transfer]:
    base = (k + 1) * 1_000_000
    out = [Transfer(base + j, BANK, INVESTORS[j % 10], 100 + j, CNY, 1) for j in range(SINGLES)]
    out += [
        Transfer(base + 500_000 + j, BANK, HOLD, 7, CNY, 2, flags=TransferFlags.PENDING)
        for j in range(PENDINGS)
    ]
    if k > 0:  # post last batch's pending transfers
        prev = k * 1_000_000 + 500_000
        out += [
            Transfer(
                base + 800_000 + j, pending_id=prev + j, flags=TransferFlags.POST_PENDING_TRANSFER
            )
            for j in range(PENDINGS)
        ]
    return out


def main() -> int:
    url, schema, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ledger = Ledger(make_engine(url, schema=None if schema == "-" else schema))
    ledger.create_schema()
    accounts = [Account(BANK, CNY, 1), Account(HOLD, CNY, 2)]
    accounts += [Account(i, CNY, 3, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS) for i in INVESTORS]
    ledger.create_accounts(accounts)
    for k in range(n):
        if k > 0:  # the test paces the batches: one line on stdin lets the next one start
            sys.stdin.readline()
        results = set(ledger.create_transfers(batch(k)))
        if results not in ({CreateTransferResult.CREATED}, {CreateTransferResult.EXISTS}):
            print(f"batch {k} mixed {sorted(results)}", flush=True)
            return 3
        print(f"batch {k} {results.pop().value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
