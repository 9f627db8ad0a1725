"""Mirror of internal chain movements into the custody ledger.

Every CashToken `Transfer` between two addresses (margin posted to the engine, financing drawn
from the pool, interest, fees, liquidation proceeds...) becomes a ledger transfer between the
two addresses' custody accounts, so that the custodian's book follows who holds the cash on
chain. Investors map to their INVESTOR account; any other address gets a MIRROR account
(code 4) on first sight. Mints and burns are not mirrored here: the bridge books them.

Idempotent and crash-safe: the ledger transfer id is derived from (tx hash, event seq), so a
replay after a crash answers `exists`; the cursor only moves after the batch committed.
A movement the ledger refuses (e.g. it would overdraw an account the ledger thinks is smaller)
is recorded as a failure; reconciliation then shows the balance mismatch and fails closed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from crowdleverage.custody import schema as s
from crowdleverage.custody.service import CNY_LEDGER, CustodyService, derive_id
from crowdleverage.custody.types import (
    Account,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    Transfer,
)

ZERO = "0x0000000000000000000000000000000000000000"
MIRROR_CODE = 4  # account code of a mirrored non-investor chain address
TRANSFER_CODE_MIRROR = 5

mirror_accounts = sa.Table(
    "custody_mirror_accounts",
    s.metadata,
    sa.Column("address", sa.String(42), primary_key=True),  # lowercase
    sa.Column("ledger_account_id", s.ID, nullable=False, unique=True),
)

mirror_state = sa.Table(
    "custody_mirror_state",
    s.metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("cursor_seq", sa.BigInteger, nullable=False),
)

mirror_failures = sa.Table(
    "custody_mirror_failures",
    s.metadata,
    sa.Column("transfer_id", s.ID, primary_key=True),
    sa.Column("event_seq", sa.BigInteger, nullable=False),
    sa.Column("result", sa.String(64), nullable=False),
)


@dataclass(frozen=True, slots=True)
class MirrorStats:
    events: int
    created: int
    existed: int
    failed: int


class ChainMirror:
    """`investor_of(address)` returns the investor id of an investor address, else None."""

    def __init__(
        self, custody: CustodyService, chain: Any, investor_of: Callable[[str], str | None]
    ) -> None:
        self.custody = custody
        self.engine = custody.engine
        self.chain = chain
        self.investor_of = investor_of

    def _account_for(self, address: str) -> int:
        inv = self.investor_of(address)
        if inv is not None:
            return self.custody.investor_account_id(inv)
        key = address.lower()
        acc_id = derive_id("account", "mirror", key)
        res = self.custody.ledger.create_accounts(
            [Account(acc_id, CNY_LEDGER, MIRROR_CODE, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)]
        )
        assert res[0] in (CreateAccountResult.CREATED, CreateAccountResult.EXISTS), res
        with self.engine.begin() as conn:
            known = conn.execute(
                sa.select(mirror_accounts.c.address).where(mirror_accounts.c.address == key)
            ).first()
            if known is None:
                conn.execute(
                    mirror_accounts.insert(),
                    {"address": key, "ledger_account_id": f"{acc_id:032x}"},
                )
        return acc_id

    def cursor(self) -> int:
        with self.engine.connect() as conn:
            v = conn.execute(
                sa.select(mirror_state.c.cursor_seq).where(mirror_state.c.name == "cash")
            ).scalar()
        return int(v or 0)

    def sync(self) -> MirrorStats:
        """Mirror every CashToken transfer after the cursor; returns what happened."""
        since = self.cursor()
        events = [
            e
            for e in self.chain.events("CashToken", "Transfer", since=since)
            if e.args["sender"] != ZERO and e.args["receiver"] != ZERO
        ]
        last_seq = max((e.seq for e in self.chain.events("CashToken", since=since)), default=since)
        if last_seq == since:  # nothing after the cursor: nothing to write
            return MirrorStats(0, 0, 0, 0)
        batch = [
            Transfer(
                derive_id("chain-transfer", e.tx_hash, str(e.seq)),
                self._account_for(e.args["sender"]),
                self._account_for(e.args["receiver"]),
                int(e.args["value"]),
                CNY_LEDGER,
                TRANSFER_CODE_MIRROR,
                user_data_64=e.seq,
            )
            for e in events
        ]
        results = self.custody.ledger.create_transfers(batch)
        failed = [
            (t, e, r)
            for t, e, r in zip(batch, events, results, strict=True)
            if r not in (CreateTransferResult.CREATED, CreateTransferResult.EXISTS)
        ]
        with self.engine.begin() as conn:
            for t, e, r in failed:
                key = f"{t.id:032x}"
                if (
                    conn.execute(
                        sa.select(mirror_failures.c.transfer_id).where(
                            mirror_failures.c.transfer_id == key
                        )
                    ).first()
                    is None
                ):
                    conn.execute(
                        mirror_failures.insert(),
                        {"transfer_id": key, "event_seq": e.seq, "result": r.value},
                    )
            upd = conn.execute(
                mirror_state.update()
                .where(mirror_state.c.name == "cash", mirror_state.c.cursor_seq == since)
                .values(cursor_seq=last_seq)
            )
            if upd.rowcount == 0:
                conn.execute(mirror_state.insert(), {"name": "cash", "cursor_seq": last_seq})
        created = results.count(CreateTransferResult.CREATED)
        existed = results.count(CreateTransferResult.EXISTS)
        return MirrorStats(len(events), created, existed, len(failed))

    def mirrored_addresses(self) -> dict[str, str]:
        """Non-investor address → ledger account id (hex) of every mirror account."""
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(mirror_accounts)).tuples().all())
