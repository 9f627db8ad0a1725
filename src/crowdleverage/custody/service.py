"""Custody rules: the chart of accounts, the investor registry, booking camt.053 statements
and issuing pain.001 payouts (DESIGN.md §5 flows 1 and 6).

Chart of accounts (one ledger per currency, CNY = 156):

| code | account | normal side | note |
|---|---|---|---|
| 1 BANK_CASH | the platform's custody account at the bank | debit | = the bank statement balance |
| 2 INVESTOR  | one per investor, what custody owes them | credit | may not go negative |
| 3 SUSPENSE  | bank money matching no investor or payout | either | cleared by hand |

Every booking's transfer id is derived from the bank's own reference (AcctSvcrRef), so
booking the same statement twice - or after a crash half-way - books nothing twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import IntEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crowdleverage.custody import schema as s
from crowdleverage.custody.bank.camt053 import Entry, Statement, read_statement
from crowdleverage.custody.bank.pain001 import Payment, PaymentFile, write_payment_file
from crowdleverage.custody.ledger import Ledger
from crowdleverage.custody.types import (
    U128_MAX,
    Account,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    Transfer,
    TransferFlags,
)
from crowdleverage.domain.errors import Conflict, InvalidInput, NotFound, RuleViolation

CNY_LEDGER = 156
R = CreateTransferResult

investors = sa.Table(
    "custody_investors",
    s.metadata,
    sa.Column("investor_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("virtual_account", sa.String(64), nullable=False, unique=True),
    sa.Column("reference", sa.String(32), nullable=False, unique=True),
    sa.Column("payout_account", sa.String(64), nullable=False),
    sa.Column("ledger_account_id", s.ID, nullable=False, unique=True),
)

statements = sa.Table(
    "custody_statements",
    s.metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("statement_id", sa.String(128), primary_key=True),
    sa.Column("sequence_nb", sa.BigInteger, nullable=False),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("opening_fen", sa.BigInteger, nullable=False),
    sa.Column("closing_fen", sa.BigInteger, nullable=False),
    sa.Column("imported_at_ns", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("account", "sequence_nb", name="uq_custody_statements_seq"),
)

payouts = sa.Table(
    "custody_payouts",
    s.metadata,
    sa.Column("transfer_id", s.ID, primary_key=True),  # the pending transfer = EndToEndId
    sa.Column("investor_id", sa.String(64), nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # requested, exported, settled
    sa.Column("message_id", sa.String(64), nullable=True),
)


class AccountCode(IntEnum):
    BANK_CASH = 1
    INVESTOR = 2
    SUSPENSE = 3


class TransferCode(IntEnum):
    DEPOSIT = 1
    PAYOUT = 2
    UNMATCHED_IN = 3
    UNMATCHED_OUT = 4
    CORRECTION = 9


def derive_id(*parts: str) -> int:
    """A deterministic 128-bit id from a natural key (an idempotency key for bookings)."""
    v = int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:16], "big")
    return v if 0 < v < U128_MAX else 1


@dataclass(frozen=True, slots=True)
class Deposit:
    """An incoming payment booked to an investor: the chain bridge mints for it, with
    `transfer_id` as the mint reference."""

    investor_id: str
    transfer_id: int
    amount_fen: int


@dataclass(frozen=True, slots=True)
class ImportReport:
    statement_id: str
    already_imported: bool
    entries: int = 0
    deposits: tuple[Deposit, ...] = ()
    payouts_settled: int = 0
    suspense_fen: int = 0  # booked to SUSPENSE (unmatched in minus unmatched out)
    closing_fen: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["deposits"] = [
            {**dataclasses.asdict(x), "transfer_id": f"{x.transfer_id:032x}"} for x in self.deposits
        ]
        return d


class CustodyService:
    def __init__(self, engine: Engine, bank_account: str, *, ledger: Ledger | None = None) -> None:
        self.engine = engine
        self.ledger = ledger or Ledger(engine)
        self.bank_account = bank_account
        self.bank_cash_id = derive_id("account", "bank_cash", bank_account)
        self.suspense_id = derive_id("account", "suspense", bank_account)
        # investor id → ledger account id, once found (a registration is never changed)
        self._account_ids: dict[str, int] = {}

    def setup(self) -> None:
        """Create tables and the platform accounts (idempotent)."""
        self.ledger.create_schema()
        res = self.ledger.create_accounts(
            [
                Account(self.bank_cash_id, CNY_LEDGER, AccountCode.BANK_CASH),
                Account(self.suspense_id, CNY_LEDGER, AccountCode.SUSPENSE),
            ]
        )
        assert set(res) <= {CreateAccountResult.CREATED, CreateAccountResult.EXISTS}, res

    # -------------------------------------------------------------------------- investors

    def register_investor(
        self,
        investor_id: str,
        *,
        name: str,
        virtual_account: str,
        reference: str,
        payout_account: str,
    ) -> int:
        """Open an investor's custody account; returns its ledger account id. Repeating the
        same registration is a no-op; a different one for the same id is a Conflict."""
        for label, v in (("investor id", investor_id), ("reference", reference)):
            if not re.fullmatch(r"[A-Za-z0-9-]{3,32}", v):
                raise InvalidInput(f"{label} {v!r} must be 3-32 letters, digits or '-'")
        if not virtual_account.strip() or not payout_account.strip():
            raise InvalidInput("virtual and payout accounts are required")
        acc_id = derive_id("account", "investor", investor_id)
        row = {
            "investor_id": investor_id,
            "name": name,
            "virtual_account": virtual_account,
            "reference": reference.upper(),
            "payout_account": payout_account,
            "ledger_account_id": f"{acc_id:032x}",
        }
        with self.engine.begin() as conn:
            old = conn.execute(
                sa.select(investors).where(
                    sa.or_(
                        investors.c.investor_id == investor_id,
                        investors.c.virtual_account == virtual_account,
                        investors.c.reference == row["reference"],
                    )
                )
            ).all()
            if old and any(dict(o._mapping) != row for o in old):
                raise Conflict(
                    f"investor {investor_id}: id, virtual account or reference already registered"
                    " differently"
                )
            if not old:
                conn.execute(investors.insert(), row)
        res = self.ledger.create_accounts(
            [
                Account(
                    acc_id,
                    CNY_LEDGER,
                    AccountCode.INVESTOR,
                    AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
                )
            ]
        )
        assert res[0] in (CreateAccountResult.CREATED, CreateAccountResult.EXISTS), res
        return acc_id

    def investor_account_id(self, investor_id: str) -> int:
        known = self._account_ids.get(investor_id)
        if known is not None:
            return known
        with self.engine.connect() as conn:
            v = conn.execute(
                sa.select(investors.c.ledger_account_id).where(
                    investors.c.investor_id == investor_id
                )
            ).scalar()
        if v is None:
            raise NotFound(f"investor {investor_id} is not registered with custody")
        self._account_ids[investor_id] = int(v, 16)
        return int(v, 16)

    def investor_balances(self) -> dict[str, int]:
        """Posted balance (fen) of every investor, for proofs of liabilities."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(investors.c.investor_id, investors.c.ledger_account_id)
            ).all()
        accs = {a.id: a for a in self.ledger.lookup_accounts(int(r[1], 16) for r in rows)}
        return {r[0]: accs[int(r[1], 16)].balance_fen for r in rows}

    def bank_cash_fen(self) -> int:
        [a] = self.ledger.lookup_accounts([self.bank_cash_id])
        return a.debits_posted - a.credits_posted

    # -------------------------------------------------------------------------- statements

    def import_statement(self, data: bytes, source: str = "<camt.053>") -> ImportReport:
        """Validate and book a camt.053 statement, all or nothing. Re-importing the same
        statement changes nothing; a different statement under the same id is a Conflict."""
        st = read_statement(data, source)
        if st.account != self.bank_account:
            raise InvalidInput(f"{source}: statement is for account {st.account}, not ours")
        digest = _statement_digest(st)
        with self.engine.connect() as conn:
            prev = conn.execute(
                sa.select(statements).where(
                    statements.c.account == st.account,
                    sa.or_(
                        statements.c.statement_id == st.statement_id,
                        statements.c.sequence_nb == st.sequence_nb,
                    ),
                )
            ).first()
            registry = conn.execute(sa.select(investors)).all()
            payout_rows = {
                r.transfer_id: r
                for r in conn.execute(sa.select(payouts).where(payouts.c.status != "settled")).all()
            }
        if prev is not None:
            if prev.statement_id == st.statement_id and prev.content_sha256 == digest:
                return ImportReport(
                    st.statement_id, already_imported=True, closing_fen=st.closing_fen
                )
            raise Conflict(
                f"{source}: statement {st.statement_id} (sequence {st.sequence_nb}) conflicts with"
                f" the already imported statement {prev.statement_id}"
            )
        plan = self._plan(st, registry, payout_rows, source)
        self._book(st, plan, source)
        with self.engine.begin() as conn:
            conn.execute(
                statements.insert(),
                {
                    "account": st.account,
                    "statement_id": st.statement_id,
                    "sequence_nb": st.sequence_nb,
                    "content_sha256": digest,
                    "opening_fen": st.opening_fen,
                    "closing_fen": st.closing_fen,
                    "imported_at_ns": time.time_ns(),
                },
            )
            settled = [f"{t.pending_id:032x}" for t in plan.transfers if t.pending_id]
            if settled:
                conn.execute(
                    payouts.update()
                    .where(payouts.c.transfer_id.in_(settled))
                    .values(status="settled")
                )
        return ImportReport(
            st.statement_id,
            already_imported=False,
            entries=len(st.entries),
            deposits=tuple(plan.deposits),
            payouts_settled=len(settled),
            suspense_fen=plan.suspense_fen,
            closing_fen=st.closing_fen,
        )

    def _plan(
        self,
        st: Statement,
        registry: Sequence[sa.Row[Any]],
        payout_rows: dict[str, sa.Row],
        source: str,
    ) -> _Plan:
        by_virtual = {r.virtual_account: r for r in registry}
        by_ref = {r.reference: r for r in registry}
        plan = _Plan()
        for e in st.entries:
            tid = derive_id("camt053", st.account, e.account_servicer_ref)
            day = int(e.booking_date.strftime("%Y%m%d"))
            if e.credit:
                inv = by_virtual.get(e.virtual_account) or _match_reference(e, by_ref)
                if inv is None:
                    credit, code = self.suspense_id, TransferCode.UNMATCHED_IN
                    plan.suspense_fen += e.amount_fen
                else:
                    credit, code = int(inv.ledger_account_id, 16), TransferCode.DEPOSIT
                    plan.deposits.append(Deposit(inv.investor_id, tid, e.amount_fen))
                plan.transfers.append(
                    Transfer(tid, self.bank_cash_id, credit, e.amount_fen, CNY_LEDGER, code,
                             user_data_32=day)
                )  # fmt: skip
                continue
            payout = payout_rows.get(e.end_to_end_id.lower())
            if payout is not None:
                if payout.amount_fen != e.amount_fen:
                    raise InvalidInput(
                        f"{source}: entry {e.account_servicer_ref} pays {e.amount_fen} fen for"
                        f" payout {e.end_to_end_id}, which is {payout.amount_fen} fen"
                    )
                plan.transfers.append(
                    Transfer(tid, pending_id=int(payout.transfer_id, 16), user_data_32=day,
                             flags=TransferFlags.POST_PENDING_TRANSFER)
                )  # fmt: skip
            else:
                plan.suspense_fen -= e.amount_fen
                plan.transfers.append(
                    Transfer(tid, self.suspense_id, self.bank_cash_id, e.amount_fen, CNY_LEDGER,
                             TransferCode.UNMATCHED_OUT, user_data_32=day)
                )  # fmt: skip
        return plan

    def _book(self, st: Statement, plan: _Plan, source: str) -> None:
        """Book the plan as one linked chain. If a crash left it booked but not recorded,
        every transfer already exists and only the record is missing."""
        if not plan.transfers:
            if st.opening_fen != self.bank_cash_fen():
                raise InvalidInput(f"{source}: opening balance does not match custody cash")
            return
        found = self.ledger.lookup_transfers(t.id for t in plan.transfers)
        if len(found) == len(plan.transfers):
            return  # booked by an interrupted earlier import
        if found:
            raise Conflict(f"{source}: some of the statement's entries are booked already")
        if st.opening_fen != self.bank_cash_fen():
            raise InvalidInput(
                f"{source}: opening balance {st.opening_fen} fen does not match custody cash"
                f" {self.bank_cash_fen()} fen (a statement is missing or out of order)"
            )
        chain = [
            dataclasses.replace(t, flags=t.flags | TransferFlags.LINKED)
            for t in plan.transfers[:-1]
        ]
        chain.append(plan.transfers[-1])
        results = self.ledger.create_transfers(chain)
        if set(results) != {R.CREATED}:
            bad = next(
                (i, r) for i, r in enumerate(results) if r not in (R.CREATED, R.LINKED_EVENT_FAILED)
            )
            raise InvalidInput(
                f"{source}: entry {st.entries[bad[0]].account_servicer_ref} cannot be booked:"
                f" {bad[1].value}; nothing was booked"
            )

    # ---------------------------------------------------------------------------- payouts

    def request_payout(self, investor_id: str, amount_fen: int, *, payout_id: int) -> int:
        """Reserve a payout from an investor's account (a pending transfer); it is exported in
        the next pain.001 and posted when the bank's statement shows the debit."""
        if amount_fen <= 0:
            raise InvalidInput(f"payout amount must be positive, got {amount_fen} fen")
        acc = self.investor_account_id(investor_id)
        t = Transfer(
            payout_id, acc, self.bank_cash_id, amount_fen, CNY_LEDGER, TransferCode.PAYOUT,
            flags=TransferFlags.PENDING,
        )  # fmt: skip
        [res] = self.ledger.create_transfers([t])
        if res is R.EXCEEDS_CREDITS:
            raise RuleViolation(f"investor {investor_id} has less than {amount_fen} fen available",
                                rule="available", amount_fen=amount_fen)  # fmt: skip
        if res not in (R.CREATED, R.EXISTS):
            raise Conflict(f"payout {payout_id:032x} refused: {res.value}")
        with self.engine.begin() as conn:
            key = f"{payout_id:032x}"
            if (
                conn.execute(
                    sa.select(payouts.c.transfer_id).where(payouts.c.transfer_id == key)
                ).first()
                is None
            ):
                conn.execute(
                    payouts.insert(),
                    {"transfer_id": key, "investor_id": investor_id, "amount_fen": amount_fen,
                     "status": "requested", "message_id": None},
                )  # fmt: skip
        return payout_id

    def request_payouts(self, items: list[tuple[str, int, int]]) -> None:
        """`request_payout` for many (investor id, amount fen, payout id) at once: one ledger
        call and one insert (a batch of withdrawals). Each is checked as `request_payout`
        checks it; the first refusal raises (after the ones before it are reserved)."""
        if not items:
            return
        transfers = []
        for investor_id, amount_fen, payout_id in items:
            if amount_fen <= 0:
                raise InvalidInput(f"payout amount must be positive, got {amount_fen} fen")
            acc = self.investor_account_id(investor_id)
            transfers.append(
                Transfer(payout_id, acc, self.bank_cash_id, amount_fen, CNY_LEDGER,
                         TransferCode.PAYOUT, flags=TransferFlags.PENDING)
            )  # fmt: skip
        results = self.ledger.create_transfers(transfers)
        keys = [f"{payout_id:032x}" for _, _, payout_id in items]
        with self.engine.begin() as conn:
            found = sa.select(payouts.c.transfer_id).where(payouts.c.transfer_id.in_(keys))
            have = {r[0] for r in conn.execute(found)}
            new = []
            for (investor_id, amount_fen, payout_id), key, res in zip(
                items, keys, results, strict=True
            ):
                if res is R.EXCEEDS_CREDITS:
                    raise RuleViolation(
                        f"investor {investor_id} has less than {amount_fen} fen available"
                    )
                if res not in (R.CREATED, R.EXISTS):
                    raise Conflict(f"payout {payout_id:032x} refused: {res.value}")
                if key not in have:
                    have.add(key)
                    new.append({"transfer_id": key, "investor_id": investor_id,
                                "amount_fen": amount_fen, "status": "requested",
                                "message_id": None})  # fmt: skip
            if new:
                conn.execute(payouts.insert(), new)

    def cancel_payout(self, payout_id: int) -> None:
        """Void a payout that was not exported yet (releases the reserved amount)."""
        key = f"{payout_id:032x}"
        with self.engine.begin() as conn:
            upd = conn.execute(
                payouts.update()
                .where(payouts.c.transfer_id == key, payouts.c.status == "requested")
                .values(status="voided")
            )
            if upd.rowcount != 1:
                raise Conflict(f"payout {key} is unknown or already exported")
        [res] = self.ledger.create_transfers(
            [Transfer(derive_id("void", key), pending_id=payout_id,
                      flags=TransferFlags.VOID_PENDING_TRANSFER)]
        )  # fmt: skip
        if res not in (R.CREATED, R.EXISTS):
            raise Conflict(f"payout {key} cannot be voided: {res.value}")

    def book_correction(
        self,
        correction_id: int,
        *,
        investor_id: str,
        amount_fen: int,
        credit_investor: bool,
        reference: int = 0,
    ) -> None:
        """Operator: a correcting entry between an investor and SUSPENSE (code CORRECTION).
        `reference` names the chain reference (mint/burn ref, i.e. ledger transfer id) it
        corrects; reconciliation adds it to that reference's ledger twin (credit: +, debit: −).
        Without a reference, a credit is itself a deposit to be minted under `correction_id`."""
        if amount_fen <= 0:
            raise InvalidInput(f"correction amount must be positive, got {amount_fen} fen")
        inv = self.investor_account_id(investor_id)
        dr, cr = (self.suspense_id, inv) if credit_investor else (inv, self.suspense_id)
        t = Transfer(correction_id, dr, cr, amount_fen, CNY_LEDGER, TransferCode.CORRECTION,
                     user_data_128=reference)  # fmt: skip
        [res] = self.ledger.create_transfers([t])
        if res is R.EXCEEDS_CREDITS:
            raise RuleViolation(f"investor {investor_id} has less than {amount_fen} fen available",
                                rule="available", amount_fen=amount_fen)  # fmt: skip
        if res not in (R.CREATED, R.EXISTS):
            raise Conflict(f"correction {correction_id:032x} refused: {res.value}")

    def export_payouts(
        self, *, at: datetime, execution_date: date, message_id: str | None = None
    ) -> bytes | None:
        """A pain.001 file with every payout not yet exported (None if there is none).

        `message_id` (from `payment_message_id`, chosen and recorded by the caller before
        the export): the file's MsgId. When payouts were already exported under it and are
        not settled, the same file is written again instead (the caller crashed before the
        bank had it; a bank refuses a MsgId it executed); when they are settled, None."""
        mid = message_id if message_id is not None else payment_message_id(at)
        pick = sa.select(payouts, investors.c.name, investors.c.payout_account).join(
            investors, investors.c.investor_id == payouts.c.investor_id
        )
        with self.engine.begin() as conn:
            if message_id is not None:
                before = conn.execute(
                    pick.where(payouts.c.message_id == message_id).order_by(payouts.c.transfer_id)
                ).all()
                if before:
                    if any(r.status != "exported" for r in before):
                        return None  # the bank paid that file: nothing to send again
                    return self._payment_file(mid, at, execution_date, before)
            rows = conn.execute(
                pick.where(payouts.c.status == "requested").order_by(payouts.c.transfer_id)
            ).all()
            if not rows:
                return None
            upd = conn.execute(
                payouts.update()
                .where(payouts.c.transfer_id.in_([r.transfer_id for r in rows]))
                .where(payouts.c.status == "requested")
                .values(status="exported", message_id=mid)
            )
            if upd.rowcount != len(rows):
                raise Conflict("payouts were exported concurrently; retry")
            return self._payment_file(mid, at, execution_date, rows)

    def _payment_file(
        self, message_id: str, at: datetime, execution_date: date, rows: Sequence[sa.Row[Any]]
    ) -> bytes:
        return write_payment_file(
            PaymentFile(
                message_id=message_id,
                created_at=at,
                execution_date=execution_date,
                debtor_name="CrowdLeverage custody",
                debtor_account=self.bank_account,
                payments=tuple(
                    Payment(r.transfer_id, r.amount_fen, r.name, r.payout_account,
                            f"CrowdLeverage payout {r.transfer_id}")
                    for r in rows
                ),
            )
        )  # fmt: skip


def payment_message_id(at: datetime) -> str:
    """A new pain.001 MsgId for a file created at `at` (unique per export)."""
    return f"CL{at:%Y%m%d%H%M%S}{time.time_ns() % 1_000_000:06d}"


@dataclass
class _Plan:
    transfers: list[Transfer] = field(default_factory=list)
    deposits: list[Deposit] = field(default_factory=list)
    suspense_fen: int = 0


def _match_reference(e: Entry, by_ref: dict[str, sa.Row]) -> sa.Row | None:
    tokens = re.findall(r"[A-Z0-9-]{3,32}", e.remittance.upper())
    hits = {t for t in tokens if t in by_ref}
    return by_ref[hits.pop()] if len(hits) == 1 else None  # ambiguous -> suspense


def _statement_digest(st: Statement) -> str:
    canon = json.dumps(dataclasses.asdict(st), default=str, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canon.encode()).hexdigest()
