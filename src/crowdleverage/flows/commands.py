"""Exactly-once commands (DESIGN.md §10, after Stripe's idempotency keys and brandur's
recovery points).

A money-moving use case runs as a command named by (owner, client key). Its row in
`flows_commands` is written when it starts (`running`), gets a recovery point before each
foreign effect (`progress`: what the effect will be recognised by), and is marked `done` with
its response **in the same database transaction** that saves the platform's record of the
effects (statement lines, orders): both or neither. A retry with the same key

- finds `done`: the stored response (a 2xx or a typed 4xx) comes back, nothing runs;
- finds `running` (the first attempt crashed, timed out or failed unexpectedly): the command
  runs again and resumes. Every foreign effect is recognised instead of repeated: the
  custody ledger and CashToken by a reference derived from the key (`Command.ref`), a chain
  call without a reference by its event after the recovery point.

The same key with another request is refused (`IdempotencyKeyMismatch`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crowdleverage.custody.db import barrier, write_transaction
from crowdleverage.domain.errors import InvalidInput

metadata = sa.MetaData()

commands = sa.Table(
    "flows_commands",
    metadata,
    sa.Column("owner_id", sa.BigInteger, primary_key=True),  # the user who sent it
    sa.Column("key", sa.String(128), primary_key=True),  # the client's Idempotency-Key
    sa.Column("request_hash", sa.String(64), nullable=False),  # method, path and body
    sa.Column("path", sa.String(256), nullable=False),
    sa.Column("state", sa.String(8), nullable=False, index=True),  # running | done
    sa.Column("status_code", sa.Integer, nullable=True),  # set with state=done
    sa.Column("response_json", sa.Text, nullable=True),
    # recovery points: {step: {...}} written before each foreign effect (JSON)
    sa.Column("progress", sa.Text, nullable=False, server_default="{}"),
    sa.Column("created_at_s", sa.BigInteger, nullable=False),
    sa.Column("done_at_s", sa.BigInteger, nullable=True),
)


# `CommandStore.start_many`'s rows of one owner's keys, built once
_FOUND = sa.select(commands).where(
    commands.c.owner_id == sa.bindparam("o"),
    commands.c.key.in_(sa.bindparam("keys", expanding=True)),
)
# `CommandStore.finish`, built once (its cache key memoized: a batch finishes many commands)
_FINISH = (
    commands.update()
    .where(
        commands.c.owner_id == sa.bindparam("o"),
        commands.c.key == sa.bindparam("k"),
        commands.c.state == "running",
    )
    .values(
        state="done",
        status_code=sa.bindparam("st"),
        response_json=sa.bindparam("body"),
        done_at_s=sa.bindparam("at"),
    )
)


class IdempotencyKeyMismatch(InvalidInput):
    code = "idempotency_key_reused"


def command_ref(owner_id: int, key: str) -> int:
    """A 128-bit id derived from the command's key: the reference of its ledger transfers and
    chain effects, the same on every retry."""
    digest = hashlib.sha256(f"crowdlev-command|{owner_id}|{key}".encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1


@dataclass(frozen=True, slots=True)
class CommandSpec:
    owner_id: int
    key: str
    request_hash: str
    path: str


@dataclass(frozen=True, slots=True)
class Stored:
    status_code: int
    body: Any


@dataclass
class Command:
    """The command being executed: its derived reference and its recovery points."""

    spec: CommandSpec
    store: CommandStore
    resumed: bool
    progress: dict[str, Any] = field(default_factory=dict)
    lined: set[str] = field(default_factory=set)  # kinds of statement lines this run added

    @property
    def ref(self) -> int:
        return command_ref(self.spec.owner_id, self.spec.key)

    @property
    def tag(self) -> str:
        """An opaque id of the command for the records (not the client's key)."""
        return f"{self.ref:032x}"

    def note(self, step: str, value: dict[str, Any]) -> None:
        """A recovery point, committed before the effect it describes (inside a group commit
        the group commits here: `custody.db.barrier`)."""
        self.progress[step] = value
        self.store.set_progress(self.spec, self.progress)
        barrier(self.store.engine)


def _new_row(spec: CommandSpec) -> dict[str, Any]:
    return {"owner_id": spec.owner_id, "key": spec.key, "request_hash": spec.request_hash,
            "path": spec.path[:256], "state": "running", "progress": "{}",
            "created_at_s": int(time.time())}  # fmt: skip


class CommandStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        metadata.create_all(self.engine)
        self._import_legacy()

    def _import_legacy(self) -> None:
        """A data dir of the previous release kept finished responses in `api_idempotency`:
        they become finished commands, so a client retrying an old key still gets its first
        answer (its unfinished rows ran nothing that a retry could repeat: they are dropped)."""
        if not sa.inspect(self.engine).has_table("api_idempotency"):
            return
        legacy = sa.Table("api_idempotency", sa.MetaData(), autoload_with=self.engine)
        with write_transaction(self.engine) as conn:
            rows = conn.execute(sa.select(legacy).where(legacy.c.status_code.is_not(None))).all()
            have = {
                (r[0], r[1]) for r in conn.execute(sa.select(commands.c.owner_id, commands.c.key))
            }
            new = [
                {"owner_id": r.user_id, "key": r.key, "request_hash": r.request_hash,
                 "path": r.path, "state": "done", "status_code": r.status_code,
                 "response_json": r.response_json, "progress": "{}",
                 "created_at_s": r.created_at_s, "done_at_s": r.created_at_s}
                for r in rows
                if (r.user_id, r.key) not in have
            ]  # fmt: skip
            if new:
                conn.execute(commands.insert(), new)
            conn.execute(sa.text("DROP TABLE api_idempotency"))

    def start(self, spec: CommandSpec) -> tuple[Command | None, Stored | None]:
        """(the command to run, None) or (None, its stored result). A new key is recorded as
        running; a running one resumes with its recovery points."""
        t = commands
        where = (t.c.owner_id == spec.owner_id, t.c.key == spec.key)
        with write_transaction(self.engine) as conn:
            row = conn.execute(sa.select(t).where(*where)).first()
            if row is None:
                conn.execute(t.insert().values(**_new_row(spec)))
                return Command(spec, self, resumed=False), None
        return self._found(spec, row)

    def start_many(
        self, specs: list[CommandSpec]
    ) -> list[tuple[Command | None, Stored | None] | IdempotencyKeyMismatch]:
        """`start` for a batch of commands in one write (its new rows in one insert): per
        spec what `start` returns, or the mismatch it raises."""
        if len({(s.owner_id, s.key) for s in specs}) != len(specs):  # one key twice: in turn
            return [self._start_or_mismatch(s) for s in specs]
        t = commands
        out: list[tuple[Command | None, Stored | None] | IdempotencyKeyMismatch] = []
        with write_transaction(self.engine) as conn:
            found: dict[tuple[int, str], Any] = {}
            for owner in dict.fromkeys(s.owner_id for s in specs):
                keys = [s.key for s in specs if s.owner_id == owner]
                for r in conn.execute(_FOUND, {"o": owner, "keys": keys}):
                    found[(owner, r.key)] = r
            new = []
            for spec in specs:
                row = found.get((spec.owner_id, spec.key))
                if row is None:
                    new.append(_new_row(spec))
                    out.append((Command(spec, self, resumed=False), None))
                    continue
                try:
                    out.append(self._found(spec, row))
                except IdempotencyKeyMismatch as err:
                    out.append(err)
            if new:
                conn.execute(t.insert(), new)
        return out

    def _start_or_mismatch(
        self, spec: CommandSpec
    ) -> tuple[Command | None, Stored | None] | IdempotencyKeyMismatch:
        try:
            return self.start(spec)
        except IdempotencyKeyMismatch as err:
            return err

    def _found(self, spec: CommandSpec, row: Any) -> tuple[Command | None, Stored | None]:
        """`start` for a key that has its row already."""
        if row.request_hash != spec.request_hash:
            raise IdempotencyKeyMismatch(
                "this Idempotency-Key was used for a different request "
                f"({row.path}); use a new key for a new request",
                original_path=row.path,
            )
        if row.state == "done":
            return None, Stored(int(row.status_code), json.loads(row.response_json))
        return Command(spec, self, resumed=True, progress=json.loads(row.progress)), None

    def set_progress(self, spec: CommandSpec, progress: dict[str, Any]) -> None:
        t = commands
        with write_transaction(self.engine) as conn:
            conn.execute(
                t.update()
                .where(t.c.owner_id == spec.owner_id, t.c.key == spec.key, t.c.state == "running")
                .values(progress=json.dumps(progress, sort_keys=True))
            )

    @staticmethod
    def finish(conn: Connection, spec: CommandSpec, status_code: int, body: Any) -> None:
        """Mark the command done with its response, inside the caller's transaction."""
        n = conn.execute(
            _FINISH,
            {"o": spec.owner_id, "k": spec.key, "st": status_code,
             "body": json.dumps(body, ensure_ascii=False), "at": int(time.time())},
        ).rowcount  # fmt: skip
        assert n == 1, "dev: a command finishes once, from running"

    def running(self) -> list[Command]:
        t = commands
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(t.c.state == "running")).all()
        return [
            Command(
                CommandSpec(r.owner_id, r.key, r.request_hash, r.path),
                self,
                resumed=True,
                progress=json.loads(r.progress),
            )
            for r in rows
        ]

    def counts(self) -> dict[str, int]:
        t = commands
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.state, sa.func.count()).group_by(t.c.state)).all()
        return {str(r[0]): int(r[1]) for r in rows}
