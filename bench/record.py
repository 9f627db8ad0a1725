"""The platform's record: the cost of one save as history grows, appended rows
(`flows.record.write`, this release) against the previous release's way measured in the same
run on the same database — the whole record as one JSON document rewritten at every save.

Workload: a record of H statement lines (and H/10 orders with a fill and a close each) for
H = 1,000, 10,000 and 50,000; each save adds what a use case adds (2 lines, 1 order, its fill,
3 chain events, 1 panel event). SQLite WAL with synchronous=FULL in a temporary directory.

    .venv/bin/python bench/record.py

Prints the median ms per save for both and their ratio per H; the append's cost should stay
flat while the document's grows with H.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import sqlalchemy as sa

from crowdleverage.custody.db import make_engine, write_transaction
from crowdleverage.flows import record
from crowdleverage.flows.model import Event
from crowdleverage.migrations import upgrade

SAVES = 30
doc_meta = sa.MetaData()
document = sa.Table(  # the previous release's `flows_snapshot`
    "bench_snapshot",
    doc_meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("taken_at_s", sa.BigInteger, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)


def _line(i: int) -> dict[str, object]:
    return {"at": "2016-01-04T01:30:00+00:00", "trade_date": "2016-01-04", "kind": "buy",
            "amount_fen": -123_456 - i, "account_id": 1, "code": "600000", "quantity": 100,
            "price_fen": 1234, "order_id": i}  # fmt: skip


def _use_case(s: record.Saved, p: record.Pending, n: int) -> None:
    """What one use case adds to the record."""
    for k in range(2):
        line = _line(n * 2 + k)
        s.history.setdefault(3, []).append(line)
        p.line(3, line)
    o = record.Order(10_000_000 + n, 1, "buy", "600000", 100, 1234, "2016-01-04")
    o.filled_qty, o.filled_value_fen, o.closed = 100, 123_400, True
    s.orders[o.id] = o
    p.order(o)
    p.order_event(o.id, "fill", n, 100, 123_400, 5)
    p.order_event(o.id, "closed", n)
    for k in range(3):
        p.chain_event(n * 3 + k, "OrderBook", "Filled", "2016-01-04", {"order_id": o.id})
    p.panel_event(Event(n, "2016-01-04T01:30:00+00:00", "margin_warning", 1, "ratio 140.0%"))
    s.cursor += 3


def _document(s: record.Saved) -> str:
    body = {
        "version": 2, "next_id": s.next_id,
        "accounts": [asdict(a) for a in s.accounts.values()],
        "enrolled": {str(k): v for k, v in s.enrolled.items()},
        "history": {str(k): v for k, v in s.history.items()},
        "orders": [asdict(o) for o in s.orders.values()],
        "nav_history": s.nav_history, "cursor": s.cursor, "market_day": s.market_day,
        "replay_done": s.replay_done, "paused_reason": s.paused_reason,
        "last_reconciliation": s.last_reconciliation,
    }  # fmt: skip
    return json.dumps(body, ensure_ascii=False)


def run(history: int, tmp: Path) -> tuple[float, float]:
    engine = make_engine(f"sqlite:///{tmp / f'record-{history}.db'}")
    upgrade(engine)
    doc_meta.create_all(engine)
    s, p = record.Saved(market_day="2016-01-04"), record.Pending()
    for n in range(history // 2):  # the history already there
        _use_case(s, p, n)
    with write_transaction(engine) as conn:
        record.write(conn, s, p.take())
    appended, rewritten = [], []
    for n in range(history // 2, history // 2 + SAVES):
        _use_case(s, p, n)
        t0 = time.perf_counter()
        with write_transaction(engine) as conn:
            record.write(conn, s, p.take())
        appended.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        body = _document(s)
        with write_transaction(engine) as conn:
            conn.execute(document.delete().where(document.c.id == 1))
            conn.execute(document.insert(), {"id": 1, "taken_at_s": 0, "body": body})
        rewritten.append(time.perf_counter() - t0)
    engine.dispose()
    return statistics.median(appended) * 1000, statistics.median(rewritten) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        print(f"{'history lines':>14} {'append ms':>10} {'JSON doc ms':>12} {'ratio':>7}")
        for h in (1_000, 10_000, 50_000):
            a, r = run(h, Path(d))
            print(f"{h:>14,} {a:>10.2f} {r:>12.2f} {r / a:>6.1f}×")


if __name__ == "__main__":
    main()
