"""Hypothesis stateful test of the ledger (DESIGN.md §8 invariant 3), on SQLite and PostgreSQL.

Rules are the operations a caller can send (batches of single-phase, pending, post, void,
linked chains, retries of earlier ids, time passing); invariants are checked after every step:

- Σ debits = Σ credits per ledger, pending and posted;
- account totals equal what the immutable transfers and pending states imply;
- a created transfer never changes afterwards (immutability);
- a pending transfer is resolved (posted, voided, expired) at most once;
- retrying a created transfer with identical fields answers `exists` and changes nothing;
- a constrained account never has debits above credits;
- the ledger's totals match a model that applies exactly the results the ledger reported.

Profiles: a few examples by default, many with CROWDLEV_LONG=1.
"""

from __future__ import annotations

import os
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy.engine import Engine

from crowdleverage.custody.ledger import Ledger
from crowdleverage.custody.types import (
    Account,
    AccountFlags,
    CreateTransferResult,
    PendingStatus,
    Transfer,
    TransferFlags,
)

R = CreateTransferResult
CNY = 156
LONG = bool(os.environ.get("CROWDLEV_LONG"))
ACCOUNT_IDS = [1, 2, 3, 4, 5]
CONSTRAINED = {3, 4}  # DEBITS_MUST_NOT_EXCEED_CREDITS: investor-like accounts
PENDING, POST = TransferFlags.PENDING, TransferFlags.POST_PENDING_TRANSFER
VOID, LINKED = TransferFlags.VOID_PENDING_TRANSFER, TransferFlags.LINKED

spec = st.tuples(
    st.sampled_from(["single", "pending", "post", "void", "retry"]),
    st.sampled_from(ACCOUNT_IDS),
    st.sampled_from(ACCOUNT_IDS),
    st.integers(min_value=1, max_value=5_000),
    st.booleans(),  # linked to the next event
    st.integers(min_value=0, max_value=3),  # timeout_s for pending (0 = none)
)


class LedgerMachine(RuleBasedStateMachine):
    engine: Engine  # set per backend by the test

    def __init__(self) -> None:
        super().__init__()
        self.now_ns = 1_800_000_000 * 10**9
        self.ledger = Ledger(self.engine, clock_ns=lambda: self.now_ns)
        self.ledger.create_schema()
        flags = {i: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS for i in CONSTRAINED}
        self.ledger.create_accounts(
            [Account(i, CNY, 1, flags.get(i, AccountFlags.NONE)) for i in ACCOUNT_IDS]
        )
        self.next_id = 1_000
        self.created: dict[int, Transfer] = {}  # id -> transfer as sent
        self.stored: dict[int, Transfer] = {}  # id -> transfer as first looked up
        self.open_pending: list[int] = []
        self.resolutions: dict[int, int] = {}  # pending id -> how many created post/voids

    def _build(self, kind: str, dr: int, cr: int, amount: int, timeout_s: int) -> Transfer:
        self.next_id += 1
        tid = self.next_id
        if kind == "single":
            return Transfer(tid, dr, cr, amount, CNY, 1)
        if kind == "pending":
            return Transfer(tid, dr, cr, amount, CNY, 1, flags=PENDING, timeout_s=timeout_s)
        if kind in ("post", "void") and self.open_pending:
            pid = self.open_pending[amount % len(self.open_pending)]
            part = amount % 3 == 0  # sometimes a partial post
            amt = (self.created[pid].amount + 1) // 2 if part and kind == "post" else 0
            return Transfer(tid, amount=amt, pending_id=pid, flags=POST if kind == "post" else VOID)
        if kind == "retry" and self.created:
            ids = sorted(self.created)
            return self.created[ids[amount % len(ids)]]
        return Transfer(tid, dr, cr, amount, CNY, 1)

    @rule(specs=st.lists(spec, min_size=1, max_size=6))
    def batch(self, specs: list[tuple[Any, ...]]) -> None:
        events = []
        for kind, dr, cr, amount, link, timeout_s in specs:
            t = self._build(kind, dr, cr, amount, timeout_s)
            if link and t.id not in self.created:
                t = Transfer(**{**_fields(t), "flags": t.flags | LINKED})
            events.append(t)
        before = self._balances()
        results = self.ledger.create_transfers(events)
        assert len(results) == len(events)
        expected = dict(before)
        for t, r in zip(events, results, strict=True):
            if r is R.CREATED:
                self._apply_model(t, expected)
            elif r is R.EXISTS:
                assert t.id in self.created or any(
                    e.id == t.id and x is R.CREATED for e, x in zip(events, results, strict=True)
                )
        self._sync_expired(expected)
        assert self._balances() == expected, "ledger wrote something other than it reported"

    def _apply_model(self, t: Transfer, bal: dict[int, list[int]]) -> None:
        self.created[t.id] = t
        [stored] = self.ledger.lookup_transfers([t.id])
        self.stored[t.id] = stored
        dr, cr = bal[stored.debit_account_id], bal[stored.credit_account_id]
        if t.flags & PENDING:
            dr[0] += t.amount
            cr[2] += t.amount
            self.open_pending.append(t.id)
        elif t.flags & (POST | VOID):
            pend = self.stored[t.pending_id]
            self.resolutions[t.pending_id] = self.resolutions.get(t.pending_id, 0) + 1
            self.open_pending.remove(t.pending_id)
            dr[0] -= pend.amount
            cr[2] -= pend.amount
            if t.flags & POST:
                dr[1] += stored.amount
                cr[3] += stored.amount
        else:
            dr[1] += t.amount
            cr[3] += t.amount

    def _sync_expired(self, bal: dict[int, list[int]]) -> int:
        """Pending transfers the ledger expired (lazily, at the start of a batch)."""
        n = 0
        for pid in list(self.open_pending):
            if self.ledger.pending_status(pid) is PendingStatus.EXPIRED:
                pend = self.stored[pid]
                assert pend.timeout_s > 0
                self.open_pending.remove(pid)
                self.resolutions[pid] = self.resolutions.get(pid, 0) + 1
                bal[pend.debit_account_id][0] -= pend.amount
                bal[pend.credit_account_id][2] -= pend.amount
                n += 1
        return n

    @rule(seconds=st.integers(min_value=1, max_value=4))
    def time_passes(self, seconds: int) -> None:
        self.now_ns += seconds * 10**9
        expected = self._balances()
        before = {k: list(v) for k, v in expected.items()}
        expired = self.ledger.expire_pending()
        assert self._sync_expired(before) == expired
        assert self._balances() == before

    @rule()
    def retry_everything(self) -> None:
        if not self.created:
            return
        before = self._balances()
        plain = [
            Transfer(**{**_fields(t), "flags": t.flags & ~LINKED}) for t in self.created.values()
        ]
        linked_free = [t for t, p in zip(self.created.values(), plain, strict=True) if t == p]
        results = self.ledger.create_transfers(linked_free)
        assert set(results) <= {R.EXISTS}
        assert self._balances() == before

    def _balances(self) -> dict[int, list[int]]:
        return {
            a.id: [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted]
            for a in self.ledger.lookup_accounts(ACCOUNT_IDS)
        }

    @invariant()
    def debits_equal_credits(self) -> None:
        for tot in self.ledger.totals():
            assert tot.debits_pending == tot.credits_pending
            assert tot.debits_posted == tot.credits_posted

    @invariant()
    def totals_follow_from_transfers(self) -> None:
        assert self.ledger.audit() == []

    @invariant()
    def transfers_are_immutable(self) -> None:
        now = {t.id: t for t in self.ledger.lookup_transfers(self.stored)}
        assert now == self.stored

    @invariant()
    def resolved_at_most_once(self) -> None:
        assert all(n == 1 for n in self.resolutions.values())
        for pid, n in self.resolutions.items():
            assert n == 1
            assert self.ledger.pending_status(pid) is not PendingStatus.PENDING

    @invariant()
    def constrained_accounts_hold(self) -> None:
        for a in self.ledger.lookup_accounts(CONSTRAINED):
            assert a.debits_pending + a.debits_posted <= a.credits_posted


def _fields(t: Transfer) -> dict[str, Any]:
    return {f: getattr(t, f) for f in Transfer.__slots__}


def test_ledger_state_machine(engine_factory: Any) -> None:
    class Machine(LedgerMachine):
        def __init__(self) -> None:
            self.engine = engine_factory()
            super().__init__()

        def teardown(self) -> None:
            self.engine.dispose()

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=200 if LONG else 12,
            stateful_step_count=40 if LONG else 15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
