"""The command store on SQLite and PostgreSQL: a new key runs, a finished one replays, another
request under the same key is refused, and a previous release's stored responses
(`api_idempotency`) become finished commands on upgrade."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crowdleverage.custody.db import write_transaction
from crowdleverage.flows.commands import CommandSpec, CommandStore, IdempotencyKeyMismatch


def test_start_finish_replay_and_mismatch(engine: Engine) -> None:
    store = CommandStore(engine)
    store.create_schema()
    spec = CommandSpec(7, "key-00000001", "h1", "/api/v1/users/7/withdrawals")
    cmd, stored = store.start(spec)
    assert cmd is not None and stored is None and not cmd.resumed
    cmd.note("bank", {"transfer": "ab" * 16})
    again, _ = store.start(spec)  # not finished: the retry resumes with the recovery point
    assert again is not None and again.resumed and again.progress == cmd.progress
    assert again.ref == cmd.ref  # the same reference on every attempt
    with write_transaction(engine) as conn:
        CommandStore.finish(conn, spec, 200, {"wallet_fen": 5})
    none, replay = store.start(spec)
    assert none is None and replay is not None and replay.status_code == 200
    assert replay.body == {"wallet_fen": 5}
    with pytest.raises(IdempotencyKeyMismatch):
        store.start(CommandSpec(7, "key-00000001", "h2", "/api/v1/users/7/withdrawals"))
    assert store.counts() == {"done": 1}


def test_the_previous_release_stored_responses_become_finished_commands(engine: Engine) -> None:
    legacy = sa.Table(
        "api_idempotency", sa.MetaData(),
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("path", sa.String(256), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("response_json", sa.Text, nullable=True),
        sa.Column("created_at_s", sa.BigInteger, nullable=False),
    )  # fmt: skip
    legacy.create(engine)
    with engine.begin() as conn:
        conn.execute(legacy.insert(), [
            {"user_id": 3, "key": "old-done-0001", "request_hash": "h", "path": "/p",
             "status_code": 201, "response_json": '{"id": 1}', "created_at_s": 1},
            {"user_id": 3, "key": "old-open-0001", "request_hash": "h", "path": "/p",
             "status_code": None, "response_json": None, "created_at_s": 1},
        ])  # fmt: skip
    store = CommandStore(engine)
    store.create_schema()
    _, replay = store.start(CommandSpec(3, "old-done-0001", "h", "/p"))
    assert replay is not None and (replay.status_code, replay.body) == (201, {"id": 1})
    cmd, _ = store.start(CommandSpec(3, "old-open-0001", "h", "/p"))
    assert cmd is not None and not cmd.resumed  # it ran nothing: a new command
    assert not sa.inspect(engine).has_table("api_idempotency")
    store.create_schema()  # a second start changes nothing
    assert store.counts() == {"done": 1, "running": 1}
