"""Engines for the custody and audit stores: SQLite (WAL) by default, PostgreSQL when
`CROWDLEV_DATABASE_URL` is set (DESIGN.md §3).

Writers are serialised, as in TigerBeetle's single-threaded state machine: on SQLite every
write transaction (`engine.begin()`, `write_transaction`) starts with `BEGIN IMMEDIATE` (one
writer at a time, waiting up to the 30 s busy timeout; readers keep reading the WAL);
on PostgreSQL a writer first takes a transaction-scoped advisory lock. Under that lock a
batch may read, decide in memory and write without lost updates.

Group commit (`group_commit`): the platform process runs a batch of queued commands in one
database transaction, so the batch costs one commit (one fsync) instead of several per
command. Inside it, on the calling context (a `ContextVar`: the threads the command's
endpoint runs in inherit it), every `write_transaction`, `engine.begin()` and
`engine.connect()` of the engine joins the group's connection: a write transaction becomes a
SAVEPOINT (an error rolls back only its own writes, as before), and reads see the group's
writes. `barrier` commits the group so far; the next use of the database begins a new
transaction (the writer's lock is not held in between: a chain transaction after a barrier
runs without it). Callers put a barrier where something must be durable before an effect
outside the database (a command's recovery point, a chain transaction). `on_commit` defers
work that must follow a commit (the audit log's head checkpoint) until the group's end.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from crowdleverage.config import Settings
from crowdleverage.domain.errors import ServiceUnavailable

log = logging.getLogger("crowdleverage.custody.db")

# Advisory lock key of the custody writer ("CLCUSTODY" folded into a signed 64-bit int).
_PG_WRITER_LOCK = 0x434C_4355_5354_4F44


def make_engine(url: str, *, schema: str | None = None, **kwargs: Any) -> Engine:
    """An engine for `url`. `schema` (PostgreSQL only) sets the search path, which lets tests
    run in a fresh schema each."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, **kwargs)
        _sqlite_setup(engine)
    else:
        connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", {}))
        if schema is not None:
            assert schema.isidentifier(), "dev: schema name is an identifier"
            connect_args["options"] = f"-csearch_path={schema}"
        engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
    _join_groups(engine)
    return engine


def engine_from_settings(settings: Settings) -> Engine:
    if not settings.database_url:
        settings.ensure_data_dir()
    return make_engine(settings.resolved_database_url)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit transactions are not serialisable).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed batch survives a power cut, not only a killed process.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode == "IMMEDIATE":
            try:
                begin_immediate(conn.connection.driver_connection)
            except sqlite3.Error as exc:  # as SQLAlchemy raises a statement's error
                raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, exc) from exc
        else:
            conn.exec_driver_sql(f"BEGIN {mode}")

    # `engine.begin()` (a write transaction) starts IMMEDIATE: a deferred transaction that
    # reads and then writes fails at once with "database is locked" (SQLITE_BUSY_SNAPSHOT,
    # which the busy timeout does not wait for) when another writer committed in between; an
    # immediate one waits for the write lock up to the busy timeout. Reads through
    # `engine.connect()` stay deferred and never block a writer (WAL).
    @contextmanager
    def _begin_immediate() -> Iterator[Connection]:
        with engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    engine.begin = _begin_immediate  # type: ignore[method-assign]


BUSY_TIMEOUT_S = 30.0
_BUSY_POLL_S = (0.0005, 0.002)  # the first wait for the write lock, and the longest


def begin_immediate(dbapi_conn: Any) -> None:
    """`BEGIN IMMEDIATE` on a SQLite connection, waiting for the write lock up to
    `BUSY_TIMEOUT_S` in sleeps of 0.5 to 2 ms. SQLite's own busy handler (the busy timeout)
    sleeps 1, 2, 5, 10, 15, 20, 25 ... 100 ms between its tries, so under steady contention
    (the API workers' enqueues and the writer's claims of the queue, each holding the lock
    for a commit's fsync) a writer slept 60-180 ms for a lock that was free after a few
    (the platform process's stall log: claims of 60-85 ms wall and 3 ms CPU). The busy
    timeout stays set for every other statement (a reader's rare SQLITE_BUSY)."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA busy_timeout=0")
        try:
            deadline = time.monotonic() + BUSY_TIMEOUT_S
            wait = _BUSY_POLL_S[0]
            while True:
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() >= deadline:
                        raise
                time.sleep(wait)
                wait = min(wait * 2, _BUSY_POLL_S[1])
        finally:
            cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    finally:
        cur.close()


@contextmanager
def write_transaction(engine: Engine, *, lock: int = _PG_WRITER_LOCK) -> Iterator[Connection]:
    """One serialised write transaction: committed on success, rolled back on any error
    (inside a `group_commit` on this engine: a savepoint of the group's transaction). `lock`:
    the PostgreSQL advisory lock that serialises it (the ledger's writers by default; the
    command queue has its own, so that enqueuing never waits for the platform's record)."""
    group = _group.get()
    if group is not None and group.engine is engine:
        conn = group.use()
        with conn.begin_nested():
            if lock != _PG_WRITER_LOCK and engine.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
            yield conn
        return
    try:
        conn_cm = engine.connect()
        conn = conn_cm.__enter__()
    except sa.exc.OperationalError as exc:
        raise ServiceUnavailable(f"custody database unreachable: {exc.orig}") from exc
    try:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
            yield conn
    finally:
        conn_cm.__exit__(None, None, None)


class Group:
    """A `group_commit`: one connection whose transaction begins at the group's first use
    of the database (taking the writer's lock) and ends at a barrier or the group's end; in
    between the lock is free (a chain transaction right after a barrier runs without it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.commits = 0  # commits so far: barriers and the final one
        self._after: dict[str, Callable[[], None]] = {}
        self._cm = _real_connect(engine)
        self.conn: Connection = self._cm.__enter__()
        if engine.dialect.name == "sqlite":
            self.conn = self.conn.execution_options(sqlite_begin="IMMEDIATE")
        self.tx: sa.RootTransaction | None = None
        # True: the final commit leaves the `on_commit` work to the caller's `run_after`
        self.defer_after = False

    def use(self) -> Connection:
        """The group's connection, in the group's transaction (begun now if none is open)."""
        if self.tx is None or not self.tx.is_active:
            self.tx = self.conn.begin()
            if self.engine.dialect.name == "postgresql":
                self.conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_WRITER_LOCK}
                )
        return self.conn

    def commit(self, *, final: bool) -> None:
        """Commit what the group wrote (if anything); the next use begins a new transaction.
        `final`: the group's end, where the deferred `on_commit` work runs (once, however
        many barriers committed before)."""
        if self.tx is not None and self.tx.is_active:
            self.tx.commit()
            self.commits += 1
        self.tx = None
        if final and not self.defer_after:
            self.run_after()

    def run_after(self) -> None:
        """The deferred `on_commit` work, once (at the final commit, or when the caller says
        so with `defer_after`: e.g. after the group's answers are stored)."""
        run_after_commit(self.take_after())

    def take_after(self) -> dict[str, Callable[[], None]]:
        """The deferred `on_commit` work by key, handed to the caller (with `defer_after`:
        it runs it later with `run_after_commit`, e.g. the platform's writer when idle); the
        group keeps none of it."""
        after, self._after = self._after, {}
        return after

    def close(self) -> None:
        if self.tx is not None and self.tx.is_active:
            self.tx.rollback()
        self._cm.__exit__(None, None, None)


_group: ContextVar[Group | None] = ContextVar("crowdlev_group_commit", default=None)


class GroupCommitFailed(RuntimeError):
    """A group's transaction did not commit: the platform process stops (its memory may
    hold what the database does not; a restart rebuilds it from the record and the chain).
    Nothing that catches errors to carry on (a replay tick) may catch this one."""


@contextmanager
def group_commit(engine: Engine) -> Iterator[Group]:
    """Run the block in one transaction of `engine` (see the module's docstring): committed
    at the end, rolled back on an error. Not nested."""
    assert _group.get() is None, "dev: group commits do not nest"
    group = Group(engine)
    token = _group.set(group)
    try:
        yield group
        group.commit(final=True)
    finally:
        _group.reset(token)
        group.close()


def in_group(engine: Engine) -> bool:
    group = _group.get()
    return group is not None and group.engine is engine


def barrier(engine: Engine) -> None:
    """Make everything written so far durable before going on: inside a `group_commit` on
    `engine` the group commits here and continues in a new transaction; elsewhere every
    write transaction has committed already, and this does nothing."""
    group = _group.get()
    if group is not None and group.engine is engine:
        assert not group.conn.in_nested_transaction(), "dev: a barrier inside a transaction"
        group.commit(final=False)


def run_after_commit(after: dict[str, Callable[[], None]]) -> None:
    """Run work deferred past a commit (`Group.take_after`), each once; one that fails is
    logged and the rest still run (the data is committed: the work after it must not undo
    that)."""
    for fn in after.values():
        try:
            fn()
        except Exception:
            log.exception("work after a group commit failed")


def on_commit(engine: Engine, key: str, fn: Callable[[], None]) -> None:
    """Run `fn` after the data written so far is committed: now outside a group, after the
    group's final commit inside one (the last `fn` given for a `key` replaces earlier ones;
    a crash before that runs none of them)."""
    group = _group.get()
    if group is None or group.engine is not engine:
        fn()
        return
    group._after.pop(key, None)
    group._after[key] = fn


class _Joined:
    """The group's connection as `engine.connect()` hands it out inside a group: closing it
    does nothing, and a transaction begun on it is a savepoint."""

    def __init__(self, group: Group) -> None:
        self._group = group

    @property
    def _conn(self) -> Connection:
        return self._group.use()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None

    def begin(self) -> Any:
        return self._conn.begin_nested()

    def execution_options(self, **_: Any) -> Any:
        return self


def _real_connect(engine: Engine) -> Any:
    return engine.__dict__.get("_real_connect", engine.connect)()


def _join_groups(engine: Engine) -> None:
    """`engine.connect()` and `engine.begin()` join a group commit open on this engine in the
    calling context."""
    real_connect = engine.connect
    real_begin = engine.begin
    engine.__dict__["_real_connect"] = real_connect

    def connect() -> Any:
        group = _group.get()
        if group is not None and group.engine is engine:
            return _Joined(group)
        return real_connect()

    @contextmanager
    def begin() -> Iterator[Connection]:
        group = _group.get()
        if group is not None and group.engine is engine:
            conn = group.use()
            with conn.begin_nested():
                yield conn
            return
        with real_begin() as conn:
            yield conn

    engine.connect = connect  # type: ignore[method-assign]
    engine.begin = begin  # type: ignore[assignment,method-assign]


def chunks(items: list[Any], size: int = 900) -> Iterator[list[Any]]:
    """Slices small enough for an IN (...) list on every backend."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
