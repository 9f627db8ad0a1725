"""The platform's record as append-only tables (`flows.record`); the previous release's JSON
document (`flows_snapshot`, version 2) is moved into them once and its table dropped.

Revision ID: 0002_platform_record
Revises: 0001_baseline
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002_platform_record"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

_SERIAL = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite: rowid autoincrement


def _tables() -> dict[str, sa.Table]:
    m = sa.MetaData()
    t = [
        sa.Table(
            "flows_state", m,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("next_id", sa.BigInteger, nullable=False),
            sa.Column("cursor", sa.BigInteger, nullable=False),
            sa.Column("market_day", sa.String(10), nullable=True),
            sa.Column("tick_step", sa.Integer, nullable=True),
            sa.Column("replay_done", sa.Boolean, nullable=False),
            sa.Column("paused_reason", sa.Text, nullable=True),
            sa.Column("last_reconciliation", sa.Text, nullable=True),
            sa.Column("event_seq", sa.BigInteger, nullable=False),
            sa.Column("updated_at_s", sa.BigInteger, nullable=False),
        ),
        sa.Table(
            "flows_enrolled", m,
            sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("role", sa.String(16), nullable=False),
        ),
        sa.Table(
            "flows_accounts", m,
            sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("owner_id", sa.BigInteger, nullable=False, unique=True),
            sa.Column("tier", sa.Integer, nullable=False),
        ),
        sa.Table(
            "flows_statement_lines", m,
            sa.Column("seq", _SERIAL, primary_key=True),
            sa.Column("user_id", sa.BigInteger, nullable=False),
            sa.Column("at", sa.String(32), nullable=False),
            sa.Column("trade_date", sa.String(10), nullable=False),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("amount_fen", sa.BigInteger, nullable=False),
            sa.Column("cmd", sa.String(32), nullable=True),
            sa.Column("extra", sa.Text, nullable=False),
            sa.Index("ix_flows_statement_lines_user", "user_id", "seq"),
            sa.Index("ix_flows_statement_lines_cmd", "cmd"),
        ),
        sa.Table(
            "flows_orders", m,
            sa.Column("order_id", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("account_id", sa.BigInteger, nullable=False, index=True),
            sa.Column("side", sa.String(4), nullable=False),
            sa.Column("code", sa.String(16), nullable=False),
            sa.Column("quantity", sa.BigInteger, nullable=False),
            sa.Column("limit_price_fen", sa.BigInteger, nullable=False),
            sa.Column("trade_date", sa.String(10), nullable=False),
            sa.Column("liquidation", sa.Boolean, nullable=False),
            sa.Column("financing_fen", sa.BigInteger, nullable=False),
        ),
        sa.Table(
            "flows_order_events", m,
            sa.Column("seq", _SERIAL, primary_key=True),
            sa.Column("order_id", sa.BigInteger, nullable=False, index=True),
            sa.Column("chain_seq", sa.BigInteger, nullable=True),
            sa.Column("kind", sa.String(8), nullable=False),
            sa.Column("qty", sa.BigInteger, nullable=False),
            sa.Column("value_fen", sa.BigInteger, nullable=False),
            sa.Column("fee_fen", sa.BigInteger, nullable=False),
        ),
        sa.Table(
            "flows_chain_events", m,
            sa.Column("id", _SERIAL, primary_key=True),
            sa.Column("chain_seq", sa.BigInteger, nullable=False, index=True),
            sa.Column("contract", sa.String(32), nullable=False),
            sa.Column("event", sa.String(48), nullable=False),
            sa.Column("trade_date", sa.String(10), nullable=False),
            sa.Column("args", sa.Text, nullable=False),
        ),
        sa.Table(
            "flows_nav_points", m,
            sa.Column("id", _SERIAL, primary_key=True),
            sa.Column("tranche", sa.String(8), nullable=False),
            sa.Column("trade_date", sa.String(10), nullable=False),
            sa.Column("nav_e4", sa.BigInteger, nullable=False),
            sa.Index("ix_flows_nav_points_tranche", "tranche", "id"),
        ),
        sa.Table(
            "flows_risk_snapshots", m,
            sa.Column("id", _SERIAL, primary_key=True),
            sa.Column("trade_date", sa.String(10), nullable=False, index=True),
            sa.Column("step", sa.Integer, nullable=False),
            sa.Column("at_s", sa.BigInteger, nullable=False),
            sa.Column("body", sa.Text, nullable=False),
        ),
        sa.Table(
            "flows_events", m,
            sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("at", sa.String(32), nullable=False),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("account_id", sa.BigInteger, nullable=True),
            sa.Column("message", sa.Text, nullable=False),
        ),
    ]  # fmt: skip
    return {x.name: x for x in t}


def upgrade() -> None:
    bind = op.get_bind()
    tables = _tables()
    for t in tables.values():
        t.create(bind)
    if sa.inspect(bind).has_table("flows_snapshot"):
        _import_document(bind, tables)
        op.drop_table("flows_snapshot")


def _import_document(bind: sa.Connection, t: dict[str, sa.Table]) -> None:
    """The previous release's record (one JSON document, version 2) into the tables."""
    row = bind.execute(sa.text("SELECT body FROM flows_snapshot WHERE id = 1")).first()
    if row is None:
        return
    body: dict[str, Any] = json.loads(row[0])
    if body.get("version") != 2:
        raise RuntimeError(
            f"the saved platform record has version {body.get('version')}, expected 2: this"
            " release upgrades only the previous one's data dir"
        )
    market_day = body["market_day"]
    bind.execute(t["flows_state"].insert(), {
        "id": 1, "next_id": int(body["next_id"]), "cursor": int(body["cursor"]),
        "market_day": market_day,
        # the previous release saved no tick: its open day restarts from the first tick
        "tick_step": None,
        "replay_done": bool(body["replay_done"]), "paused_reason": body["paused_reason"],
        "last_reconciliation": None if body["last_reconciliation"] is None
        else _dumps(body["last_reconciliation"]),
        "event_seq": 0, "updated_at_s": int(time.time()),
    })  # fmt: skip
    enrolled = [{"user_id": int(k), "role": v} for k, v in body["enrolled"].items()]
    accounts = [{"id": a["id"], "owner_id": a["owner_id"], "tier": a["tier"]}
                for a in body["accounts"]]  # fmt: skip
    lines = []
    for uid, items in body["history"].items():  # per user, in the order they were added
        for x in items:
            rest = {k: v for k, v in x.items()
                    if k not in ("at", "trade_date", "kind", "amount_fen", "cmd")}  # fmt: skip
            lines.append({"user_id": int(uid), "at": x["at"], "trade_date": x["trade_date"],
                          "kind": x["kind"], "amount_fen": int(x["amount_fen"]),
                          "cmd": x.get("cmd"), "extra": _dumps(rest)})  # fmt: skip
    orders, order_events = [], []
    for o in body["orders"]:
        orders.append({k: o[k] for k in ("account_id", "side", "code", "quantity",
                                         "limit_price_fen", "trade_date", "liquidation",
                                         "financing_fen")} | {"order_id": o["id"]})  # fmt: skip
        if o["filled_qty"]:
            order_events.append({"order_id": o["id"], "chain_seq": None, "kind": "carried",
                                 "qty": o["filled_qty"], "value_fen": o["filled_value_fen"],
                                 "fee_fen": o["fees_fen"]})  # fmt: skip
        if o["closed"]:
            order_events.append({"order_id": o["id"], "chain_seq": None, "kind": "closed",
                                 "qty": 0, "value_fen": 0, "fee_fen": 0})  # fmt: skip
    navs = [{"tranche": tranche, "trade_date": d, "nav_e4": int(n)}
            for tranche, points in body["nav_history"].items() for d, n in points]  # fmt: skip
    for name, rows in (
        ("flows_enrolled", enrolled), ("flows_accounts", accounts),
        ("flows_statement_lines", lines), ("flows_orders", orders),
        ("flows_order_events", order_events), ("flows_nav_points", navs),
    ):  # fmt: skip
        if rows:
            bind.execute(t[name].insert(), rows)


def _dumps(v: object) -> str:
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def downgrade() -> None:
    raise NotImplementedError("the platform record is not moved back into one JSON document")
