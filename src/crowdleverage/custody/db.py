"""Engines for the custody and audit stores: SQLite (WAL) by default, PostgreSQL when
`CROWDLEV_DATABASE_URL` is set (DESIGN.md §3).

Writers are serialised, as in TigerBeetle's single-threaded state machine: on SQLite every
write transaction (`engine.begin()`, `write_transaction`) starts with `BEGIN IMMEDIATE` (one
writer at a time, waiting up to the 30 s busy timeout; readers keep reading the WAL);
on PostgreSQL a writer first takes a transaction-scoped advisory lock. Under that lock a
batch may read, decide in memory and write without lost updates.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from crowdleverage.config import Settings
from crowdleverage.domain.errors import ServiceUnavailable

# Advisory lock key of the custody writer ("CLCUSTODY" folded into a signed 64-bit int).
_PG_WRITER_LOCK = 0x434C_4355_5354_4F44


def make_engine(url: str, *, schema: str | None = None, **kwargs: Any) -> Engine:
    """An engine for `url`. `schema` (PostgreSQL only) sets the search path, which lets tests
    run in a fresh schema each."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, **kwargs)
        _sqlite_setup(engine)
        return engine
    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", {}))
    if schema is not None:
        assert schema.isidentifier(), "dev: schema name is an identifier"
        connect_args["options"] = f"-csearch_path={schema}"
    return sa.create_engine(url, connect_args=connect_args, **kwargs)


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
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
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


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One serialised write transaction: committed on success, rolled back on any error."""
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
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_WRITER_LOCK})
            yield conn
    finally:
        conn_cm.__exit__(None, None, None)


def chunks(items: list[Any], size: int = 900) -> Iterator[list[Any]]:
    """Slices small enough for an IN (...) list on every backend."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
