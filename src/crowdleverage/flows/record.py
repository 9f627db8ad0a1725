"""The platform's own record (issue 14, "a durable record"): append-only tables in the
platform's database, created by the Alembic revision `0002_platform_record`
(`crowdleverage.migrations`).

History is only ever appended — statement lines, orders and what happened to them (fills,
closes), the chain events turned into them, NAV points, risk snapshots and the risk panel's
events; the small mutable state beside it (`flows_state`: the event cursor, the trading day
and the last committed tick, the pause; `flows_enrolled`) is one row per thing. `Platform`
keeps the record in memory as `Saved` for its readers, collects what a use case or a tick
adds in `Pending`, and `write` commits it in the caller's transaction (a command's result
with it: both or neither). `read` rebuilds `Saved` from the tables at start-up.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crowdleverage.flows.model import Event, Tranche

metadata = sa.MetaData()

state = sa.Table(
    "flows_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1
    sa.Column("next_id", sa.BigInteger, nullable=False),
    sa.Column("cursor", sa.BigInteger, nullable=False),  # chain event seq applied
    sa.Column("market_day", sa.String(10), nullable=True),  # the trading day (open or next)
    sa.Column("tick_step", sa.Integer, nullable=True),  # last committed tick of an open day
    sa.Column("replay_done", sa.Boolean, nullable=False),
    sa.Column("paused_reason", sa.Text, nullable=True),
    sa.Column("last_reconciliation", sa.Text, nullable=True),  # JSON
    sa.Column("event_seq", sa.BigInteger, nullable=False),  # last risk panel event's seq
    sa.Column("updated_at_s", sa.BigInteger, nullable=False),
)
enrolled = sa.Table(
    "flows_enrolled",
    metadata,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("role", sa.String(16), nullable=False),
)
accounts = sa.Table(
    "flows_accounts",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("owner_id", sa.BigInteger, nullable=False, unique=True),
    sa.Column("tier", sa.Integer, nullable=False),
)
lines = sa.Table(
    "flows_statement_lines",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("trade_date", sa.String(10), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("cmd", sa.String(32), nullable=True),  # the command's tag
    sa.Column("extra", sa.Text, nullable=False),  # JSON: the line's other fields
    sa.Index("ix_flows_statement_lines_user", "user_id", "seq"),
    sa.Index("ix_flows_statement_lines_cmd", "cmd"),
)
orders = sa.Table(
    "flows_orders",
    metadata,
    sa.Column("order_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("code", sa.String(16), nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("limit_price_fen", sa.BigInteger, nullable=False),
    sa.Column("trade_date", sa.String(10), nullable=False),
    sa.Column("liquidation", sa.Boolean, nullable=False),
    sa.Column("financing_fen", sa.BigInteger, nullable=False),
)
order_events = sa.Table(
    "flows_order_events",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("order_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("chain_seq", sa.BigInteger, nullable=True),
    # fill | closed | financed | carried (the previous release's fills, imported)
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("qty", sa.BigInteger, nullable=False),
    sa.Column("value_fen", sa.BigInteger, nullable=False),
    sa.Column("fee_fen", sa.BigInteger, nullable=False),
)
chain_events = sa.Table(
    "flows_chain_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("chain_seq", sa.BigInteger, nullable=False, index=True),
    sa.Column("contract", sa.String(32), nullable=False),
    sa.Column("event", sa.String(48), nullable=False),
    sa.Column("trade_date", sa.String(10), nullable=False),
    sa.Column("args", sa.Text, nullable=False),  # JSON
)
nav_points = sa.Table(
    "flows_nav_points",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("tranche", sa.String(8), nullable=False),
    sa.Column("trade_date", sa.String(10), nullable=False),
    sa.Column("nav_e4", sa.BigInteger, nullable=False),
    sa.Index("ix_flows_nav_points_tranche", "tranche", "id"),
)
risk_snapshots = sa.Table(
    "flows_risk_snapshots",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("trade_date", sa.String(10), nullable=False, index=True),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("at_s", sa.BigInteger, nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # JSON
)
events = sa.Table(
    "flows_events",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("account_id", sa.BigInteger, nullable=True),
    sa.Column("message", sa.Text, nullable=False),
)

PANEL_EVENTS = 500  # the risk panel's feed kept in memory


@dataclass
class MarginAccount:
    """The platform's number for a borrower's engine account (one per borrower)."""

    id: int
    owner_id: int
    tier: int


@dataclass
class Order:
    """An engine order as the borrower sees it; filled from the engine's events."""

    id: int  # the engine's order id
    account_id: int
    side: str
    code: str
    quantity: int
    limit_price_fen: int
    trade_date: str
    liquidation: bool = False
    financing_fen: int = 0
    filled_qty: int = 0
    filled_value_fen: int = 0
    fees_fen: int = 0
    closed: bool = False

    @property
    def status(self) -> Literal["open", "partially_filled", "filled", "expired"]:
        if not self.closed:
            return "partially_filled" if self.filled_qty else "open"
        if self.filled_qty == self.quantity:
            return "filled"
        return "partially_filled" if self.filled_qty else "expired"

    @property
    def fill_price_fen(self) -> int | None:
        return -(-self.filled_value_fen // self.filled_qty) if self.filled_qty else None


@dataclass
class Saved:
    """The record in memory (what the readers see)."""

    next_id: int = 1
    accounts: dict[int, MarginAccount] = field(default_factory=dict)
    enrolled: dict[int, str] = field(default_factory=dict)  # user → "investor" | "borrower"
    history: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    nav_history: dict[str, list[tuple[str, int]]] = field(
        default_factory=lambda: {t.value: [] for t in Tranche}
    )
    cursor: int = 0  # chain event seq already turned into orders, lines and events
    market_day: str | None = None  # the trading day open, or the next one to open
    replay_done: bool = False  # the last day of the market data has closed
    paused_reason: str | None = None
    last_reconciliation: dict[str, Any] | None = None
    tick_step: int | None = None  # the open day's last committed tick (None: no session)
    event_seq: int = 0


@dataclass
class Pending:
    """Rows added since the last commit."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    enrolled: dict[int, str] = field(default_factory=dict)
    orders: list[dict[str, Any]] = field(default_factory=list)
    order_events: list[dict[str, Any]] = field(default_factory=list)
    chain_events: list[dict[str, Any]] = field(default_factory=list)
    nav_points: list[dict[str, Any]] = field(default_factory=list)
    risk_snapshots: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def take(self) -> Pending:
        """These rows (to write) and a fresh buffer in their place."""
        out = Pending(**{f.name: getattr(self, f.name) for f in fields(self)})
        for f in fields(self):
            setattr(self, f.name, type(getattr(self, f.name))())
        return out

    def give_back(self, taken: Pending) -> None:
        """A commit failed: its rows go first again."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(taken, f.name)
            if isinstance(mine, dict):
                setattr(self, f.name, {**theirs, **mine})
            else:
                setattr(self, f.name, [*theirs, *mine])

    # ── what the platform appends ──────────────────────────────────────────────────────

    def line(self, user_id: int, line: dict[str, Any]) -> None:
        rest = {k: v for k, v in line.items()
                if k not in ("at", "trade_date", "kind", "amount_fen", "cmd")}  # fmt: skip
        self.lines.append({"user_id": user_id, "at": line["at"], "trade_date": line["trade_date"],
                           "kind": line["kind"], "amount_fen": int(line["amount_fen"]),
                           "cmd": line.get("cmd"), "extra": to_json(rest)})  # fmt: skip

    def order(self, o: Order) -> None:
        self.orders.append({
            "order_id": o.id, "account_id": o.account_id, "side": o.side, "code": o.code,
            "quantity": o.quantity, "limit_price_fen": o.limit_price_fen,
            "trade_date": o.trade_date, "liquidation": o.liquidation,
            "financing_fen": o.financing_fen,
        })  # fmt: skip

    def order_event(
        self, order_id: int, kind: str, chain_seq: int | None, qty: int = 0, value: int = 0,
        fee: int = 0,
    ) -> None:  # fmt: skip
        self.order_events.append({"order_id": order_id, "chain_seq": chain_seq, "kind": kind,
                                  "qty": qty, "value_fen": value, "fee_fen": fee})  # fmt: skip

    def chain_event(self, seq: int, contract: str, event: str, day: str, args: Any) -> None:
        self.chain_events.append({"chain_seq": seq, "contract": contract[:32],
                                  "event": event[:48], "trade_date": day,
                                  "args": to_json(dict(args))})  # fmt: skip

    def panel_event(self, ev: Event) -> None:
        self.events.append({"seq": ev.seq, "at": ev.at, "kind": ev.kind,
                            "account_id": ev.account_id, "message": ev.message})  # fmt: skip


def to_json(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, sort_keys=True, default=_plain)


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    return str(v)


def write(conn: Connection, s: Saved, p: Pending) -> None:
    """Append `p` and set the state row from `s`, in the caller's transaction."""
    for table, rows in (
        (lines, p.lines), (accounts, p.accounts), (orders, p.orders),
        (order_events, p.order_events), (chain_events, p.chain_events),
        (nav_points, p.nav_points), (risk_snapshots, p.risk_snapshots), (events, p.events),
    ):  # fmt: skip
        if rows:
            conn.execute(table.insert(), rows)
    for uid, role in p.enrolled.items():
        n = conn.execute(
            enrolled.update().where(enrolled.c.user_id == uid).values(role=role)
        ).rowcount
        if n == 0:
            conn.execute(enrolled.insert(), {"user_id": uid, "role": role})
    row = {
        "next_id": s.next_id, "cursor": s.cursor, "market_day": s.market_day,
        "tick_step": s.tick_step, "replay_done": s.replay_done,
        "paused_reason": s.paused_reason,
        "last_reconciliation": None if s.last_reconciliation is None
        else to_json(s.last_reconciliation),
        "event_seq": s.event_seq, "updated_at_s": int(time.time()),
    }  # fmt: skip
    if conn.execute(state.update().where(state.c.id == 1).values(**row)).rowcount == 0:
        conn.execute(state.insert(), {"id": 1, **row})


def read(conn: Connection) -> tuple[Saved, list[Event]] | None:
    """The record as committed (None: nothing committed yet — a fresh data dir)."""
    st = conn.execute(sa.select(state).where(state.c.id == 1)).first()
    if st is None:
        return None
    s = Saved(
        next_id=int(st.next_id), cursor=int(st.cursor), market_day=st.market_day,
        tick_step=st.tick_step, replay_done=bool(st.replay_done),
        paused_reason=st.paused_reason,
        last_reconciliation=None if st.last_reconciliation is None
        else json.loads(st.last_reconciliation),
        event_seq=int(st.event_seq),
    )  # fmt: skip
    s.enrolled = {int(r.user_id): str(r.role) for r in conn.execute(sa.select(enrolled))}
    for r in conn.execute(sa.select(accounts).order_by(accounts.c.id)):
        s.accounts[int(r.id)] = MarginAccount(int(r.id), int(r.owner_id), int(r.tier))
    for r in conn.execute(sa.select(lines).order_by(lines.c.seq)):
        line: dict[str, Any] = {"at": r.at, "trade_date": r.trade_date, "kind": r.kind,
                                "amount_fen": int(r.amount_fen), **json.loads(r.extra)}  # fmt: skip
        if r.cmd is not None:
            line["cmd"] = r.cmd
        s.history.setdefault(int(r.user_id), []).append(line)
    # ids are not sequential (an account's order slots are reused): by trade date, then id
    for r in conn.execute(sa.select(orders).order_by(orders.c.trade_date, orders.c.order_id)):
        s.orders[int(r.order_id)] = Order(
            int(r.order_id), int(r.account_id), r.side, r.code, int(r.quantity),
            int(r.limit_price_fen), r.trade_date, bool(r.liquidation), int(r.financing_fen),
        )  # fmt: skip
    for r in conn.execute(sa.select(order_events).order_by(order_events.c.seq)):
        o = s.orders.get(int(r.order_id))
        if o is None:
            continue
        if r.kind == "closed":
            o.closed = True
        elif r.kind == "financed":  # the financing drawn, learnt after the order's row
            o.financing_fen = int(r.value_fen)
        else:  # fill, or carried from the previous release's record
            o.filled_qty += int(r.qty)
            o.filled_value_fen += int(r.value_fen)
            o.fees_fen += int(r.fee_fen)
    for r in conn.execute(sa.select(nav_points).order_by(nav_points.c.id)):
        hist = s.nav_history.setdefault(r.tranche, [])
        point = (str(r.trade_date), int(r.nav_e4))
        if hist and hist[-1][0] == point[0]:
            hist[-1] = point  # one point per trade date: the last one written counts
        else:
            hist.append(point)
    recent = conn.execute(sa.select(events).order_by(events.c.seq.desc()).limit(PANEL_EVENTS)).all()
    feed = [Event(int(r.seq), r.at, r.kind, r.account_id, r.message) for r in reversed(recent)]
    return s, feed


__all__ = ["MarginAccount", "Order", "Pending", "Saved", "read", "to_json", "write"]
