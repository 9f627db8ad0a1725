"""Group commit (`custody.db.group_commit`, issue 14): the platform process runs a batch of
commands in one transaction. Inside it every write transaction of the engine is a savepoint
of the group's transaction, reads see the group's writes, nothing is visible to (or durable
for) another connection before the group commits, `barrier` commits early, work deferred with
`on_commit` runs only after the group's final commit, and the group reaches the threads a
command's endpoint runs in. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crowdleverage.custody.db import (
    barrier,
    group_commit,
    in_group,
    on_commit,
    run_after_commit,
    write_transaction,
)

md = sa.MetaData()
items = sa.Table("gc_items", md, sa.Column("id", sa.Integer, primary_key=True))


def _others_see(engine: Engine) -> list[int]:
    """The ids another connection sees (a reader outside the group, in another thread)."""
    out: list[int] = []

    def read() -> None:
        with engine.connect() as conn:
            out.extend(int(r[0]) for r in conn.execute(sa.select(items.c.id).order_by(items.c.id)))

    t = threading.Thread(target=read)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive()
    return out


def test_writes_join_the_group_and_commit_together(engine: Engine) -> None:
    md.create_all(engine)
    with group_commit(engine) as group:
        assert in_group(engine)
        with write_transaction(engine) as conn:
            conn.execute(items.insert(), {"id": 1})
        with engine.begin() as conn:
            conn.execute(items.insert(), {"id": 2})
        with engine.connect() as conn:  # a read in the group sees the group's writes
            seen = sorted(int(r[0]) for r in conn.execute(sa.select(items.c.id)))
        assert seen == [1, 2]
        assert _others_see(engine) == []  # not committed yet
        assert group.commits == 0
    assert group.commits == 1
    assert not in_group(engine)
    assert _others_see(engine) == [1, 2]


def test_a_failed_write_rolls_back_only_itself(engine: Engine) -> None:
    md.create_all(engine)
    with group_commit(engine):
        with write_transaction(engine) as conn:
            conn.execute(items.insert(), {"id": 1})
        with pytest.raises(sa.exc.IntegrityError), write_transaction(engine) as conn:
            conn.execute(items.insert(), {"id": 3})
            conn.execute(items.insert(), {"id": 1})  # duplicate: this transaction fails
        with write_transaction(engine) as conn:
            conn.execute(items.insert(), {"id": 2})
    assert _others_see(engine) == [1, 2]


def test_a_crash_in_the_group_loses_everything_since_the_last_barrier(engine: Engine) -> None:
    """A crash (an exception nobody handles) before the group commits: what was written
    before the last barrier is durable, the rest is gone; deferred work never ran."""
    md.create_all(engine)
    ran: list[str] = []

    class Crash(BaseException):
        pass

    with pytest.raises(Crash), group_commit(engine) as group:
        with write_transaction(engine) as conn:
            conn.execute(items.insert(), {"id": 1})
        on_commit(engine, "k", lambda: ran.append("first"))
        barrier(engine)  # e.g. before a chain transaction
        assert group.commits == 1 and ran == []  # deferred work waits for the group's end
        assert _others_see(engine) == [1]
        with write_transaction(engine) as conn:
            conn.execute(items.insert(), {"id": 2})
        on_commit(engine, "k", lambda: ran.append("second"))
        raise Crash
    assert _others_see(engine) == [1]
    assert ran == []  # e.g. the audit head: behind the log, never ahead of it


def test_on_commit_runs_once_per_key_after_the_commit(engine: Engine) -> None:
    md.create_all(engine)
    ran: list[tuple[str, list[int]]] = []
    on_commit(engine, "head", lambda: ran.append(("outside", [])))  # no group: at once
    assert ran == [("outside", [])]
    with group_commit(engine):
        for i in (1, 2, 3):
            with write_transaction(engine) as conn:
                conn.execute(items.insert(), {"id": i})
            on_commit(engine, "head", lambda i=i: ran.append((f"head {i}", _others_see(engine))))
        assert len(ran) == 1
    assert ran[1:] == [("head 3", [1, 2, 3])]  # the last one, after the commit


def test_deferred_after_work_runs_when_the_caller_says(engine: Engine) -> None:
    """`defer_after` (the platform's writer: the audit head after the answers): the final
    commit leaves the `on_commit` work to `run_after`, which runs it once."""
    md.create_all(engine)
    ran: list[tuple[str, list[int]]] = []
    with group_commit(engine) as group:
        group.defer_after = True
        with write_transaction(engine) as conn:
            conn.execute(items.insert(), {"id": 1})
        on_commit(engine, "head", lambda: ran.append(("head", _others_see(engine))))
    assert ran == [] and _others_see(engine) == [1]  # committed, the work not run yet
    group.run_after()
    group.run_after()
    assert ran == [("head", [1])]


def test_the_caller_takes_the_after_work_and_runs_it_later(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """`take_after` (the platform's writer: the audit head when it is idle): the group keeps
    none of the work; `run_after_commit` runs each once, and one that fails is logged while
    the rest still run."""
    md.create_all(engine)
    ran: list[str] = []

    def fails() -> None:
        raise OSError("disk full")

    with group_commit(engine) as group:
        group.defer_after = True
        with write_transaction(engine) as conn:
            conn.execute(items.insert(), {"id": 1})
        on_commit(engine, "a", fails)
        on_commit(engine, "b", lambda: ran.append("b"))
    after = group.take_after()
    assert list(after) == ["a", "b"] and ran == []
    group.run_after()
    assert ran == []  # the group kept none of it
    with caplog.at_level(logging.ERROR, logger="crowdleverage.custody.db"):
        run_after_commit(after)
    assert ran == ["b"]
    assert any("after a group commit failed" in r.getMessage() for r in caplog.records)


def test_barrier_outside_a_group_and_inside_a_transaction(engine: Engine) -> None:
    md.create_all(engine)
    barrier(engine)  # nothing to do: every write transaction committed already
    with group_commit(engine), pytest.raises(AssertionError), write_transaction(engine):
        barrier(engine)  # a barrier cannot commit half of a write transaction


def test_the_group_reaches_the_threads_an_endpoint_runs_in(engine: Engine) -> None:
    """The platform process calls its endpoints through an event loop (`AsgiCaller`); a
    sync endpoint runs in anyio's worker thread. Both join the caller's group."""
    md.create_all(engine)
    from starlette.concurrency import run_in_threadpool

    def endpoint() -> bool:
        with write_transaction(engine) as conn:
            conn.execute(items.insert(), {"id": 7})
        return in_group(engine)

    loop = asyncio.new_event_loop()
    try:
        with group_commit(engine):
            assert loop.run_until_complete(run_in_threadpool(endpoint)) is True
            assert _others_see(engine) == []
    finally:
        loop.close()
    assert _others_see(engine) == [7]
