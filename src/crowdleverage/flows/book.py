"""Cash on two records: the custody ledger (the bank's book of record, custody.Ledger) and the
platform's own book. Every movement is written to the ledger first (one linked chain per use
case, all or nothing) and applied to the book only when the ledger answered `created`.
Reconciliation compares the two account by account.

The platform book stands where the on-chain `CashToken` balances will stand once the contract
layer is wired in (DESIGN.md §5.7): two independent records of the same money.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from enum import IntEnum

from crowdleverage.custody.ledger import Ledger
from crowdleverage.custody.types import (
    Account,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    Transfer,
    TransferFlags,
    new_id,
)
from crowdleverage.domain.errors import Conflict, RuleViolation, ServiceUnavailable

CNY_LEDGER = 156  # ISO 4217 numeric code of CNY


class Kind(IntEnum):
    """Ledger account code; also the top bits of the account id (kind << 64 | number)."""

    BANK = 1  # the custodian's omnibus: money entering and leaving the platform
    WALLET = 2  # a user's cash on the platform
    POOL = 3  # the financing pool's idle cash
    MARGIN = 4  # a margin account's cash
    RESERVE = 5  # a margin account's top-up reserve (补仓准备金)
    BROKER = 6  # broker settlement: buys paid out, sells paid in


BANK_KEY = (Kind.BANK, 0)

# Accounts that may never go below zero.
_GUARDED = {Kind.WALLET, Kind.POOL, Kind.MARGIN, Kind.RESERVE}


def account_id(kind: Kind, number: int) -> int:
    assert 0 <= number < 1 << 64, "dev: account number fits 64 bits"
    return (int(kind) << 64) | number


def reference_id(reference: str) -> int:
    """A bank reference → a stable transfer id, so that a statement line posts at most once."""
    return int.from_bytes(hashlib.sha256(reference.encode()).digest()[:15], "big") | 1


@dataclass(frozen=True, slots=True)
class Leg:
    debit: tuple[Kind, int]
    credit: tuple[Kind, int]
    amount_fen: int
    transfer_id: int = 0
    pending: bool = False


_REFUSALS = {
    CreateTransferResult.EXCEEDS_CREDITS: "insufficient balance",
    CreateTransferResult.EXCEEDS_DEBITS: "insufficient balance",
}


class CashBook:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.balances: dict[tuple[Kind, int], int] = defaultdict(int)
        self.pending_out: dict[int, tuple[Leg, int]] = {}  # pending id → (leg, tranche)
        self._opened: set[tuple[Kind, int]] = set()

    def open(self, kind: Kind, number: int) -> None:
        key = (kind, number)
        if key in self._opened:
            return
        flags = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS if kind in _GUARDED else 0
        res = self.ledger.create_accounts(
            [Account(account_id(kind, number), CNY_LEDGER, int(kind), AccountFlags(flags))]
        )
        if res[0] not in (CreateAccountResult.CREATED, CreateAccountResult.EXISTS):
            raise ServiceUnavailable(f"custody refused account {kind.name}/{number}: {res[0]}")
        self._opened.add(key)

    def balance(self, kind: Kind, number: int = 0) -> int:
        return self.balances.get((kind, number), 0)

    def mark_opened(self, kind: Kind, number: int) -> None:
        """Restoring a snapshot: the account exists in the ledger already."""
        self._opened.add((kind, number))

    def opened(self) -> list[tuple[Kind, int]]:
        return sorted(self._opened)

    def move(self, legs: list[Leg], *, what: str) -> list[int]:
        """Write `legs` as one linked chain; apply them to the book if all were created."""
        legs = [leg for leg in legs if leg.amount_fen > 0]
        if not legs:
            return []
        for leg in legs:
            self.open(*leg.debit)
            self.open(*leg.credit)
        ids = [leg.transfer_id or new_id() for leg in legs]
        batch = [
            Transfer(
                id=tid,
                debit_account_id=account_id(*leg.debit),
                credit_account_id=account_id(*leg.credit),
                amount=leg.amount_fen,
                ledger=CNY_LEDGER,
                code=int(leg.credit[0]),
                flags=(TransferFlags.LINKED if i < len(legs) - 1 else TransferFlags.NONE)
                | (TransferFlags.PENDING if leg.pending else TransferFlags.NONE),
            )
            for i, (tid, leg) in enumerate(zip(ids, legs, strict=True))
        ]
        results = self.ledger.create_transfers(batch)
        bad = [r for r in results if r is not CreateTransferResult.CREATED]
        if bad:
            first = next(r for r in results if r is not CreateTransferResult.LINKED_EVENT_FAILED)
            if first is CreateTransferResult.EXISTS and len(legs) == 1:
                raise Conflict(f"{what}: this reference was already posted", result=first.value)
            reason = _REFUSALS.get(first, first.value)
            raise RuleViolation(f"{what}: custody refused the transfer ({reason})")
        for leg in legs:
            self.balances[leg.debit] -= leg.amount_fen
            if not leg.pending:
                self.balances[leg.credit] += leg.amount_fen
        return ids

    def resolve(self, pending_id: int, leg: Leg, *, post: bool) -> None:
        flag = TransferFlags.POST_PENDING_TRANSFER if post else TransferFlags.VOID_PENDING_TRANSFER
        res = self.ledger.create_transfers(
            [Transfer(id=new_id(), pending_id=pending_id, flags=flag)]
        )
        if res[0] is not CreateTransferResult.CREATED:
            raise RuleViolation(f"custody refused to resolve pending transfer: {res[0].value}")
        if post:
            self.balances[leg.credit] += leg.amount_fen
        else:
            self.balances[leg.debit] += leg.amount_fen

    def reconcile(self) -> list[str]:
        """Differences between the ledger and the book, plus the ledger's own audit."""
        breaks: list[str] = list(self.ledger.audit())
        keys = sorted(self._opened)
        accounts = {a.id: a for a in self.ledger.lookup_accounts([account_id(*k) for k in keys])}
        for key in keys:
            acc = accounts.get(account_id(*key))
            if acc is None:
                breaks.append(f"{key[0].name}/{key[1]}: missing in custody ledger")
                continue
            ledger_avail = acc.credits_posted - acc.debits_posted - acc.debits_pending
            book = self.balances[key]
            if ledger_avail != book:
                breaks.append(
                    f"{key[0].name}/{key[1]}: custody {ledger_avail} fen ≠ platform {book} fen"
                )
        return breaks
