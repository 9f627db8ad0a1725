"""Hash-chained log of operator and money-moving actions: each entry's hash covers the
previous entry's hash, so an edit or a deletion anywhere breaks every later link."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crowdleverage.api import store

GENESIS = "0" * 64
_lock = threading.Lock()


def _digest(seq: int, at_s: int, actor: str, action: str, details_json: str, prev: str) -> str:
    body = json.dumps([seq, at_s, actor, action, details_json, prev], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def append(self, actor: str, action: str, details: dict[str, Any]) -> int:
        t = store.audit_log
        details_json = json.dumps(details, sort_keys=True, default=str, ensure_ascii=False)
        with _lock, self.engine.begin() as conn:
            last = conn.execute(sa.select(t.c.seq, t.c.hash).order_by(t.c.seq.desc()).limit(1))
            row = last.first()
            seq, prev = (row.seq + 1, row.hash) if row else (1, GENESIS)
            at_s = int(time.time())
            conn.execute(
                t.insert().values(
                    seq=seq,
                    at_s=at_s,
                    actor=actor,
                    action=action,
                    details_json=details_json,
                    prev_hash=prev,
                    hash=_digest(seq, at_s, actor, action, details_json, prev),
                )
            )
        return seq

    def page(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        t = store.audit_log
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).order_by(t.c.seq).limit(limit).offset(offset)).all()
            total = int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
        return [
            {
                "seq": r.seq,
                "at_s": r.at_s,
                "actor": r.actor,
                "action": r.action,
                "details": json.loads(r.details_json),
                "prev_hash": r.prev_hash,
                "hash": r.hash,
            }
            for r in rows
        ], total

    def verify(self) -> bool:
        t = store.audit_log
        prev = GENESIS
        with self.engine.connect() as conn:
            for r in conn.execute(sa.select(t).order_by(t.c.seq)):
                if r.prev_hash != prev:
                    return False
                if r.hash != _digest(r.seq, r.at_s, r.actor, r.action, r.details_json, prev):
                    return False
                prev = r.hash
        return True
