"""Bridge between the custody ledger and the chain (DESIGN.md §5 flows 1 and 6).

Deposit: a statement line booked to an investor (a DEPOSIT transfer) → `CashToken.mint` to the
investor's address with the ledger transfer id as reference. Withdrawal: `CashToken.burn` with
a new payout id as reference → the ledger reserves the payout under the same id → pain.001.

Crash safety: every step is recorded in `custody_bridge_ops` before it is attempted, and every
step is idempotent — the ledger by transfer id, the chain by reference (`ref_used`, which the
contract enforces: each reference at most once). `process()` after a restart completes the
operations in flight exactly once. Deposits are found by scanning the ledger, not from an
import report, so a crash between booking a statement and queueing its mints loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from crowdleverage.custody import schema as s
from crowdleverage.custody.db import barrier, in_group
from crowdleverage.custody.service import AccountCode, CustodyService, TransferCode, investors
from crowdleverage.domain.errors import (
    ContractRevert,
    InvalidInput,
    NotFound,
    PlatformPaused,
    RuleViolation,
)

ops = sa.Table(
    "custody_bridge_ops",
    s.metadata,
    sa.Column("op_id", s.ID, primary_key=True),  # = the chain reference = ledger transfer id
    sa.Column("kind", sa.String(4), nullable=False),  # mint | burn
    sa.Column("investor_id", sa.String(64), nullable=False),
    sa.Column("address", sa.String(42), nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # pending | done | failed | reversed
    sa.Column("chain_tx", sa.String(80), nullable=True),
)


# the statements of a withdrawal's hot path, built once (a Core statement built per call costs
# its construction and its cache key each time; a prebuilt one memoizes its cache key)
_OP_OF = sa.select(ops).where(ops.c.op_id == sa.bindparam("k"))
_INSERT_OP = ops.insert()
_UNREAD = object()  # `Bridge._record`: the op's row not read yet
_FINISH_OPS = (
    ops.update()
    .where(ops.c.op_id == sa.bindparam("k"), ops.c.status == "pending")
    .values(status=sa.bindparam("s"), chain_tx=sa.bindparam("n"))
)


@dataclass(frozen=True, slots=True)
class BridgeStats:
    queued: int = 0
    minted: int = 0
    burned: int = 0
    already_on_chain: int = 0
    failed: int = 0


def ref32(op_id: int) -> bytes:
    """The chain reference of a ledger transfer id (big-endian, as chain.codes does)."""
    return op_id.to_bytes(32, "big")


class Bridge:
    """`chain` is a ChainPort with CashToken deployed; `address_of(investor_id)` gives the
    investor's verified chain address."""

    def __init__(
        self, custody: CustodyService, chain: Any, address_of: Callable[[str], str]
    ) -> None:
        self.custody = custody
        self.engine = custody.engine
        self.chain = chain
        self.address_of = address_of

    def queue_deposits(self, only: Collection[str] | None = None) -> int:
        """Queue a mint for every investor deposit in the ledger that has no bridge op yet
        (only those with the transfer ids `only`, 32 hex digits, when given)."""
        t, a = s.transfers, s.accounts
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.id, t.c.amount, investors.c.investor_id)
                .join(a, a.c.id == t.c.credit_account_id)
                .join(investors, investors.c.ledger_account_id == a.c.id)
                .outerjoin(ops, ops.c.op_id == t.c.id)
                .where(t.c.code == TransferCode.DEPOSIT, a.c.code == AccountCode.INVESTOR)
                .where(ops.c.op_id.is_(None))
                .order_by(t.c.timestamp)
            ).all()
        if only is not None:
            rows = [r for r in rows if r.id in set(only)]
        for r in rows:
            self._record("mint", int(r.id, 16), r.investor_id, r.amount)
        return len(rows)

    def redeem(self, investor_id: str, amount_fen: int, *, payout_id: int) -> None:
        """Withdrawal: burn, then reserve the payout (exported later as pain.001)."""
        self.prepare_burn(investor_id, amount_fen, payout_id=payout_id)
        self.process()

    def prepare_burn(
        self,
        investor_id: str,
        amount_fen: int,
        *,
        payout_id: int,
        pending: dict[str, int] | None = None,
    ) -> bool:
        """A withdrawal's checks and its recorded op, without the burn (`redeem`, or a batch:
        `burn_batch` after one barrier for all of them). `pending`: fen of the burns a batch
        recorded so far and has not sent, per investor; the balance check counts them (a
        batch never overdraws a wallet) and this op's amount is added. True when the op is
        new (recorded now: no burn with its reference can have been sent)."""
        if amount_fen <= 0:
            raise InvalidInput(f"redemption amount must be positive, got {amount_fen} fen")
        self.custody.investor_account_id(investor_id)  # NotFound for unknown investors
        with self.engine.connect() as conn:
            known = conn.execute(_OP_OF, {"k": f"{payout_id:032x}"}).first()
        if known is None:  # a retry of a known op skips the check: its burn may be done
            held = int(self.chain.call("CashToken", "balanceOf", self.address_of(investor_id)))
            held -= pending.get(investor_id, 0) if pending is not None else 0
            if held < amount_fen:
                raise RuleViolation(
                    f"investor {investor_id} holds {held} fen, cannot redeem {amount_fen}"
                )
        self._record("burn", payout_id, investor_id, amount_fen, old=known)
        if pending is not None and (
            known is None  # a resumed op whose burn is still to be sent counts too
            or (known.status == "pending"
                and not self.chain.call("CashToken", "ref_used", ref32(payout_id)))
        ):  # fmt: skip
            pending[investor_id] = pending.get(investor_id, 0) + amount_fen
        return known is None

    def burn_batch(
        self, payout_ids: list[int], fresh: Collection[int] = frozenset()
    ) -> dict[int, str]:
        """The burns of a batch of withdrawals (`prepare_burn`: their ops are recorded; one
        barrier here makes them durable), back to back, then each one's payout
        reserved and its op finished. Per payout id: `burned` (now), `done` (before this
        call, or found on chain: an earlier attempt's burn), `failed` (the contract refused
        it) or `paused` (the chain is paused: it was not sent and waits). A crash anywhere in
        between leaves the ops pending: `process` (at the restart) or the command's retry
        completes each one exactly once (the chain's `ref_used` is the witness). `fresh`:
        the ops `prepare_burn` recorded new in this batch — every burn is sent only after its
        op is committed, so the chain has not seen their references and is not asked (the
        contract refuses a used reference in any case)."""
        keys = {f"{i:032x}": i for i in payout_ids}
        with self.engine.connect() as conn:
            rows = {r.op_id: r for r in conn.execute(sa.select(ops).where(
                ops.c.op_id.in_(list(keys)), ops.c.kind == "burn"))}  # fmt: skip
        # the batch's recovery points (its ops, its commands' rows) durable before any burn:
        # one commit for the batch; nothing touches the database until the last burn is sent
        barrier(self.engine)
        out: dict[int, str] = {}
        sent: list[tuple[Any, str, str | None]] = []  # (op, status, chain tx or reason)
        paused = False
        for key, op_id in keys.items():
            op = rows.get(key)
            if op is None or op.status != "pending":
                out[op_id] = "done" if op is not None and op.status == "done" else "failed"
                continue
            if paused:
                out[op_id] = "paused"
            elif op_id not in fresh and self.chain.call("CashToken", "ref_used", ref32(op_id)):
                sent.append((op, "done", None))
                out[op_id] = "done"
            else:
                try:
                    tx = self.chain.send(
                        "CashToken", "burn", op.address, op.amount_fen, ref32(op_id),
                        actor="custodian",
                    ).tx_hash  # fmt: skip
                except ContractRevert as exc:
                    if "paused" in exc.reason:
                        paused = True  # this op and the rest wait for the chain
                        out[op_id] = "paused"
                        continue
                    sent.append((op, "failed", exc.reason[:80]))
                    out[op_id] = "failed"
                    continue
                sent.append((op, "done", tx))
                out[op_id] = "burned"
        # the ledger's side, after every burn of the batch: one ledger call, one update each
        self.custody.request_payouts([(op.investor_id, op.amount_fen, int(op.op_id, 16))
                                      for op, status, _ in sent if status == "done"])  # fmt: skip
        if sent:
            with self.engine.begin() as conn:
                conn.execute(
                    _FINISH_OPS,
                    [{"k": op.op_id, "s": status, "n": note} for op, status, note in sent],
                )
        return out

    def _record(
        self, kind: str, op_id: int, investor_id: str, amount_fen: int, old: Any = _UNREAD
    ) -> None:
        """The op recorded (pending) unless it is already, with the same details. `old`: its
        row as read in the group commit this runs in (`prepare_burn`), not read again. In a
        group the group's transaction is used as it is (no savepoint: nothing is written
        before a refusal); elsewhere one write transaction."""
        key = f"{op_id:032x}"
        grouped = in_group(self.engine)
        with self.engine.connect() if grouped else self.engine.begin() as conn:
            if old is _UNREAD or not grouped:
                old = conn.execute(_OP_OF, {"k": key}).first()
            if old is not None:
                if (old.kind, old.investor_id, old.amount_fen) != (kind, investor_id, amount_fen):
                    raise InvalidInput(f"bridge op {key} exists with other details")
                return
            conn.execute(
                _INSERT_OP,
                {"op_id": key, "kind": kind, "investor_id": investor_id,
                 "address": self.address_of(investor_id), "amount_fen": amount_fen,
                 "status": "pending", "chain_tx": None},
            )  # fmt: skip

    def process(self, deposits: Collection[str] | None = None) -> BridgeStats:
        """Complete every pending op, oldest first; safe to call again after a crash. New
        deposits are queued first: all of them, or only the transfer ids `deposits`."""
        self.queue_deposits(deposits)
        with self.engine.connect() as conn:
            pending = conn.execute(
                sa.select(ops).where(ops.c.status == "pending").order_by(ops.c.op_id)
            ).all()
        minted = burned = already = failed = 0
        for op in pending:
            op_id = int(op.op_id, 16)
            tx: str | None = None
            if op.kind == "mint" and self._reversed(op_id, op.amount_fen):
                self._finish(op.op_id, "reversed", None)  # refunded by an operator correction
                continue
            if self.chain.call("CashToken", "ref_used", ref32(op_id)):
                already += 1  # sent before a crash; the chain is the witness
            else:
                try:
                    tx = self.chain.send(
                        "CashToken", op.kind, op.address, op.amount_fen, ref32(op_id),
                        actor="custodian",
                    ).tx_hash  # fmt: skip
                except ContractRevert as exc:
                    if "paused" in exc.reason:
                        raise PlatformPaused(
                            f"chain is paused; bridge op {op.op_id} waits"
                        ) from exc
                    self._finish(op.op_id, "failed", exc.reason[:80])
                    failed += 1
                    continue  # reconciliation reports the missing twin; the platform fails closed
                minted += op.kind == "mint"
                burned += op.kind == "burn"
            if op.kind == "burn":
                self.custody.request_payout(op.investor_id, op.amount_fen, payout_id=op_id)
            self._finish(op.op_id, "done", tx)
        return BridgeStats(len(pending), minted, burned, already, failed)

    def _reversed(self, deposit_id: int, amount_fen: int) -> bool:
        """A deposit whose CORRECTION entries (referencing it) took it back entirely."""
        net = amount_fen
        for t in self.custody.ledger.transfers_with_user_data_128(deposit_id):
            if t.code == TransferCode.CORRECTION:
                net += t.amount if t.credit_account_id != self.custody.suspense_id else -t.amount
        return net <= 0

    def _finish(self, key: str, status: str, note: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                ops.update()
                .where(ops.c.op_id == key, ops.c.status == "pending")
                .values(status=status, chain_tx=note)
            )

    def op_status(self, op_id: int) -> str:
        with self.engine.connect() as conn:
            v = conn.execute(sa.select(ops.c.status).where(ops.c.op_id == f"{op_id:032x}")).scalar()
        if v is None:
            raise NotFound(f"no bridge op {op_id:032x}")
        return str(v)
