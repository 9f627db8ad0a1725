"""A simulated custodian bank: one platform account at the bank, incoming investor transfers,
execution of the platform's pain.001 payment files, and an end-of-day camt.053 statement.

It stands in for the real custodian in `make run` and tests; the custody side only ever sees
its files, exactly as it would see a real bank's. State can be saved to and loaded from JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path

from crowdleverage.custody.bank.camt053 import Entry, Statement, write_statement
from crowdleverage.custody.bank.pain001 import read_payment_file
from crowdleverage.domain.errors import Conflict, InvalidInput, RuleViolation


@dataclass
class SimulatedBank:
    account: str  # the platform's custody account at the bank
    balance_fen: int = 0  # booked balance after the last closed statement and open entries
    sequence_nb: int = 0  # ElctrncSeqNb of the last statement issued
    next_ref: int = 1  # counter behind AcctSvcrRef
    open_entries: list[Entry] = field(default_factory=list)  # booked since the last statement
    executed_messages: list[str] = field(default_factory=list)  # pain.001 MsgIds executed
    last_closing_fen: int = 0
    # a closed statement the custodian has not imported yet (camt.053 XML): saved with the
    # bank's state so that a crash between closing and importing loses no statement
    unimported: str | None = None

    def _ref(self, day: date) -> str:
        ref = f"SIM{day:%Y%m%d}{self.next_ref:08d}"
        self.next_ref += 1
        return ref

    def receive_transfer(
        self,
        amount_fen: int,
        *,
        payer_name: str,
        payer_account: str,
        virtual_account: str = "",
        remittance: str = "",
        day: date,
    ) -> Entry:
        """An investor's transfer arrives and is booked to the platform's account."""
        if amount_fen <= 0:
            raise InvalidInput(f"incoming amount must be positive, got {amount_fen} fen")
        e = Entry(
            account_servicer_ref=self._ref(day),
            amount_fen=amount_fen,
            credit=True,
            booking_date=day,
            end_to_end_id=f"E2E{self.next_ref:010d}",
            counterparty_name=payer_name,
            counterparty_account=payer_account,
            virtual_account=virtual_account,
            remittance=remittance,
        )
        self.open_entries.append(e)
        self.balance_fen += amount_fen
        return e

    def execute_payment_file(self, data: bytes, *, day: date, source: str = "<pain.001>") -> int:
        """Execute every payment of a pain.001 file (all or none); returns how many."""
        pf = read_payment_file(data, source)
        if pf.debtor_account != self.account:
            raise InvalidInput(f"payment file debits {pf.debtor_account}, not {self.account}")
        if pf.message_id in self.executed_messages:
            raise Conflict(f"payment file {pf.message_id} was already executed")
        if pf.control_sum_fen > self.balance_fen:
            raise RuleViolation(
                f"insufficient funds: file needs {pf.control_sum_fen} fen,"
                f" balance {self.balance_fen} fen"
            )
        for p in pf.payments:
            self.open_entries.append(
                Entry(
                    account_servicer_ref=self._ref(day),
                    amount_fen=p.amount_fen,
                    credit=False,
                    booking_date=day,
                    end_to_end_id=p.end_to_end_id,
                    counterparty_name=p.creditor_name,
                    counterparty_account=p.creditor_account,
                    remittance=p.remittance,
                )
            )
            self.balance_fen -= p.amount_fen
        self.executed_messages.append(pf.message_id)
        return len(pf.payments)

    def close_statement(self, *, at: datetime) -> bytes:
        """Issue the camt.053 for everything booked since the previous statement."""
        self.sequence_nb += 1
        st = Statement(
            statement_id=f"STMT-{self.account}-{self.sequence_nb:06d}",
            sequence_nb=self.sequence_nb,
            account=self.account,
            created_at=at,
            opening_fen=self.last_closing_fen,
            closing_fen=self.balance_fen,
            entries=tuple(self.open_entries),
        )
        self.open_entries = []
        self.last_closing_fen = self.balance_fen
        return write_statement(st)

    # ------------------------------------------------------------------------- persistence

    def save(self, file: Path) -> None:
        state = asdict(self)
        state["open_entries"] = [
            {**asdict(e), "booking_date": e.booking_date.isoformat()} for e in self.open_entries
        ]
        tmp = file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(file)

    @classmethod
    def load(cls, file: Path) -> SimulatedBank:
        state = json.loads(file.read_text(encoding="utf-8"))
        entries = [
            Entry(**{**e, "booking_date": date.fromisoformat(e["booking_date"])})
            for e in state.pop("open_entries")
        ]
        return cls(**state, open_entries=entries)
