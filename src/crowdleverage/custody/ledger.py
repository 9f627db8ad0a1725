"""The custody ledger: TigerBeetle's semantics on SQLAlchemy Core.

`create_accounts` and `create_transfers` take a batch and answer one result per event, in
order. A batch is one serialised database transaction: the referenced rows are read with a few
`IN (...)` queries, every event is decided in memory (linked chains roll back through an undo
log), and the outcome is written with `executemany`. Either the whole batch's outcome is
committed or nothing is, so a crash mid-batch loses nothing that was acknowledged, and a retry
with the same ids answers `exists`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crowdleverage.custody import schema as s
from crowdleverage.custody.db import chunks, write_transaction
from crowdleverage.custody.schema import hex_id
from crowdleverage.custody.types import (
    AMOUNT_MAX,
    U128_MAX,
    Account,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    PendingStatus,
    Transfer,
    TransferFlags,
)

R = CreateTransferResult
AR = CreateAccountResult
_TWO_PHASE = TransferFlags.PENDING | TransferFlags.POST_PENDING_TRANSFER
_TWO_PHASE |= TransferFlags.VOID_PENDING_TRANSFER
_RESOLVE = TransferFlags.POST_PENDING_TRANSFER | TransferFlags.VOID_PENDING_TRANSFER
_ACCOUNT_FLAGS_ALL = int(
    AccountFlags.LINKED
    | AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
)
_TRANSFER_FLAGS_ALL = int(TransferFlags.LINKED | _TWO_PHASE)
_NS_PER_S = 1_000_000_000
_ZERO_ID = "0" * 32
# the newest timestamps of transfers and accounts (both indexed: each max is one seek)
_LAST_TIMESTAMPS = sa.select(
    sa.select(sa.func.max(s.transfers.c.timestamp)).scalar_subquery(),
    sa.select(sa.func.max(s.accounts.c.timestamp)).scalar_subquery(),
)
_LINKED_I, _PENDING_I = int(TransferFlags.LINKED), int(TransferFlags.PENDING)
_POST_I, _VOID_I = (
    int(TransferFlags.POST_PENDING_TRANSFER),
    int(TransferFlags.VOID_PENDING_TRANSFER),
)
_TWO_PHASE_I, _RESOLVE_I = int(_TWO_PHASE), int(_RESOLVE)
_DMNEC_I = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CMNED_I = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    """Σ over all accounts of one ledger; double entry requires debits == credits."""

    ledger: int
    debits_pending: int
    credits_pending: int
    debits_posted: int
    credits_posted: int


class _Acc:
    """Mutable working copy of an account during a batch."""

    __slots__ = ("code", "cp", "cpo", "dirty", "dp", "dpo", "flags", "id", "ledger")

    def __init__(self, row: Any) -> None:
        self.id: str = row.id
        self.ledger: int = row.ledger
        self.code: int = row.code
        self.flags: int = row.flags
        self.dp: int = row.debits_pending
        self.dpo: int = row.debits_posted
        self.cp: int = row.credits_pending
        self.cpo: int = row.credits_posted
        self.dirty = False


class _Pend:
    """A pending transfer seen by a batch: its fields and status."""

    __slots__ = ("amount", "code", "credit", "debit", "expires_at_ns", "ledger", "status")

    def __init__(
        self, debit: str, credit: str, amount: int, ledger: int, code: int, status: str, exp: int
    ) -> None:
        self.debit, self.credit, self.amount = debit, credit, amount
        self.ledger, self.code, self.status, self.expires_at_ns = ledger, code, status, exp


# the pending transfers whose timeout has passed (`Ledger._expire`, at every create_transfers)
_EXPIRED = (
    sa.select(s.pending.c.id, s.transfers.c.debit_account_id, s.transfers.c.credit_account_id,
              s.transfers.c.amount)
    .join(s.transfers, s.transfers.c.id == s.pending.c.id)
    .where(s.pending.c.status == PendingStatus.PENDING.value)
    .where(s.pending.c.expires_at_ns > 0, s.pending.c.expires_at_ns <= sa.bindparam("now"))
)  # fmt: skip


class Ledger:
    """The custody ledger on one engine. `clock_ns` is injectable so that tests can move time
    forward to exercise timeouts."""

    def __init__(self, engine: Engine, *, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.engine = engine
        self.clock_ns = clock_ns

    def create_schema(self) -> None:
        s.metadata.create_all(self.engine)

    # ----------------------------------------------------------------------------- accounts

    def create_accounts(self, batch: Sequence[Account]) -> list[CreateAccountResult]:
        if not batch:
            return []
        with write_transaction(self.engine) as conn:
            ts = self._timestamp_base(conn)
            existing = {
                r.id: r for r in self._select_in(conn, s.accounts, [hex_id(a.id) for a in batch])
            }
            results: list[CreateAccountResult] = []
            created: dict[str, dict[str, Any]] = {}
            chain_start: int | None = None
            chain_failed = False
            for i, a in enumerate(batch):
                linked = bool(a.flags & AccountFlags.LINKED)
                if chain_start is None and linked:
                    chain_start, chain_failed = i, False
                if chain_failed:
                    r = AR.LINKED_EVENT_FAILED
                elif linked and i == len(batch) - 1:
                    r = AR.LINKED_EVENT_CHAIN_OPEN
                else:
                    r = self._check_account(a, existing, created)
                if r is AR.CREATED:
                    created[hex_id(a.id)] = _account_row(a, ts + i)
                elif chain_start is not None and not chain_failed:
                    chain_failed = True
                    for j in range(chain_start, i):
                        results[j] = AR.LINKED_EVENT_FAILED
                        created.pop(hex_id(batch[j].id), None)
                results.append(r)
                if not linked:
                    chain_start, chain_failed = None, False
            if created:
                conn.execute(s.accounts.insert(), list(created.values()))
        return results

    @staticmethod
    def _check_account(
        a: Account, existing: dict[str, Any], created: dict[str, dict[str, Any]]
    ) -> CreateAccountResult:
        if int(a.flags) & ~_ACCOUNT_FLAGS_ALL:
            return AR.RESERVED_FLAG
        if a.id == 0:
            return AR.ID_MUST_NOT_BE_ZERO
        if a.id >= U128_MAX:
            return AR.ID_MUST_NOT_BE_INT_MAX
        key = hex_id(a.id)
        old = existing.get(key) or created.get(key)
        if old is not None:
            old_get = old.get if isinstance(old, dict) else old._mapping.get
            if old_get("flags") != int(a.flags):
                return AR.EXISTS_WITH_DIFFERENT_FLAGS
            if old_get("user_data_128") != hex_id(a.user_data_128):
                return AR.EXISTS_WITH_DIFFERENT_USER_DATA_128
            if int(old_get("user_data_64") or 0) != a.user_data_64:
                return AR.EXISTS_WITH_DIFFERENT_USER_DATA_64
            if old_get("user_data_32") != a.user_data_32:
                return AR.EXISTS_WITH_DIFFERENT_USER_DATA_32
            if old_get("ledger") != a.ledger:
                return AR.EXISTS_WITH_DIFFERENT_LEDGER
            if old_get("code") != a.code:
                return AR.EXISTS_WITH_DIFFERENT_CODE
            return AR.EXISTS
        both = (
            AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
            | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
        )
        if a.flags & both == both:
            return AR.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if a.ledger <= 0:
            return AR.LEDGER_MUST_NOT_BE_ZERO
        if a.code <= 0:
            return AR.CODE_MUST_NOT_BE_ZERO
        return AR.CREATED

    # ---------------------------------------------------------------------------- transfers

    def create_transfers(self, batch: Sequence[Transfer]) -> list[CreateTransferResult]:
        if not batch:
            return []
        with write_transaction(self.engine) as conn:
            ts = self._timestamp_base(conn)
            self._expire(conn, ts)
            run = _Batch(conn, batch, ts)
            results = run.execute()
            run.write()
        return results

    def expire_pending(self) -> int:
        """Void every pending transfer whose timeout has passed; returns how many."""
        with write_transaction(self.engine) as conn:
            return self._expire(conn, self._timestamp_base(conn))

    def _expire(self, conn: Connection, now_ns: int) -> int:
        p = s.pending
        rows = conn.execute(_EXPIRED, {"now": now_ns}).all()  # every create_transfers: prebuilt
        if not rows:
            return 0
        for r in rows:
            upd = conn.execute(
                p.update()
                .where(p.c.id == r.id, p.c.status == PendingStatus.PENDING.value)
                .values(status=PendingStatus.EXPIRED.value)
            )
            assert upd.rowcount == 1, "dev: writer lock held, nobody else resolves it"
            conn.execute(
                s.accounts.update()
                .where(s.accounts.c.id == r.debit_account_id)
                .values(debits_pending=s.accounts.c.debits_pending - r.amount)
            )
            conn.execute(
                s.accounts.update()
                .where(s.accounts.c.id == r.credit_account_id)
                .values(credits_pending=s.accounts.c.credits_pending - r.amount)
            )
        return len(rows)

    def _timestamp_base(self, conn: Connection) -> int:
        """Strictly increasing ns timestamps even if the wall clock steps back."""
        row = conn.execute(_LAST_TIMESTAMPS).one()  # one statement for both tables
        last = max(row[0] or 0, row[1] or 0)
        return max(self.clock_ns(), last + 1)

    @staticmethod
    def _select_in(conn: Connection, table: sa.Table, keys: list[str]) -> list[Any]:
        """Rows by primary key. Plain driver SQL: compiling an 8,000-item IN list through
        SQLAlchemy costs more than running it."""
        out: list[Any] = []
        ph = _placeholder(conn)
        cols = ", ".join(c.name for c in table.columns)
        for part in chunks(sorted(set(keys)), 4000):
            sql = f"SELECT {cols} FROM {table.name} WHERE id IN ({', '.join([ph] * len(part))})"
            out.extend(conn.exec_driver_sql(sql, tuple(part)).all())
        return out

    # ------------------------------------------------------------------------------ lookups

    def lookup_accounts(self, ids: Iterable[int]) -> list[Account]:
        keys = [hex_id(i) for i in ids]
        with self.engine.connect() as conn:
            rows = {r.id: r for r in self._select_in(conn, s.accounts, keys)}
        return [_account_from_row(rows[k]) for k in keys if k in rows]

    def lookup_transfers(self, ids: Iterable[int]) -> list[Transfer]:
        keys = [hex_id(i) for i in ids]
        with self.engine.connect() as conn:
            rows = {r.id: r for r in self._select_in(conn, s.transfers, keys)}
        return [_transfer_from_row(rows[k]) for k in keys if k in rows]

    def transfers_with_user_data_128(self, value: int) -> list[Transfer]:
        """Every transfer carrying this reference (e.g. a chain mint/burn id)."""
        t = s.transfers
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t)
                .where(t.c.user_data_128 == hex_id(value))
                .where(t.c.user_data_128 != _ZERO_ID)  # lets SQLite use the partial index
                .order_by(t.c.timestamp)
            ).all()
        return [_transfer_from_row(r) for r in rows]

    def account_transfers(self, account_id: int, *, limit: int = 1000) -> list[Transfer]:
        t, key = s.transfers, hex_id(account_id)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t)
                .where(sa.or_(t.c.debit_account_id == key, t.c.credit_account_id == key))
                .order_by(t.c.timestamp)
                .limit(limit)
            ).all()
        return [_transfer_from_row(r) for r in rows]

    def pending_status(self, pending_id: int) -> PendingStatus | None:
        with self.engine.connect() as conn:
            v = conn.execute(
                sa.select(s.pending.c.status).where(s.pending.c.id == hex_id(pending_id))
            ).scalar()
        return PendingStatus(v) if v is not None else None

    def totals(self) -> list[LedgerTotals]:
        a = s.accounts
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    a.c.ledger,
                    sa.func.sum(a.c.debits_pending),
                    sa.func.sum(a.c.credits_pending),
                    sa.func.sum(a.c.debits_posted),
                    sa.func.sum(a.c.credits_posted),
                )
                .group_by(a.c.ledger)
                .order_by(a.c.ledger)
            ).all()
        return [LedgerTotals(r[0], *(int(v) for v in r[1:])) for r in rows]

    def audit(self) -> list[str]:
        """Recompute every account's totals from the immutable transfers and the pending
        states; return the discrepancies (empty when the ledger is consistent)."""
        problems: list[str] = []
        expected: dict[str, list[int]] = {}
        t, p = s.transfers, s.pending
        with self.engine.connect() as conn:
            accs = conn.execute(sa.select(s.accounts)).all()
            status = dict(conn.execute(sa.select(p.c.id, p.c.status)).all())
            for r in conn.execute(sa.select(t)).yield_per(10_000):
                flags = TransferFlags(r.flags)
                d = expected.setdefault(r.debit_account_id, [0, 0, 0, 0])
                c = expected.setdefault(r.credit_account_id, [0, 0, 0, 0])
                if flags & TransferFlags.PENDING:
                    if status.get(r.id) == PendingStatus.PENDING.value:
                        d[0] += r.amount
                        c[2] += r.amount
                elif flags & TransferFlags.VOID_PENDING_TRANSFER:
                    continue
                else:  # single-phase or the posted part of a post_pending_transfer
                    d[1] += r.amount
                    c[3] += r.amount
        for a in accs:
            got = [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted]
            want = expected.pop(a.id, [0, 0, 0, 0])
            if got != want:
                problems.append(f"account {a.id}: totals {got} but transfers give {want}")
        problems.extend(f"transfers name unknown account {k}" for k in expected)
        return problems


class _Batch:
    """Decides one batch of transfers in memory, then writes it.

    The hot path works on plain ints (flag tests on IntFlag members cost a Python call each)
    and writes through the driver's executemany (PostgreSQL: COPY), bypassing per-row
    SQLAlchemy parameter processing; the SQL itself stays in schema.py's table definitions.
    """

    def __init__(self, conn: Connection, batch: Sequence[Transfer], ts: int) -> None:
        self.conn, self.batch, self.ts = conn, batch, ts
        self.new: dict[str, tuple[Any, ...]] = {}  # transfers created by this batch, as rows
        self.new_pending: dict[str, int] = {}  # pending id -> expires_at_ns
        self.resolved: dict[str, tuple[str, str]] = {}  # pending id -> (status, by)
        self.undo: list[tuple[Any, ...]] = []
        self.logging = False  # inside a linked chain: record undo entries
        self._load()

    def _load(self) -> None:
        conn, batch = self.conn, self.batch
        fmt = "{:032x}".format
        zero = fmt(0)
        self.keys = [
            (
                fmt(t.id),
                fmt(t.debit_account_id),
                fmt(t.credit_account_id),
                fmt(t.pending_id) if t.pending_id else zero,
            )
            for t in batch
        ]
        self.existing = {
            r.id: r._mapping
            for r in Ledger._select_in(conn, s.transfers, [k[0] for k in self.keys])
        }
        pids = [k[3] for t, k in zip(batch, self.keys, strict=True) if t.flags & _RESOLVE_I]
        self.pend: dict[str, _Pend] = {}
        self.not_pending: set[str] = set()
        acc_ids = {k[1] for k in self.keys} | {k[2] for k in self.keys}
        if pids:
            p, t = s.pending, s.transfers
            for part in chunks(sorted(set(pids))):
                rows = conn.execute(
                    sa.select(
                        t.c.id,
                        t.c.debit_account_id,
                        t.c.credit_account_id,
                        t.c.amount,
                        t.c.ledger,
                        t.c.code,
                        p.c.status,
                        p.c.expires_at_ns,
                    )
                    .outerjoin(p, p.c.id == t.c.id)
                    .where(t.c.id.in_(part))
                ).all()
                for r in rows:
                    if r.status is None:  # a single-phase transfer: nothing to resolve
                        self.not_pending.add(r.id)
                        continue
                    self.pend[r.id] = _Pend(
                        r.debit_account_id,
                        r.credit_account_id,
                        r.amount,
                        r.ledger,
                        r.code,
                        r.status,
                        r.expires_at_ns,
                    )
                    acc_ids |= {r.debit_account_id, r.credit_account_id}
        self.acc = {r.id: _Acc(r) for r in Ledger._select_in(conn, s.accounts, list(acc_ids))}

    def execute(self) -> list[CreateTransferResult]:
        batch, keys = self.batch, self.keys
        results: list[CreateTransferResult] = []
        chain_start: int | None = None
        chain_failed = False
        mark = 0
        last = len(batch) - 1
        created = R.CREATED
        for i, t in enumerate(batch):
            flags = int(t.flags)
            linked = flags & _LINKED_I
            if chain_start is None and linked:
                chain_start, chain_failed, mark = i, False, len(self.undo)
            # Outside a chain a failing event changes nothing (checks precede mutations), so
            # the undo log is kept only inside linked chains.
            self.logging = chain_start is not None
            if chain_failed:
                r = R.LINKED_EVENT_FAILED
            elif linked and i == last:
                r = R.LINKED_EVENT_CHAIN_OPEN
            else:
                r = self._apply(t, flags, keys[i], self.ts + i)
            if r is not created and chain_start is not None and not chain_failed:
                chain_failed = True
                self._rollback(mark)
                for j in range(chain_start, i):
                    results[j] = R.LINKED_EVENT_FAILED
            results.append(r)
            if not linked:
                chain_start, chain_failed = None, False
        return results

    def _rollback(self, mark: int) -> None:
        while len(self.undo) > mark:
            kind, *rest = self.undo.pop()
            if kind == "acc":
                acc, dp, dpo, cp, cpo = rest
                acc.dp, acc.dpo, acc.cp, acc.cpo = dp, dpo, cp, cpo
            elif kind == "new":
                self.new.pop(rest[0])
                if rest[0] in self.new_pending:
                    del self.new_pending[rest[0]]
                    del self.pend[rest[0]]
            elif kind == "res":
                pid, old_status = rest
                self.resolved.pop(pid)
                self.pend[pid].status = old_status

    def _touch(self, acc: _Acc) -> None:
        if self.logging:
            self.undo.append(("acc", acc, acc.dp, acc.dpo, acc.cp, acc.cpo))
        acc.dirty = True

    def _apply(
        self, t: Transfer, flags: int, keys: tuple[str, str, str, str], ts: int
    ) -> CreateTransferResult:
        if flags & ~_TRANSFER_FLAGS_ALL:
            return R.RESERVED_FLAG
        if t.id == 0:
            return R.ID_MUST_NOT_BE_ZERO
        if t.id >= U128_MAX:
            return R.ID_MUST_NOT_BE_INT_MAX
        key = keys[0]
        if key in self.new or key in self.existing:
            old = self.new.get(key)
            return _compare_existing(
                t, dict(zip(_TRANSFER_COLS, old, strict=True)) if old else self.existing[key]
            )
        two_phase = flags & _TWO_PHASE_I
        if two_phase and two_phase & (two_phase - 1):
            return R.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if flags & _RESOLVE_I:
            return self._resolve(t, flags, keys, ts)
        return self._single(t, flags, keys, ts)

    def _single(
        self, t: Transfer, flags: int, keys: tuple[str, str, str, str], ts: int
    ) -> CreateTransferResult:
        is_pending = flags & _PENDING_I
        if t.debit_account_id == 0:
            return R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
        if t.credit_account_id == 0:
            return R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
        if t.debit_account_id == t.credit_account_id:
            return R.ACCOUNTS_MUST_BE_DIFFERENT
        if t.pending_id != 0:
            return R.PENDING_ID_MUST_BE_ZERO
        if t.timeout_s and not is_pending:
            return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        amount = t.amount
        if amount < 0 or t.timeout_s < 0:
            return R.AMOUNT_MUST_NOT_BE_NEGATIVE
        if amount == 0:
            return R.AMOUNT_MUST_NOT_BE_ZERO
        if t.ledger <= 0:
            return R.LEDGER_MUST_NOT_BE_ZERO
        if t.code <= 0:
            return R.CODE_MUST_NOT_BE_ZERO
        dr = self.acc.get(keys[1])
        if dr is None:
            return R.DEBIT_ACCOUNT_NOT_FOUND
        cr = self.acc.get(keys[2])
        if cr is None:
            return R.CREDIT_ACCOUNT_NOT_FOUND
        if dr.ledger != cr.ledger:
            return R.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
        if t.ledger != dr.ledger:
            return R.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS
        if dr.dp + dr.dpo + amount > AMOUNT_MAX:
            return R.OVERFLOWS_DEBITS
        if cr.cp + cr.cpo + amount > AMOUNT_MAX:
            return R.OVERFLOWS_CREDITS
        if dr.flags & _DMNEC_I and dr.dp + dr.dpo + amount > dr.cpo:
            return R.EXCEEDS_CREDITS
        if cr.flags & _CMNED_I and cr.cp + cr.cpo + amount > cr.dpo:
            return R.EXCEEDS_DEBITS
        self._touch(dr)
        self._touch(cr)
        key = keys[0]
        if is_pending:
            dr.dp += amount
            cr.cp += amount
            exp = ts + t.timeout_s * _NS_PER_S if t.timeout_s else 0
            self.new_pending[key] = exp
            self.pend[key] = _Pend(dr.id, cr.id, amount, t.ledger, t.code, "pending", exp)
        else:
            dr.dpo += amount
            cr.cpo += amount
        self._record(t, flags, keys, ts, dr.id, cr.id, amount, t.ledger, t.code)
        return R.CREATED

    def _resolve(
        self, t: Transfer, flags: int, keys: tuple[str, str, str, str], ts: int
    ) -> CreateTransferResult:
        post = flags & _POST_I
        if t.pending_id == 0:
            return R.PENDING_ID_MUST_NOT_BE_ZERO
        if t.pending_id == t.id:
            return R.PENDING_ID_MUST_BE_DIFFERENT
        if t.timeout_s:
            return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        if t.amount < 0:
            return R.AMOUNT_MUST_NOT_BE_NEGATIVE
        pid = keys[3]
        p = self.pend.get(pid)
        if p is None:
            is_regular = pid in self.not_pending or pid in self.new
            return R.PENDING_TRANSFER_NOT_PENDING if is_regular else R.PENDING_TRANSFER_NOT_FOUND
        if t.debit_account_id and keys[1] != p.debit:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
        if t.credit_account_id and keys[2] != p.credit:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
        if t.ledger and t.ledger != p.ledger:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER
        if t.code and t.code != p.code:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_CODE
        amount = t.amount or p.amount
        if post and amount > p.amount:
            return R.EXCEEDS_PENDING_TRANSFER_AMOUNT
        if not post and amount != p.amount:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
        if p.status == PendingStatus.POSTED.value:
            return R.PENDING_TRANSFER_ALREADY_POSTED
        if p.status == PendingStatus.VOIDED.value:
            return R.PENDING_TRANSFER_ALREADY_VOIDED
        if p.status == PendingStatus.EXPIRED.value or 0 < p.expires_at_ns <= ts:
            return R.PENDING_TRANSFER_EXPIRED
        dr, cr = self.acc[p.debit], self.acc[p.credit]
        self._touch(dr)
        self._touch(cr)
        dr.dp -= p.amount
        cr.cp -= p.amount
        if post:
            dr.dpo += amount
            cr.cpo += amount
        status = PendingStatus.POSTED if post else PendingStatus.VOIDED
        if self.logging:
            self.undo.append(("res", pid, p.status))
        p.status = status.value
        self.resolved[pid] = (status.value, keys[0])
        self._record(t, flags, keys, ts, p.debit, p.credit, amount, p.ledger, p.code)
        return R.CREATED

    def _record(
        self,
        t: Transfer,
        flags: int,
        keys: tuple[str, str, str, str],
        ts: int,
        dr: str,
        cr: str,
        amount: int,
        ledger: int,
        code: int,
    ) -> None:
        key = keys[0]
        self.new[key] = (
            key,
            dr,
            cr,
            amount,
            keys[3],
            ledger,
            code,
            flags,
            t.timeout_s,
            f"{t.user_data_128:032x}" if t.user_data_128 else _ZERO_ID,
            t.user_data_64,
            t.user_data_32,
            ts,
        )
        if self.logging:
            self.undo.append(("new", key))

    def write(self) -> None:
        conn = self.conn
        if self.new:
            _bulk_insert(conn, s.transfers, _TRANSFER_COLS, list(self.new.values()))
        if self.new_pending:
            _bulk_insert(
                conn,
                s.pending,
                ("id", "status", "expires_at_ns", "resolved_by"),
                [(k, "pending", e, None) for k, e in self.new_pending.items()],
            )
        # resolved pending transfers: one statement per kind through the driver (one
        # executemany: a statement built and compiled per row cost ~0.15 ms each — most of
        # a day's statement import with hundreds of payouts); each row must match once
        ph = _placeholder(conn)
        table = s.pending.name
        was_pending = [(st, by, pid) for pid, (st, by) in self.resolved.items()
                       if pid not in self.new_pending]  # fmt: skip
        made_here = [(st, by, pid) for pid, (st, by) in self.resolved.items()
                     if pid in self.new_pending]  # created and resolved in this batch  # fmt: skip
        for rows, cond in ((was_pending, f" AND status = '{PendingStatus.PENDING.value}'"),
                           (made_here, "")):  # fmt: skip
            if not rows:
                continue
            sql = f"UPDATE {table} SET status = {ph}, resolved_by = {ph} WHERE id = {ph}{cond}"
            if len(rows) == 1 or not conn.dialect.supports_sane_multi_rowcount:
                counts = [conn.exec_driver_sql(sql, row).rowcount for row in rows]
                bad = next((row[2] for row, n in zip(rows, counts, strict=True) if n != 1), None)
            else:
                n = conn.exec_driver_sql(sql, rows).rowcount  # type: ignore[arg-type]
                bad = None if n == len(rows) else "one of them"
            if bad is not None:
                raise RuntimeError(f"pending transfer {bad} was resolved concurrently")
        dirty = [(x.dp, x.dpo, x.cp, x.cpo, x.id) for x in self.acc.values() if x.dirty]
        if dirty:
            ph = _placeholder(conn)
            conn.exec_driver_sql(
                f"UPDATE {s.accounts.name} SET debits_pending = {ph}, debits_posted = {ph}, "
                f"credits_pending = {ph}, credits_posted = {ph} WHERE id = {ph}",
                dirty,  # type: ignore[arg-type]
            )


_TRANSFER_COLS = (
    "id",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "pending_id",
    "ledger",
    "code",
    "flags",
    "timeout_s",
    "user_data_128",
    "user_data_64",
    "user_data_32",
    "timestamp",
)


def _placeholder(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _bulk_insert(
    conn: Connection, table: sa.Table, cols: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert many rows through the driver: COPY on PostgreSQL, executemany elsewhere."""
    names = ", ".join(cols)
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None, "dev: a live psycopg connection"
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    ph = ", ".join([_placeholder(conn)] * len(cols))
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({ph})", rows)  # type: ignore[arg-type]


def _compare_existing(t: Transfer, old: Any) -> CreateTransferResult:
    """`exists` only when every field the caller gave matches what is stored. For post/void,
    zero fields mean "as the pending transfer" and are not compared."""
    resolving = bool(t.flags & _RESOLVE)
    if old["flags"] != int(t.flags):
        return R.EXISTS_WITH_DIFFERENT_FLAGS
    if old["pending_id"] != hex_id(t.pending_id):
        return R.EXISTS_WITH_DIFFERENT_PENDING_ID
    if old["timeout_s"] != t.timeout_s:
        return R.EXISTS_WITH_DIFFERENT_TIMEOUT
    if (t.debit_account_id or not resolving) and old["debit_account_id"] != hex_id(
        t.debit_account_id
    ):
        return R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
    if (t.credit_account_id or not resolving) and old["credit_account_id"] != hex_id(
        t.credit_account_id
    ):
        return R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
    if (t.amount or not resolving) and old["amount"] != t.amount:
        return R.EXISTS_WITH_DIFFERENT_AMOUNT
    if old["user_data_128"] != hex_id(t.user_data_128):
        return R.EXISTS_WITH_DIFFERENT_USER_DATA_128
    if int(old["user_data_64"]) != t.user_data_64:
        return R.EXISTS_WITH_DIFFERENT_USER_DATA_64
    if old["user_data_32"] != t.user_data_32:
        return R.EXISTS_WITH_DIFFERENT_USER_DATA_32
    if (t.ledger or not resolving) and old["ledger"] != t.ledger:
        return R.EXISTS_WITH_DIFFERENT_LEDGER
    if (t.code or not resolving) and old["code"] != t.code:
        return R.EXISTS_WITH_DIFFERENT_CODE
    return R.EXISTS


def _account_row(a: Account, ts: int) -> dict[str, Any]:
    return {
        "id": hex_id(a.id),
        "ledger": a.ledger,
        "code": a.code,
        "flags": int(a.flags),
        "user_data_128": hex_id(a.user_data_128),
        "user_data_64": a.user_data_64,
        "user_data_32": a.user_data_32,
        "debits_pending": 0,
        "debits_posted": 0,
        "credits_pending": 0,
        "credits_posted": 0,
        "timestamp": ts,
    }


def _account_from_row(r: Any) -> Account:
    return Account(
        id=int(r.id, 16),
        ledger=r.ledger,
        code=r.code,
        flags=AccountFlags(r.flags),
        user_data_128=int(r.user_data_128, 16),
        user_data_64=int(r.user_data_64),
        user_data_32=r.user_data_32,
        debits_pending=r.debits_pending,
        debits_posted=r.debits_posted,
        credits_pending=r.credits_pending,
        credits_posted=r.credits_posted,
        timestamp=r.timestamp,
    )


def _transfer_from_row(r: Any) -> Transfer:
    return Transfer(
        id=int(r.id, 16),
        debit_account_id=int(r.debit_account_id, 16),
        credit_account_id=int(r.credit_account_id, 16),
        amount=r.amount,
        ledger=r.ledger,
        code=r.code,
        flags=TransferFlags(r.flags),
        pending_id=int(r.pending_id, 16),
        timeout_s=r.timeout_s,
        user_data_128=int(r.user_data_128, 16),
        user_data_64=int(r.user_data_64),
        user_data_32=r.user_data_32,
        timestamp=r.timestamp,
    )
