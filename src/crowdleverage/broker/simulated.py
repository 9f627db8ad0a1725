"""The broker on the simulated exchange: consumes the order book's `OrderRequested` and
`LiquidationOrder` events, places the orders, and settles the fills on chain in batches of up
to 64 (`OrderBook.settle_fills`; one fill alone, or each fill of a refused batch, with
`settle_fill`), each with its exchange reference; with a part budget (the platform process)
smaller batches, each taking about that much CPU. Safe to restart.

Restart safety comes from a journal (SQLite, one file) written before every effect and from
the chain's own duplicate check:

- the event cursor and the orders it yields are written in one transaction, so an event is
  taken once; an order is placed at the exchange under a deterministic id (`E<engine id>`),
  so placing it again after a crash is recognised (`Conflict`) rather than doubled;
- a fill is journaled `pending`; before it is sent to the chain it is given its number within
  the order (`seq`: the fills of the order settled before it, then the batch's earlier fills
  of the order), journaled, and the chain settles it only under that number
  (`OrderBook.settle_fill(order, seq, ...)` refuses a number already taken: "orderbook: fill
  already settled"); it is marked `settled` after. A pending fill found at start-up with a
  number the chain's `fill_count` of the order has passed was settled before a crash (the
  chain has it); else it is sent under the same number — nothing is settled twice, nothing
  is lost;
- fills the exchange made while the broker was down are picked up from the exchange.

A refused settlement (a contract revert) is journaled `refused` with the reason: it is a break
for reconciliation, never retried blindly.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path

from crowdleverage.broker.port import BrokerFill, BrokerOrder
from crowdleverage.chain.codes import code_from_chain, ref_to_bytes32
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.structs import read_order
from crowdleverage.domain.errors import Conflict, ContractRevert, NotFound, RuleViolation
from crowdleverage.market.exchange import Fill, OrderStatus, SimulatedExchange
from crowdleverage.market.rules import Side

ENGINE = "MarginEngine"
ORDERBOOK = "OrderBook"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    order_id INTEGER PRIMARY KEY, account TEXT NOT NULL, code TEXT NOT NULL,
    side TEXT NOT NULL, qty INTEGER NOT NULL, limit_fen INTEGER NOT NULL,
    liquidation INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT, event_seq INTEGER
);
CREATE TABLE IF NOT EXISTS fills (
    n INTEGER PRIMARY KEY AUTOINCREMENT, fill_ref TEXT NOT NULL UNIQUE,
    order_id INTEGER NOT NULL, account TEXT NOT NULL, code TEXT NOT NULL, side TEXT NOT NULL,
    qty INTEGER NOT NULL, price_fen INTEGER NOT NULL, fee_fen INTEGER NOT NULL,
    status TEXT NOT NULL, reason TEXT, seq INTEGER
);
CREATE INDEX IF NOT EXISTS fills_by_order ON fills(order_id);
"""
# fills.seq: the fill's number within its order, given before it is first sent (NULL: never
# sent); orders.event_seq: the chain event that requested the order (orders are placed in
# that order: order ids are an account's reused slots, not a counter). Journals of a release
# before the columns get them added at start-up (their rows NULL, placed by order id).

BATCH = 64  # fills per `OrderBook.settle_fills` at most
# with a part budget (`SimulatedBroker.part_budget_s`), the first batch of a broker that has
# not timed one yet
FIRST_BATCH = 4


@dataclass(frozen=True, slots=True)
class _Pending:
    """A journaled fill not yet settled."""

    ref: str
    oid: int
    side: str
    qty: int
    price: int
    fee: int


# the order orders were requested in (a previous release's rows, without the event's seq,
# first and by their sequential ids)
_PLACED = "COALESCE(event_seq, 0), order_id"


class SimulatedCrash(RuntimeError):
    """Raised by a test's fail point: the process 'dies' here."""


class SimulatedBroker:
    """BrokerPort on a SimulatedExchange, fed by and settling to the margin engine."""

    def __init__(
        self,
        chain: ChainPort,
        exchange: SimulatedExchange,
        journal: Path,
        *,
        actor: str = "broker",
        fail_point: Callable[[str], None] | None = None,
    ) -> None:
        self.chain = chain
        self.exchange = exchange
        self.actor = actor
        # None: `settle_parts` sends `BATCH` fills per batch; else it sizes each batch so that
        # it takes about this much of the thread's CPU (the platform process's writer serves
        # queued commands between two batches), from the CPU per fill of the batch before
        self.part_budget_s: float | None = None
        self._fill_s: float | None = None  # the thread's CPU per fill of the last batch
        self._fail = fail_point or (lambda _point: None)
        journal.parent.mkdir(parents=True, exist_ok=True)
        # callers serialise access (one broker per platform lock), possibly from a web
        # server's worker threads
        self._db = sqlite3.connect(journal, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # as the embedded chain's journal: every commit survives the process (a crash or a
        # kill), without an fsync per fill and order update (only a power cut could lose the
        # last ones, with the chain's own last transactions and the simulated exchange)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        for table, column in (("fills", "seq"), ("orders", "event_seq")):
            columns = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER")
        self.recover()

    def close(self) -> None:
        self._db.close()

    # ── BrokerPort ──────────────────────────────────────────────────────────────────────

    def submit(self, order: BrokerOrder) -> str:
        holding = 0
        if order.side is Side.SELL:
            holding = int(self.chain.call(ENGINE, "positions", order.account, int(order.code)))
        venue_id = f"E{order.order_id}"
        # Conflict: placed before a restart — the same order, not a second one
        with contextlib.suppress(Conflict):
            self.exchange.submit(
                venue_id, order.account, order.code, order.side, order.quantity,
                order.limit_price_fen, holding=holding,
            )  # fmt: skip
        return venue_id

    def cancel(self, order_id: str) -> None:
        with contextlib.suppress(Conflict, NotFound):  # finished, or gone with the session
            self.exchange.cancel(f"E{order_id}")
        self._close_on_chain(int(order_id), "cancelled")

    def fills(self, since: int = 0) -> list[BrokerFill]:
        rows = self._db.execute(
            "SELECT fill_ref, order_id, account, code, side, qty, price_fen, fee_fen, status "
            "FROM fills WHERE n > ? ORDER BY n",
            (since,),
        ).fetchall()
        return [
            BrokerFill(r[0], str(r[1]), r[2], r[3], Side(r[4]), r[5], r[6], r[7], r[8] == "settled")
            for r in rows
        ]

    def positions(self, account: str) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT code, SUM(CASE side WHEN 'BUY' THEN qty ELSE -qty END) FROM fills "
            "WHERE account = ? AND status = 'settled' GROUP BY code",
            (account,),
        ).fetchall()
        return {code: int(q) for code, q in rows if q}

    # ── the loop ────────────────────────────────────────────────────────────────────────

    def poll(self) -> int:
        """Take new engine orders from the chain and place them. Returns how many."""
        cursor = int(self._meta("cursor", "0"))
        seen = self.chain.events(ORDERBOOK, since=cursor)
        events = [e for e in seen if e.event in ("OrderRequested", "LiquidationOrder")]
        new_cursor = seen[-1].seq if seen else cursor
        self._db.execute("BEGIN")
        for e in events:
            a = e.args
            side = Side.BUY if a.get("is_buy", False) else Side.SELL
            liquidation = e.event == "LiquidationOrder"
            limit = a["min_price_fen"] if liquidation else a["limit_price_fen"]
            self._db.execute(
                "INSERT OR IGNORE INTO orders(order_id, account, code, side, qty, limit_fen,"
                " liquidation, status, event_seq) VALUES (?,?,?,?,?,?,?, 'received', ?)",
                (a["order_id"], a["account"], code_from_chain(a["code"]), side.value, a["qty"],
                 limit, int(liquidation), e.seq),
            )  # fmt: skip
        self._fail("after_orders_before_cursor")
        self._set_meta("cursor", str(new_cursor))
        self._db.execute("COMMIT")
        return self.place_received()

    def place_received(self) -> int:
        """Place every journaled order not yet at the exchange (when a session is open)."""
        if self.exchange.day is None:
            return 0
        rows = self._db.execute(
            "SELECT order_id, account, code, side, qty, limit_fen, liquidation FROM orders "
            f"WHERE status = 'received' ORDER BY {_PLACED}"
        ).fetchall()
        placed = 0
        for oid, account, code, side, qty, limit, liq in rows:
            if not read_order(self.chain, oid).open:
                self._set_order(oid, "closed")  # closed on chain already (history replayed)
                continue
            order = BrokerOrder(str(oid), account, code, Side(side), qty, limit, bool(liq))
            try:
                order = self._clamp_to_band(order)
                self.submit(order)
            except (RuleViolation, NotFound) as err:
                self._set_order(oid, "rejected", err.message)
                self._close_on_chain(oid, "rejected")
                continue
            self._set_order(oid, "placed")
            placed += 1
        return placed

    def replace_open(self) -> int:
        """After a restart in the middle of a session (the exchange's book is gone): place
        every order journaled `placed` whose engine order is still open again, for its
        unfilled remainder and under the same venue id, its fill references numbered after
        the fills journaled before; a remainder the exchange refuses now (band, lot) is
        released on chain like an expiry. Returns how many were placed again."""
        if self.exchange.day is None:
            return 0
        rows = self._db.execute(
            "SELECT order_id, account, code, side, qty, limit_fen, liquidation FROM orders "
            f"WHERE status = 'placed' ORDER BY {_PLACED}"
        ).fetchall()
        placed = 0
        for oid, account, code, side, qty, limit, liq in rows:
            if not read_order(self.chain, oid).open:
                self._set_order(oid, "done")
                continue
            filled, n = self._db.execute(
                "SELECT COALESCE(SUM(qty), 0), COUNT(*) FROM fills WHERE order_id = ?", (oid,)
            ).fetchone()
            order = BrokerOrder(str(oid), account, code, Side(side), qty - int(filled), limit,
                                bool(liq))  # fmt: skip
            holding = 0
            if order.side is Side.SELL:
                holding = int(self.chain.call(ENGINE, "positions", account, int(code)))
            try:
                order = self._clamp_to_band(order)
                self.exchange.submit(
                    f"E{oid}", account, code, order.side, order.quantity,
                    order.limit_price_fen, holding=holding, fills_before=int(n),
                )  # fmt: skip
            except (RuleViolation, NotFound) as err:
                self._set_order(oid, "rejected", f"re-placed after a restart: {err.message}")
                self.chain.send(ORDERBOOK, "cancel_order", oid, actor=self.actor)
                continue
            placed += 1
        return placed

    def _clamp_to_band(self, order: BrokerOrder) -> BrokerOrder:
        """A liquidation sells at any legal price of the day it is placed, but never *at*
        the limit-down: that is where a seal sits, and the engine refuses to settle a sale
        there (`is_sealed_limit_down`), so the floor is one tick above today's limit-down."""
        if not order.liquidation:
            return order
        down = self.exchange.band(order.code).limit_down_fen
        if down is not None and order.limit_price_fen <= down:
            return BrokerOrder(
                order.order_id, order.account, order.code, order.side, order.quantity,
                down + 1, True,
            )  # fmt: skip
        return order

    def on_fills(self, fills: Iterable[Fill]) -> int:
        """Journal the exchange's fills of our orders, then settle them on chain."""
        self.journal(fills)
        return self.settle_pending()

    def journal(self, fills: Iterable[Fill]) -> None:
        """Journal the exchange's fills of our orders as pending (`settle_pending` settles
        them; so does `recover` after a restart)."""
        for f in fills:
            self._journal_fill(f)

    def _journal_fill(self, f: Fill) -> None:
        if not f.order_id.startswith("E"):
            return  # not an engine order
        self._db.execute(
            "INSERT OR IGNORE INTO fills(fill_ref, order_id, account, code, side, qty, price_fen,"
            " fee_fen, status) VALUES (?,?,?,?,?,?,?,?, 'pending')",
            (f.fill_ref, int(f.order_id[1:]), f.account, f.code, f.side.value, f.quantity,
             f.price_fen, f.fees.total_fen),
        )  # fmt: skip

    def settle_pending(self) -> int:
        """Settle every journaled fill on chain (oldest first); returns how many settled."""
        parts = self.settle_parts()
        while True:
            try:
                next(parts)
            except StopIteration as done:
                return int(done.value)

    def _batch_size(self) -> int:
        """Fills in the next batch: `BATCH`, or with `part_budget_s` as many as take about
        that long at the last batch's CPU per fill (1 to `BATCH`; 0 s: one fill a batch)."""
        budget = self.part_budget_s
        if budget is None:
            return BATCH
        if self._fill_s is None:
            return min(BATCH, FIRST_BATCH) if budget > 0 else 1
        return max(1, min(BATCH, int(budget / max(self._fill_s, 1e-6))))

    def settle_parts(self) -> Generator[None, None, int]:
        """`settle_pending` in batches: the pending fills, oldest first, go to the chain up to
        `BATCH` at a time (`_batch_size`: fewer with `part_budget_s`) in one
        `OrderBook.settle_fills` (a batch lands whole or not at all); it yields after each
        batch's chain effects and journal entries (a caller may do other work there: every
        batch settles on its own, each fill exactly once by its number within the order), and
        returns how many settled. A batch the chain refuses is settled again one fill at a
        time, so the refused fill alone is journaled `refused`."""
        rows = self._db.execute(
            "SELECT fill_ref, order_id, side, qty, price_fen, fee_fen, seq FROM fills "
            "WHERE status = 'pending' ORDER BY n"
        ).fetchall()
        todo: list[_Pending] = []
        for ref, oid, side, qty, price, fee, seq in rows:
            if seq is not None and self._fill_count(oid) > seq:
                self._set_fill(ref, "settled")  # the chain has it: a crash came in between
                self._done_if_filled(oid)
                continue
            todo.append(_Pending(ref, oid, side, qty, price, fee))
        settled = 0
        at = 0
        while at < len(todo):
            batch = todo[at : at + self._batch_size()]
            at += len(batch)
            t0 = time.thread_time()
            if len(batch) > 1:
                seqs = self._number_all(batch)
                try:
                    self._approve_sells(batch)
                    self.chain.send(
                        ORDERBOOK, "settle_fills", [f.oid for f in batch], seqs,
                        [f.qty for f in batch], [f.price for f in batch],
                        [f.fee for f in batch], [ref_to_bytes32(f.ref) for f in batch],
                        actor=self.actor,
                    )  # fmt: skip
                except ContractRevert:
                    pass  # nothing landed: one fill at a time below finds the refused one
                else:
                    self._fail("after_settle_before_journal")
                    self._settled(batch)
                    settled += len(batch)
                    self._fill_s = (time.thread_time() - t0) / len(batch)
                    yield
                    continue
            for f in batch:
                (seq,) = self._number_all([f])
                try:
                    self._approve_sells([f])
                    self.chain.send(
                        ORDERBOOK, "settle_fill", f.oid, seq, f.qty, f.price, f.fee,
                        ref_to_bytes32(f.ref), actor=self.actor,
                    )  # fmt: skip
                except ContractRevert as err:
                    self._set_fill(f.ref, "refused", err.reason)
                    continue
                self._fail("after_settle_before_journal")
                self._settled([f])
                settled += 1
                self._fill_s = time.thread_time() - t0
                yield
                t0 = time.thread_time()
        return settled

    def _approve_sells(self, batch: list[_Pending]) -> None:
        """Sell fills take their proceeds from the broker: approve the engine for the batch's
        total (an approval replaces the previous one)."""
        proceeds = sum(f.qty * f.price - f.fee for f in batch if f.side == Side.SELL.value)
        if proceeds > 0:
            self.chain.send(
                "CashToken", "approve", self.chain.address_of("engine"), proceeds,
                actor=self.actor,
            )  # fmt: skip

    def _settled(self, batch: list[_Pending]) -> None:
        self._db.execute("BEGIN")
        for f in batch:
            self._set_fill(f.ref, "settled")
        for oid in dict.fromkeys(f.oid for f in batch):
            self._done_if_filled(oid)
        self._db.execute("COMMIT")

    def end_day(self) -> int:
        """After the exchange closed the session: release every engine order still open
        (its remainder expired). Returns how many were closed on chain."""
        parts = self.end_day_parts()
        while True:
            try:
                next(parts)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def end_day_parts(self) -> Generator[None, None, int]:
        """`end_day` in parts: it yields after each order released on chain (a caller may do
        other work there; run again, it releases only what is still open on chain)."""
        rows = self._db.execute(
            f"SELECT order_id FROM orders WHERE status = 'placed' ORDER BY {_PLACED}"
        ).fetchall()
        closed = 0
        for (oid,) in rows:
            if self._close_on_chain(oid, "expired"):
                closed += 1
                yield
        return closed

    def recover(self) -> None:
        """At start-up: pick up fills the exchange made for our orders while we were down,
        then settle whatever is pending (checking the chain first)."""
        for f in self.exchange.fills:
            self._journal_fill(f)
        self.settle_pending()

    # ── helpers ─────────────────────────────────────────────────────────────────────────

    def _close_on_chain(self, oid: int, status: str) -> int:
        """Release an engine order whose venue order is finished. Returns 1 if it was
        released now, 0 if it was already closed on chain (filled) or is still working."""
        if not read_order(self.chain, oid).open:
            self._set_order(oid, "done")
            return 0
        if self._exchange_order_status(oid) is OrderStatus.OPEN:
            return 0  # still working at the exchange
        self.chain.send(ORDERBOOK, "cancel_order", oid, actor=self.actor)
        self._set_order(oid, status)
        return 1

    def _exchange_order_status(self, oid: int) -> OrderStatus | None:
        try:
            return self.exchange.order(f"E{oid}").status
        except NotFound:
            return None

    def _meta(self, key: str, default: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _set_order(self, oid: int, status: str, reason: str | None = None) -> None:
        self._db.execute(
            "UPDATE orders SET status = ?, reason = ? WHERE order_id = ?", (status, reason, oid)
        )

    def _done_if_filled(self, oid: int) -> None:
        """An order whose settled fills add up to its quantity is closed on chain (settle_fill
        closes it with its last fill): journal it `done` now, so the day's end and a restart
        need not read it back from the chain."""
        self._db.execute(
            "UPDATE orders SET status = 'done' WHERE order_id = ? AND status = 'placed' AND qty"
            " = (SELECT COALESCE(SUM(qty), 0) FROM fills WHERE order_id = ? AND status ="
            " 'settled')",
            (oid, oid),
        )

    def _number_all(self, batch: list[_Pending]) -> list[int]:
        """Number the fills about to be sent within their orders (after the order's fills
        settled, consecutive within the batch), journaled in one transaction before they are
        sent: a crash after the send finds the chain's `fill_count` past the number."""
        after: dict[int, int] = {}
        seqs = []
        self._db.execute("BEGIN")
        for f in batch:
            if f.oid not in after:
                (after[f.oid],) = self._db.execute(
                    "SELECT COUNT(*) FROM fills WHERE order_id = ? AND status = 'settled'",
                    (f.oid,),
                ).fetchone()
            seq = int(after[f.oid])
            after[f.oid] = seq + 1
            self._db.execute("UPDATE fills SET seq = ? WHERE fill_ref = ?", (seq, f.ref))
            seqs.append(seq)
        self._db.execute("COMMIT")
        return seqs

    def _fill_count(self, oid: int) -> int:
        """The fills the chain settled on an order (`OrderBook.fill_count`; -1 from an
        OrderBook of a release before fill numbers, whose getter reverts: the fill is sent
        again and that OrderBook refuses it, journaled `refused`, never settled twice)."""
        try:
            return int(self.chain.call(ORDERBOOK, "fill_count", oid))
        except ContractRevert:
            return -1

    def _set_fill(self, ref: str, status: str, reason: str | None = None) -> None:
        self._db.execute(
            "UPDATE fills SET status = ?, reason = ? WHERE fill_ref = ?", (status, reason, ref)
        )

    def order_status(self, oid: int) -> str | None:
        row = self._db.execute("SELECT status FROM orders WHERE order_id = ?", (oid,)).fetchone()
        return str(row[0]) if row else None

    def refused(self) -> list[tuple[str, str]]:
        return [
            (str(r[0]), str(r[1]))
            for r in self._db.execute("SELECT fill_ref, reason FROM fills WHERE status='refused'")
        ]
