"""Saving and restoring the platform book (pools, tranches, accounts, positions, queues,
statements) so that a restarted service resumes where it stopped.

The snapshot is one JSON document in `flows_snapshot`, written at every end of day and on a
clean shutdown. On start the book is restored and reconciled against the custody ledger: if
the ledger moved after the snapshot (a crash between two snapshots), the two records differ
and the platform stays paused until an operator has looked (fail closed), never guesses.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crowdleverage.flows.book import Kind
from crowdleverage.flows.model import (
    AccountStatus,
    Lot,
    MarginAccount,
    Order,
    OrderStatus,
    Position,
    Redemption,
    Subscription,
    Tranche,
)

if TYPE_CHECKING:
    from crowdleverage.flows.platform import Platform

metadata = sa.MetaData()
snapshots = sa.Table(
    "flows_snapshot",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("taken_at_s", sa.BigInteger, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)
VERSION = 1


def _d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def dump(p: Platform) -> dict[str, Any]:
    return {
        "version": VERSION,
        "market": {"date": p.market.today.isoformat(), "step": p.market.step},
        "next_id": p.peek_next_id(),
        "tranches": {
            t.value: {
                "claim_fen": s.claim_fen,
                "units": s.units,
                "nav_history": [[d.isoformat(), v] for d, v in s.nav_history],
            }
            for t, s in p.tranches.items()
        },
        "holdings": [[u, t.value, n] for (u, t), n in p.holdings.items()],
        "insurance_fen": p.insurance_fen,
        "fees_fen": p.fees_fen,
        "senior_deficit_fen": p.senior_deficit_fen,
        "paused_reason": p.paused_reason,
        "accounts": [
            {
                "id": a.id,
                "owner_id": a.owner_id,
                "tier": a.tier,
                "debt_fen": a.debt_fen,
                "status": a.status.value,
                "interest_paid_fen": a.interest_paid_fen,
                "positions": [
                    {
                        "code": pos.code,
                        "cost_fen": pos.cost_fen,
                        "lots": [[lot.trade_date.isoformat(), lot.quantity] for lot in pos.lots],
                    }
                    for pos in a.positions.values()
                ],
            }
            for a in p.accounts.values()
        ],
        "orders": [
            {**asdict(o), "status": o.status.value, "trade_date": o.trade_date.isoformat()}
            for o in p.orders
        ],
        "subscriptions": [
            {**asdict(s), "tranche": s.tranche.value, "requested_on": s.requested_on.isoformat()}
            for s in p.subscriptions
        ],
        "redemptions": [
            {**asdict(r), "tranche": r.tranche.value, "requested_on": r.requested_on.isoformat()}
            for r in p.redemptions
        ],
        "history": {str(u): lines for u, lines in p.history.items()},
        "cash": [[int(k), n, bal] for (k, n), bal in p.cash.balances.items()],
        "opened": [[int(k), n] for k, n in p.cash.opened()],
    }


def load(p: Platform, body: dict[str, Any]) -> None:
    assert body["version"] == VERSION, "dev: snapshot version"
    p.market.seek(_d(body["market"]["date"]), body["market"]["step"])
    p.reset_ids(body["next_id"])
    for name, s in body["tranches"].items():
        st = p.tranches[Tranche(name)]
        st.claim_fen, st.units = s["claim_fen"], s["units"]
        st.nav_history = [(_d(d), v) for d, v in s["nav_history"]]
    p.holdings = {(u, Tranche(t)): n for u, t, n in body["holdings"]}
    p.insurance_fen, p.fees_fen = body["insurance_fen"], body["fees_fen"]
    p.senior_deficit_fen = body["senior_deficit_fen"]
    p.paused_reason = body["paused_reason"]  # an operator's pause survives a restart
    p.accounts = {}
    for a in body["accounts"]:
        acc = MarginAccount(
            a["id"],
            a["owner_id"],
            a["tier"],
            a["debt_fen"],
            AccountStatus(a["status"]),
            interest_paid_fen=a["interest_paid_fen"],
        )
        for pos in a["positions"]:
            acc.positions[pos["code"]] = Position(
                pos["code"], [Lot(_d(d), q) for d, q in pos["lots"]], pos["cost_fen"]
            )
        p.accounts[acc.id] = acc
    p.orders = [
        Order(**{**o, "status": OrderStatus(o["status"]), "trade_date": _d(o["trade_date"])})
        for o in body["orders"]
    ]
    p.subscriptions = [
        Subscription(
            **{**s, "tranche": Tranche(s["tranche"]), "requested_on": _d(s["requested_on"])}
        )
        for s in body["subscriptions"]
    ]
    p.redemptions = [
        Redemption(**{**r, "tranche": Tranche(r["tranche"]), "requested_on": _d(r["requested_on"])})
        for r in body["redemptions"]
    ]
    p.history = {int(u): lines for u, lines in body["history"].items()}
    p.cash.balances.clear()
    for k, n, bal in body["cash"]:
        p.cash.balances[(Kind(k), n)] = bal
    for k, n in body["opened"]:
        p.cash.mark_opened(Kind(k), n)
    for acc in p.accounts.values():
        acc.last_ratio_bps = p.ratio_bps(acc)


def save(p: Platform, engine: Engine) -> None:
    text = json.dumps(dump(p), separators=(",", ":"), ensure_ascii=False)
    with engine.begin() as conn:
        n = conn.execute(
            snapshots.update()
            .where(snapshots.c.id == 1)
            .values(taken_at_s=int(time.time()), body=text)
        ).rowcount
        if n == 0:
            conn.execute(snapshots.insert().values(id=1, taken_at_s=int(time.time()), body=text))


def read(engine: Engine) -> dict[str, Any] | None:
    metadata.create_all(engine)
    with engine.connect() as conn:
        row = conn.execute(sa.select(snapshots.c.body).where(snapshots.c.id == 1)).first()
    return None if row is None else dict(json.loads(row.body))
