"""The durable command queue and the read models shared by the platform process (the single
writer) and the API workers (DESIGN.md §10–11).

- `service_commands`: one row per request the API hands to the platform: (owner, key) unique,
  the key being the client's Idempotency-Key or one the API generates. A row is `queued`,
  `running` (claimed by the writer), `done` (its response stored) or `failed` (a 5xx: a retry
  with the same key queues it again and the platform resumes it, `flows.commands`).
- `service_read_models`: the responses of GET views rendered by the writer for one viewer,
  keyed by (viewer, path), with the projection sequence that rendered them. The API answers
  reads from here; a view nobody asked for yet is rendered on its first read (a `read`
  command) and from then on re-rendered by the writer after every command that touches its
  viewer and after every market tick (a rendering equal to the stored one is not written
  again). The API workers report which views they served (`read_at_ms`, batched); a view
  nobody read for `writer.VIEW_IDLE_S` is deleted and no longer rendered — its next read
  renders it again.
- `service_writer`: the writer's heartbeat, pid and progress (the API's health check).

On SQLite these tables live in a file of their own beside the platform's database
(`queue.db`): SQLite has one writer per file, and the platform process holds the platform
database's write lock for a batch of commands (a group commit, `custody.db.group_commit`);
an API worker's enqueue waits only for other queue writes. On PostgreSQL they are in the same
database, serialised by an advisory lock of their own (`QUEUE_LOCK`) for the same reason.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crowdleverage.custody.db import (
    BUSY_TIMEOUT_S,
    begin_immediate,
    make_engine,
    write_transaction,
)
from crowdleverage.flows.commands import IdempotencyKeyMismatch

metadata = sa.MetaData()
_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite: a rowid alias

commands = sa.Table(
    "service_commands",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),  # execution order
    sa.Column("owner_id", sa.BigInteger, nullable=False),  # the sender (0: anonymous)
    sa.Column("key", sa.String(128), nullable=False),
    sa.Column("client_key", sa.Boolean, nullable=False),  # the client chose the key
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # write | read
    sa.Column("payload", sa.Text, nullable=False),  # the request (JSON)
    sa.Column("state", sa.String(8), nullable=False),  # queued | running | done | failed
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("result", sa.Text, nullable=True),  # the response (JSON)
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("done_at_ms", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("owner_id", "key", name="uq_service_commands_key"),
    sa.Index("ix_service_commands_state", "state", "id"),
)

read_models = sa.Table(
    "service_read_models",
    metadata,
    sa.Column("viewer_id", sa.BigInteger, primary_key=True),
    sa.Column("path", sa.String(600), primary_key=True),  # path?query plus a variant
    sa.Column("kind", sa.String(128), nullable=False),  # the route template
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("headers", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),  # the writer's projection sequence
    sa.Column("rendered_at_ms", sa.BigInteger, nullable=False),
    # last read (the API workers report their reads every `TOUCH_EVERY_S`): idle views go
    sa.Column("read_at_ms", sa.BigInteger, nullable=True),
)

writer = sa.Table(
    "service_writer",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at_ms", sa.BigInteger, nullable=False),
    sa.Column("heartbeat_ms", sa.BigInteger, nullable=False),
    sa.Column("ready", sa.Boolean, nullable=False),
    sa.Column("info", sa.Text, nullable=False),  # progress facts (JSON)
)


QUEUE_FILE = "queue.db"
QUEUE_LOCK = 0x434C_5155_4555_4531  # PostgreSQL advisory lock of the queue ("CLQUEUE1")


def queue_engine(engine: Engine) -> Engine:
    """The queue's engine for a platform database: on a SQLite file, `queue.db` beside it;
    otherwise the same engine."""
    db = engine.url.database if engine.dialect.name == "sqlite" else None
    if not db or db == ":memory:" or db.startswith("file:"):
        return engine
    return make_engine(f"sqlite:///{Path(db).resolve().with_name(QUEUE_FILE)}")


def now_ms() -> int:
    return int(time.time() * 1000)


def request_hash(method: str, path: str, query: str, body: bytes) -> str:
    """Method, path, query and body; a JSON body canonically (key order and spacing do not
    make another request)."""
    try:
        canon: Any = json.loads(body) if body else None
        text = json.dumps(canon, sort_keys=True, separators=(",", ":"))
    except (ValueError, UnicodeDecodeError):
        text = "raw:" + hashlib.sha256(body).hexdigest()
    return hashlib.sha256(f"{method}\n{path}\n{query}\n{text}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    owner_id: int
    key: str
    client_key: bool
    kind: str
    payload: dict[str, Any]
    state: str
    status_code: int | None
    result: dict[str, Any] | None
    attempts: int


def _row(r: Any) -> Row:
    return Row(
        int(r.id), int(r.owner_id), str(r.key), bool(r.client_key), str(r.kind),
        json.loads(r.payload), str(r.state), r.status_code,
        json.loads(r.result) if r.result else None, int(r.attempts),
    )  # fmt: skip


_ROW_COLUMNS = (
    "id, owner_id, key, client_key, kind, payload, state, status_code, result,"
    " attempts"
)  # `Row`'s columns, in its order (the plain sqlite3 reads)


def _raw_row(r: Any) -> Row:
    """A `Row` from a plain sqlite3 row of `_ROW_COLUMNS`."""
    return Row(
        int(r[0]), int(r[1]), str(r[2]), bool(r[3]), str(r[4]), json.loads(r[5]), str(r[6]),
        r[7], json.loads(r[8]) if r[8] else None, int(r[9]),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Doc:
    status_code: int
    headers: list[tuple[str, str]]
    body: bytes
    seq: int


class Queue:
    """Both sides of the queue: the API enqueues and waits, the writer claims and finishes."""

    def __init__(self, engine: Engine) -> None:
        """`engine`: the platform's database (the queue's own file beside it on SQLite)."""
        engine = queue_engine(engine)
        self.engine = engine
        db = engine.url.database if engine.dialect.name == "sqlite" else None
        self._sqlite_file = db if db and db != ":memory:" and not db.startswith("file:") else None
        self._local = threading.local()

    # ---------------------------------------------------------------- the hot reads (SQLite)

    def _conn(self) -> sqlite3.Connection | None:
        """This thread's own read-only SQLite connection (autocommit), for the checks an API
        worker makes on every read: a query here costs microseconds, through the pool and
        SQLAlchemy a good part of a millisecond. None on PostgreSQL."""
        return self._thread_conn("conn", ("busy_timeout=1000", "query_only=1"))

    def _wconn(self) -> sqlite3.Connection | None:
        """This thread's own SQLite connection for the queue's hot writes (the API's enqueue,
        the writer's claim and answers), None on PostgreSQL. The same settings as the
        engine's connections (`custody.db.make_engine`): WAL, `synchronous=FULL` (a commit
        here is as durable as one through SQLAlchemy: one fsync of the WAL), and transactions
        begun `IMMEDIATE` (`custody.db.begin_immediate`); a statement through SQLAlchemy's
        Core costs a good part of a millisecond of CPU, here a few microseconds."""
        pragmas = ("journal_mode=WAL", "synchronous=FULL",
                   f"busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")  # fmt: skip
        return self._thread_conn("wconn", pragmas)

    def _thread_conn(self, name: str, pragmas: tuple[str, ...]) -> sqlite3.Connection | None:
        """This thread's SQLite connection `name` (autocommit), opened with `pragmas` on first
        use; None on PostgreSQL."""
        if self._sqlite_file is None:
            return None
        conn: sqlite3.Connection | None = getattr(self._local, name, None)
        if conn is None:
            conn = sqlite3.connect(self._sqlite_file, isolation_level=None,
                                   check_same_thread=False)  # fmt: skip
            for pragma in pragmas:
                conn.execute(f"PRAGMA {pragma}")
            setattr(self._local, name, conn)
        return conn

    @contextmanager
    def _raw_write(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """One write transaction on a connection of `_wconn`: committed on success, rolled
        back on any error (as `custody.db.write_transaction`)."""
        begin_immediate(conn)
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def data_version(self) -> int | None:
        """SQLite's `PRAGMA data_version` on this thread's connection: it changes whenever
        another connection (the writer, another worker) has committed since the last call. A
        value seen before a read that is the same now means nothing was committed in between.
        None on PostgreSQL (every check goes to the database)."""
        conn = self._conn()
        if conn is None:
            return None
        return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def doc_seq(self, viewer_id: int, path: str) -> int | None:
        """The projection sequence of a stored view (SQLite's own connection), None if absent."""
        conn = self._conn()
        assert conn is not None, "dev: doc_seq is for SQLite"
        r = conn.execute(
            "SELECT seq FROM service_read_models WHERE viewer_id = ? AND path = ?",
            (viewer_id, path),
        ).fetchone()
        return None if r is None else int(r[0])

    def doc_fast(self, viewer_id: int, path: str) -> Doc | None:
        """`doc` on SQLite's own connection."""
        conn = self._conn()
        assert conn is not None, "dev: doc_fast is for SQLite"
        r = conn.execute(
            "SELECT status_code, headers, body, seq FROM service_read_models"
            " WHERE viewer_id = ? AND path = ?",
            (viewer_id, path),
        ).fetchone()
        if r is None:
            return None
        return Doc(int(r[0]), [tuple(h) for h in json.loads(r[1])], bytes(r[2]), int(r[3]))

    def finished_ids(self, ids: list[int]) -> list[int]:
        """The finished (done or failed) ids among `ids`, on SQLite's own connection: the
        cheap test a waiting worker makes after each commit before `results` reads the rows."""
        conn = self._conn()
        assert conn is not None, "dev: finished_ids is for SQLite"
        out: list[int] = []
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            sql = (f"SELECT id FROM service_commands WHERE id IN ({marks})"
                   " AND state IN ('done', 'failed')")  # fmt: skip
            out += [int(r[0]) for r in conn.execute(sql, part)]
        return out

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    # ---------------------------------------------------------------- the API's side

    def enqueue(
        self,
        *,
        owner_id: int,
        key: str | None,
        kind: str,
        payload: dict[str, Any],
        req_hash: str,
    ) -> tuple[int, bool]:
        """(row id, replayed): a new row, or the row a retry with the same key names (a
        `failed` one is queued again so the platform resumes it). The same key with another
        request is refused (`IdempotencyKeyMismatch`, 422)."""
        t = commands
        client_key = key is not None
        key = key if key is not None else f"gen-{uuid.uuid4().hex}"
        raw = self._wconn()
        if raw is not None:
            return self._enqueue_sqlite(raw, owner_id, key, client_key, kind, payload, req_hash)
        with write_transaction(self.engine, lock=QUEUE_LOCK) as conn:
            row = conn.execute(
                sa.select(t.c.id, t.c.request_hash, t.c.state, t.c.payload).where(
                    t.c.owner_id == owner_id, t.c.key == key
                )
            ).first()
            if row is None:
                pk = conn.execute(
                    t.insert().values(
                        owner_id=owner_id, key=key, client_key=client_key, request_hash=req_hash,
                        kind=kind, payload=json.dumps(payload), state="queued", attempts=0,
                        created_at_ms=now_ms(),
                    )
                ).inserted_primary_key  # fmt: skip
                assert pk is not None, "dev: an insert has a primary key"
                new_id = pk[0]
                return int(new_id), False
            if row.request_hash != req_hash:
                path = json.loads(row.payload).get("path", "?")
                raise IdempotencyKeyMismatch(
                    "this Idempotency-Key was used for a different request "
                    f"({path}); use a new key for a new request",
                    original_path=path,
                )
            if row.state == "failed":
                conn.execute(t.update().where(t.c.id == row.id).values(state="queued"))
            return int(row.id), True

    def _enqueue_sqlite(
        self,
        conn: sqlite3.Connection,
        owner_id: int,
        key: str,
        client_key: bool,
        kind: str,
        payload: dict[str, Any],
        req_hash: str,
    ) -> tuple[int, bool]:
        """`enqueue` on SQLite's own connection (the same statements as through the engine)."""
        with self._raw_write(conn):
            row = conn.execute(
                "SELECT id, request_hash, state, payload FROM service_commands"
                " WHERE owner_id = ? AND key = ?",
                (owner_id, key),
            ).fetchone()
            if row is None:
                cur = conn.execute(
                    "INSERT INTO service_commands (owner_id, key, client_key, request_hash,"
                    " kind, payload, state, attempts, created_at_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?)",
                    (owner_id, key, int(client_key), req_hash, kind, json.dumps(payload),
                     now_ms()),
                )  # fmt: skip
                assert cur.lastrowid is not None, "dev: an insert has a rowid"
                return int(cur.lastrowid), False
            if row[1] != req_hash:
                path = json.loads(row[3]).get("path", "?")
                raise IdempotencyKeyMismatch(
                    "this Idempotency-Key was used for a different request "
                    f"({path}); use a new key for a new request",
                    original_path=path,
                )
            if row[2] == "failed":
                conn.execute("UPDATE service_commands SET state = 'queued' WHERE id = ?", (row[0],))
            return int(row[0]), True

    def results(self, ids: list[int]) -> dict[int, Row]:
        """The finished (done or failed) rows among `ids` (on SQLite: this thread's own
        read-only connection)."""
        if not ids:
            return {}
        conn = self._conn()
        if conn is not None:
            out: dict[int, Row] = {}
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                sql = (f"SELECT {_ROW_COLUMNS} FROM service_commands WHERE id IN ({marks})"
                       " AND state IN ('done', 'failed')")  # fmt: skip
                for r in conn.execute(sql, part):
                    out[int(r[0])] = _raw_row(r)
            return out
        t = commands
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(t).where(t.c.id.in_(ids), t.c.state.in_(("done", "failed")))
            ).all()
        return {int(r.id): _row(r) for r in rows}

    def get(self, row_id: int) -> Row | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(commands).where(commands.c.id == row_id)).first()
        return None if r is None else _row(r)

    def doc(self, viewer_id: int, path: str) -> Doc | None:
        t = read_models
        with self.engine.connect() as conn:
            r = conn.execute(
                sa.select(t.c.status_code, t.c.headers, t.c.body, t.c.seq).where(
                    t.c.viewer_id == viewer_id, t.c.path == path
                )
            ).first()
        if r is None:
            return None
        return Doc(int(r.status_code), [tuple(h) for h in json.loads(r.headers)], bytes(r.body),
                   int(r.seq))  # fmt: skip

    def writer_info(self) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(writer).where(writer.c.id == 1)).first()
        if r is None:
            return None
        return {
            "pid": int(r.pid), "ready": bool(r.ready), "heartbeat_ms": int(r.heartbeat_ms),
            "started_at_ms": int(r.started_at_ms), **json.loads(r.info),
        }  # fmt: skip

    def counts(self) -> dict[str, int]:
        t = commands
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.state, sa.func.count()).group_by(t.c.state)).all()
        return {str(r[0]): int(r[1]) for r in rows}

    # ---------------------------------------------------------------- the writer's side

    def claim(
        self, limit: int, *, only: Callable[[str, dict[str, Any]], bool] | None = None
    ) -> list[Row]:
        """The next queued rows in order, marked running (one transaction). `only(kind,
        payload)`: the rows from the head of the queue up to the first one it refuses (a row
        never runs before one queued ahead of it)."""
        t = commands
        raw = self._wconn()
        if raw is not None:
            return self._claim_sqlite(raw, limit, only)
        with self.engine.connect() as conn:  # a read first: an idle claim takes no write lock
            if only is None:
                q = sa.select(t.c.id).where(t.c.state == "queued").order_by(t.c.id).limit(limit)
                ids = [int(r[0]) for r in conn.execute(q)]
            else:
                q = (sa.select(t.c.id, t.c.kind, t.c.payload).where(t.c.state == "queued")
                     .order_by(t.c.id).limit(limit))  # fmt: skip
                ids = []
                for r in conn.execute(q):
                    if not only(str(r.kind), json.loads(r.payload)):
                        break
                    ids.append(int(r.id))
        if not ids:
            return []
        with write_transaction(self.engine, lock=QUEUE_LOCK) as conn:
            rows = conn.execute(  # the rows as updated, in one statement
                t.update()
                .where(t.c.id.in_(ids), t.c.state == "queued")
                .values(state="running", attempts=t.c.attempts + 1)
                .returning(*t.c)
            ).all()
        return sorted((_row(r) for r in rows), key=lambda r: r.id)

    def _claim_sqlite(
        self,
        conn: sqlite3.Connection,
        limit: int,
        only: Callable[[str, dict[str, Any]], bool] | None,
    ) -> list[Row]:
        """`claim` on SQLite's own connection (the same statements as through the engine)."""
        ids: list[int] = []  # a read first (autocommit): an idle claim takes no write lock
        if only is None:
            q = "SELECT id FROM service_commands WHERE state = 'queued' ORDER BY id LIMIT ?"
            ids = [int(r[0]) for r in conn.execute(q, (limit,))]
        else:
            q = ("SELECT id, kind, payload FROM service_commands WHERE state = 'queued'"
                 " ORDER BY id LIMIT ?")  # fmt: skip
            for r in conn.execute(q, (limit,)).fetchall():
                if not only(str(r[1]), json.loads(r[2])):
                    break
                ids.append(int(r[0]))
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        with self._raw_write(conn):  # the rows as updated, in one statement
            rows = conn.execute(
                f"UPDATE service_commands SET state = 'running', attempts = attempts + 1"
                f" WHERE id IN ({marks}) AND state = 'queued' RETURNING {_ROW_COLUMNS}",
                ids,
            ).fetchall()
        return sorted((_raw_row(r) for r in rows), key=lambda r: r.id)

    def finish(
        self,
        row_id: int,
        state: str,
        status_code: int,
        result: dict[str, Any],
        docs: list[dict[str, Any]] | None = None,
    ) -> None:
        """The row's response, with the views it changed, in one transaction."""
        t = commands
        with write_transaction(self.engine, lock=QUEUE_LOCK) as conn:
            self._put_docs(conn, docs or [])
            conn.execute(
                t.update()
                .where(t.c.id == row_id)
                .values(
                    state=state, status_code=status_code, result=json.dumps(result),
                    done_at_ms=now_ms(),
                )
            )  # fmt: skip

    def finish_many(
        self, rows: list[tuple[int, str, int, dict[str, Any]]], docs: list[dict[str, Any]]
    ) -> None:
        """A batch's responses (row id, state, status, result) and the views it changed, in
        one transaction (one commit, one fsync, for the whole batch)."""
        raw = self._wconn()
        if raw is not None:
            at = now_ms()
            with self._raw_write(raw):
                self._put_docs_sqlite(raw, docs)
                if rows:
                    raw.executemany(
                        "UPDATE service_commands SET state = ?, status_code = ?, result = ?,"
                        " done_at_ms = ? WHERE id = ?",
                        [(state, code, json.dumps(result), at, row_id)
                         for row_id, state, code, result in rows],
                    )  # fmt: skip
            return
        t = commands
        stmt = (
            t.update()
            .where(t.c.id == sa.bindparam("rid"))
            .values(state=sa.bindparam("st"), status_code=sa.bindparam("code"),
                    result=sa.bindparam("res"), done_at_ms=sa.bindparam("at"))
        )  # fmt: skip
        at = now_ms()
        params = [{"rid": row_id, "st": state, "code": status_code, "res": json.dumps(result),
                   "at": at} for row_id, state, status_code, result in rows]  # fmt: skip
        with write_transaction(self.engine, lock=QUEUE_LOCK) as conn:
            self._put_docs(conn, docs)
            if params:
                conn.execute(stmt, params)

    def interrupted(self) -> list[Row]:
        """Rows a killed writer had claimed."""
        t = commands
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(t.c.state == "running").order_by(t.c.id)).all()
        return [_row(r) for r in rows]

    def requeue(self, row_id: int) -> None:
        t = commands
        with write_transaction(self.engine, lock=QUEUE_LOCK) as conn:
            conn.execute(t.update().where(t.c.id == row_id).values(state="queued"))

    def put_docs(self, docs: list[dict[str, Any]]) -> None:
        """Upsert rendered views (one transaction)."""
        if not docs:
            return
        raw = self._wconn()
        if raw is not None:
            with self._raw_write(raw):
                self._put_docs_sqlite(raw, docs)
            return
        with write_transaction(self.engine, lock=QUEUE_LOCK) as conn:
            self._put_docs(conn, docs)

    @staticmethod
    def _put_docs_sqlite(conn: sqlite3.Connection, docs: list[dict[str, Any]]) -> None:
        """`_put_docs` on SQLite's own connection: an update, else an insert, per view."""
        cols = {c.name for c in read_models.c}
        for d in docs:
            assert set(d) <= cols, "dev: a view's row has only the table's columns"
            names = list(d)
            sets = ", ".join(f"{k} = ?" for k in names)
            n = conn.execute(
                f"UPDATE service_read_models SET {sets} WHERE viewer_id = ? AND path = ?",
                [*d.values(), d["viewer_id"], d["path"]],
            ).rowcount
            if n == 0:
                conn.execute(
                    f"INSERT INTO service_read_models ({', '.join(names)})"
                    f" VALUES ({', '.join('?' * len(names))})",
                    list(d.values()),
                )

    @staticmethod
    def _put_docs(conn: sa.Connection, docs: list[dict[str, Any]]) -> None:
        t = read_models
        for d in docs:
            n = conn.execute(
                t.update().where(t.c.viewer_id == d["viewer_id"], t.c.path == d["path"]).values(**d)
            ).rowcount
            if n == 0:
                conn.execute(t.insert().values(**d))

    def touch(self, keys: list[tuple[int, str]], at_ms: int) -> None:
        """These views were read (one transaction for a worker's batch of reads)."""
        if not keys:
            return
        t = read_models
        stmt = (
            t.update()
            .where(t.c.viewer_id == sa.bindparam("v"), t.c.path == sa.bindparam("p"))
            .values(read_at_ms=at_ms)
        )
        with write_transaction(self.engine, lock=QUEUE_LOCK) as conn:
            conn.execute(stmt, [{"v": v, "p": p} for v, p in keys])

    def evict(self, idle_before_ms: int) -> list[tuple[int, str]]:
        """Delete the views last read before the cutoff (or never reported read); returns
        their keys."""
        t = read_models
        last = sa.func.coalesce(t.c.read_at_ms, 0)
        with write_transaction(self.engine, lock=QUEUE_LOCK) as conn:
            keys = [(int(r[0]), str(r[1])) for r in conn.execute(
                sa.select(t.c.viewer_id, t.c.path).where(last < idle_before_ms))]  # fmt: skip
            for v, p in keys:
                conn.execute(t.delete().where(t.c.viewer_id == v, t.c.path == p,
                                              last < idle_before_ms))  # fmt: skip
        return keys

    def max_seq(self) -> int:
        """The highest projection sequence stored: a restarted writer counts on from it (a
        view's seq never comes back with other content, which the workers' caches rely on)."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(read_models.c.seq))).scalar() or 0)

    def doc_keys(self, viewers: set[int] | None = None) -> list[tuple[int, str, str]]:
        """(viewer, path, kind) of the stored views: all, or those of `viewers`."""
        conn = self._conn()
        if conn is not None:  # SQLite: this thread's own read-only connection
            sql = "SELECT viewer_id, path, kind FROM service_read_models"
            if viewers is None:
                found = conn.execute(sql).fetchall()
            else:
                found, order = [], sorted(viewers)
                for i in range(0, len(order), 500):
                    part = order[i : i + 500]
                    marks = ",".join("?" * len(part))
                    found += conn.execute(f"{sql} WHERE viewer_id IN ({marks})", part).fetchall()
            return [(int(r[0]), str(r[1]), str(r[2])) for r in found]
        t = read_models
        q = sa.select(t.c.viewer_id, t.c.path, t.c.kind)
        if viewers is not None:
            q = q.where(t.c.viewer_id.in_(sorted(viewers)))
        with self.engine.connect() as db:
            rows = db.execute(q).all()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def prune(self, older_than_ms: int) -> None:
        """Finished read commands are only a channel: dropped after a while."""
        t = commands
        with write_transaction(self.engine, lock=QUEUE_LOCK) as conn:
            conn.execute(
                t.delete().where(
                    t.c.kind == "read", t.c.state == "done", t.c.done_at_ms < older_than_ms
                )
            )

    def beat(self, pid: int, started_at_ms: int, ready: bool, info: dict[str, Any]) -> None:
        values = {"pid": pid, "started_at_ms": started_at_ms, "heartbeat_ms": now_ms(),
                  "ready": ready, "info": json.dumps(info)}  # fmt: skip
        with write_transaction(self.engine, lock=QUEUE_LOCK) as conn:
            n = conn.execute(writer.update().where(writer.c.id == 1).values(**values)).rowcount
            if n == 0:
                conn.execute(writer.insert().values(id=1, **values))
