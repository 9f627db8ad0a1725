"""The API's view of the platform audit log (`audit.log`: hash-chained, signed entries with a
signed head checkpoint). Operator and money-moving actions are appended here; auditors page
through it and see whether the whole chain verifies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from crowdleverage.audit.log import AuditLog as SignedLog


class AuditLog:
    def __init__(self, engine: Engine, data_dir: Path) -> None:
        self.log = SignedLog(engine, data_dir)
        self.log.create_schema()

    def append(self, actor: str, action: str, details: dict[str, Any]) -> int:
        return self.append_many([(actor, action, details)])[0]

    def append_many(self, items: list[tuple[str, str, dict[str, Any]]]) -> list[int]:
        """Several entries in one write (in order), as `append` one after another."""
        plain = [
            (actor, action,
             {k: v if isinstance(v, int | str | bool | None) else str(v)
              for k, v in details.items()})
            for actor, action, details in items
        ]  # fmt: skip
        return [e.seq for e in self.log.append_many(plain)]

    def page(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        entries = self.log.entries()
        return (
            [
                {
                    "seq": e.seq,
                    "ts_ns": e.ts_ns,
                    "actor": e.actor,
                    "action": e.action,
                    "details": e.payload,
                    "hash": e.entry_hash,
                }
                for e in entries[offset : offset + limit]
            ],
            len(entries),
        )

    def verify(self) -> tuple[bool, list[str]]:
        report = self.log.verify()
        return report.ok, [f"{p.get('seq')}: {p.get('problem')}" for p in report.problems]
