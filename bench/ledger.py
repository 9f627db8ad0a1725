"""Custody ledger: transfers per second in batches on SQLite and PostgreSQL, against a naive
baseline measured in the same run on the same backend (one ORM insert and commit per transfer,
with the same balance bookkeeping: read both accounts, check the id, add the row, commit).

Workload: 1,000 accounts on one ledger, random single-phase transfers between them, batches
of 8,190 (TigerBeetle's largest batch). SQLite is a WAL file with synchronous=FULL (an fsync
per commit) in a temporary directory; PostgreSQL is a fresh schema on the server named by
CROWDLEV_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test), dropped at
the end.

    .venv/bin/python bench/ledger.py               # both backends
    .venv/bin/python bench/ledger.py sqlite        # one backend

Targets (issue 5): ≥ 20,000/s on SQLite, ≥ 10,000/s on PostgreSQL, ≥ 20× the naive baseline.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.engine import Engine

from crowdleverage.custody.db import make_engine
from crowdleverage.custody.ledger import Ledger
from crowdleverage.custody.types import Account, CreateTransferResult, Transfer, new_id

N_ACCOUNTS = 1_000
BATCH = 8_190
N_BATCHES = 8
N_NAIVE = 1_500
REPEATS = 3  # batched runs per backend (fresh database each); the median is judged
CNY = 156


class Base(orm.DeclarativeBase):
    pass


class NaiveAccount(Base):
    __tablename__ = "bench_naive_accounts"
    id: orm.Mapped[str] = orm.mapped_column(sa.String(32), primary_key=True)
    debits_posted: orm.Mapped[int] = orm.mapped_column(sa.BigInteger)
    credits_posted: orm.Mapped[int] = orm.mapped_column(sa.BigInteger)


class NaiveTransfer(Base):
    __tablename__ = "bench_naive_transfers"
    id: orm.Mapped[str] = orm.mapped_column(sa.String(32), primary_key=True)
    debit_account_id: orm.Mapped[str] = orm.mapped_column(sa.String(32))
    credit_account_id: orm.Mapped[str] = orm.mapped_column(sa.String(32))
    amount: orm.Mapped[int] = orm.mapped_column(sa.BigInteger)
    timestamp: orm.Mapped[int] = orm.mapped_column(sa.BigInteger)


def workload(rng: random.Random, n: int) -> list[tuple[int, int, int]]:
    out = []
    for _ in range(n):
        dr = rng.randrange(1, N_ACCOUNTS + 1)
        cr = rng.randrange(1, N_ACCOUNTS)
        cr += cr >= dr  # never the same account
        out.append((dr, cr, rng.randrange(1, 1_000_000)))
    return out


def bench_batched(engine: Engine, rng: random.Random) -> float:
    ledger = Ledger(engine)
    ledger.create_schema()
    ledger.create_accounts([Account(i, CNY, 1) for i in range(1, N_ACCOUNTS + 1)])
    batches = [
        [Transfer(new_id(), dr, cr, amt, CNY, 1) for dr, cr, amt in workload(rng, BATCH)]
        for _ in range(N_BATCHES)
    ]
    warm = [Transfer(new_id(), dr, cr, amt, CNY, 1) for dr, cr, amt in workload(rng, 100)]
    ledger.create_transfers(warm)  # warm caches (compiled statements, pool)
    t0 = time.perf_counter()
    for b in batches:
        results = ledger.create_transfers(b)
        assert results.count(CreateTransferResult.CREATED) == len(b), "dev: all created"
    elapsed = time.perf_counter() - t0
    assert ledger.audit() == [], "dev: totals follow from transfers"
    return N_BATCHES * BATCH / elapsed


def bench_naive(engine: Engine, rng: random.Random) -> float:
    Base.metadata.create_all(engine)
    with orm.Session(engine) as session:
        session.add_all(
            NaiveAccount(id=f"{i:032x}", debits_posted=0, credits_posted=0)
            for i in range(1, N_ACCOUNTS + 1)
        )
        session.commit()
    work = workload(rng, N_NAIVE)
    t0 = time.perf_counter()
    with orm.Session(engine) as session:
        for dr, cr, amt in work:
            tid = f"{new_id():032x}"
            assert session.get(NaiveTransfer, tid) is None
            debit = session.get(NaiveAccount, f"{dr:032x}")
            credit = session.get(NaiveAccount, f"{cr:032x}")
            assert debit is not None and credit is not None
            debit.debits_posted += amt
            credit.credits_posted += amt
            session.add(
                NaiveTransfer(
                    id=tid,
                    debit_account_id=debit.id,
                    credit_account_id=credit.id,
                    amount=amt,
                    timestamp=time.time_ns(),
                )
            )
            session.commit()
    return N_NAIVE / (time.perf_counter() - t0)


def run_once(
    backend: str, rng: random.Random, fn: Callable[[Engine, random.Random], float]
) -> float:
    """One measurement on a fresh database of `backend`."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'ledger.db'}")
            try:
                return fn(engine, rng)
            finally:
                engine.dispose()
    url = os.environ.get(
        "CROWDLEV_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(url, schema=schema)
    try:
        return fn(engine, rng)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def run(backend: str) -> tuple[list[float], float]:
    """Batched runs before and after the naive run, so that load from other processes on a
    shared machine hits both alike."""
    rng = random.Random(20150612)
    batched = [run_once(backend, rng, bench_batched)]
    naive = run_once(backend, rng, bench_naive)
    batched += [run_once(backend, rng, bench_batched) for _ in range(REPEATS - 1)]
    return batched, naive


TARGETS = {"sqlite": 20_000, "postgresql": 10_000}


def main() -> int:
    backends = sys.argv[1:] or ["sqlite", "postgresql"]
    print(f"custody ledger: {N_BATCHES} batches of {BATCH} transfers, {N_ACCOUNTS} accounts")
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"{'backend':<11} {'batched/s (median, min-max)':>29} {'naive/s':>9} {'ratio':>7}  target",
        flush=True,
    )
    ok = True
    for backend in backends:
        runs, naive = run(backend)
        batched = statistics.median(runs)
        ratio = batched / naive
        met = batched >= TARGETS[backend] and ratio >= 20
        ok &= met
        spread = f"{batched:,.0f} ({min(runs):,.0f}-{max(runs):,.0f})"
        print(
            f"{backend:<11} {spread:>29} {naive:>9,.0f} {ratio:>6.1f}x"
            f"  ≥{TARGETS[backend]:,}/s and ≥20x: {'met' if met else 'NOT met'}",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
