"""An API worker's hot read path (`service.gateway.FastReads`): a stored view is answered
from the worker's cache while nothing was committed, and from the table as soon as the writer
stores a new rendering; each viewer gets only the views rendered for them; a view nobody
rendered, a bad or expired token go the slow way (the platform, here absent: 503). A real
worker application on SQLite; the rows are written the way the writer writes them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from crowdleverage.api.app import create_app
from crowdleverage.api.security import Role, User, issue_token
from crowdleverage.config import Settings
from crowdleverage.custody.db import engine_from_settings
from crowdleverage.flows.commands import IdempotencyKeyMismatch
from crowdleverage.service import gateway
from crowdleverage.service.gateway import FastReads
from crowdleverage.service.queue import Queue, commands, now_ms, read_models

SECRET = "f" * 40


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Queue]]:
    monkeypatch.setenv("CROWDLEV_COMMAND_WAIT_S", "1.0")  # no platform: give up quickly
    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET)  # type: ignore[call-arg]
    app = create_app(settings, worker=True)
    assert app.user_middleware[0].cls is FastReads  # outermost
    queue = Queue(engine_from_settings(settings))  # the writer's side: another engine
    with TestClient(app) as client:
        yield client, queue


def _user(uid: int) -> User:
    return User(uid, f"u{uid}", Role.INVESTOR, f"U {uid}", "approved", None)


def _auth(uid: int, ttl_s: int = 600) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(_user(uid), SECRET, ttl_s=ttl_s)}"}


def _store(queue: Queue, viewer: int, path: str, body: dict[str, object], seq: int) -> None:
    queue.put_docs([{
        "viewer_id": viewer, "path": path, "kind": path, "status_code": 200,
        "headers": json.dumps([["content-type", "application/json"]]),
        "body": json.dumps(body).encode(), "seq": seq, "rendered_at_ms": now_ms(),
    }])  # fmt: skip


def test_stored_view_served_and_refreshed(worker: tuple[TestClient, Queue]) -> None:
    client, queue = worker
    path = "/api/v1/users/7/wallet"
    _store(queue, 7, path, {"wallet_fen": 100}, seq=1)
    r = client.get(path, headers={**_auth(7), "X-Request-ID": "req-abcdef12"})
    assert r.status_code == 200 and r.json() == {"wallet_fen": 100}
    assert r.headers["x-read-model-seq"] == "1"
    assert r.headers["x-request-id"] == "req-abcdef12"
    assert r.headers["content-type"] == "application/json"
    assert client.get(path, headers=_auth(7)).json() == {"wallet_fen": 100}  # from the cache
    # the writer stores a new rendering: the next read sees it (data_version changed)
    _store(queue, 7, path, {"wallet_fen": 99}, seq=2)
    r = client.get(path, headers=_auth(7))
    assert r.json() == {"wallet_fen": 99} and r.headers["x-read-model-seq"] == "2"
    # an unrelated commit (the writer's heartbeat) leaves the cached view as it is
    queue.beat(1, now_ms(), True, {})
    assert client.get(path, headers=_auth(7)).json() == {"wallet_fen": 99}
    assert queue.max_seq() == 2  # where a restarted writer counts on from
    # the query is part of the view's key
    _store(queue, 7, "/api/v1/users/7/statement?limit=5", {"items": [1]}, seq=3)
    assert client.get("/api/v1/users/7/statement?limit=5", headers=_auth(7)).json() == {
        "items": [1]
    }


def test_each_viewer_only_their_own_views(worker: tuple[TestClient, Queue]) -> None:
    client, queue = worker
    path = "/api/v1/users/7/wallet"
    _store(queue, 7, path, {"wallet_fen": 100}, seq=1)
    assert client.get(path, headers=_auth(7)).status_code == 200
    # user 8 asks for user 7's wallet: no view rendered for 8, so the platform would be asked
    # (absent here): never user 7's bytes
    r = client.get(path, headers=_auth(8))
    assert r.status_code == 503 and "wallet_fen" not in r.text
    r = client.get(path)  # anonymous
    assert r.status_code == 503 and "wallet_fen" not in r.text
    bad = {"Authorization": "Bearer " + issue_token(_user(7), "x" * 40)}  # another secret
    r = client.get(path, headers=bad)
    assert "wallet_fen" not in r.text


def test_expired_token_not_served_from_cache(worker: tuple[TestClient, Queue]) -> None:
    client, queue = worker
    path = "/api/v1/users/7/wallet"
    _store(queue, 7, path, {"wallet_fen": 100}, seq=1)
    h = _auth(7, ttl_s=1)
    assert client.get(path, headers=h).status_code == 200
    time.sleep(2.1)  # the token (and the worker's memory of it) expired
    r = client.get(path, headers=h)
    assert r.status_code == 503 and "wallet_fen" not in r.text


def test_reads_reported_and_idle_views_evicted(
    worker: tuple[TestClient, Queue], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway, "TOUCH_EVERY_S", 0.05)
    client, queue = worker
    read, idle = "/api/v1/users/7/wallet", "/api/v1/users/7/statement"
    _store(queue, 7, read, {"wallet_fen": 100}, seq=1)
    _store(queue, 7, idle, {"items": []}, seq=2)
    t0 = now_ms()
    assert client.get(read, headers=_auth(7)).status_code == 200

    def read_at() -> dict[str, int | None]:
        with queue.engine.connect() as conn:
            rows = conn.execute(sa.select(read_models.c.path, read_models.c.read_at_ms)).all()
        return {str(r[0]): r[1] for r in rows}

    deadline = time.monotonic() + 10
    while read_at()[read] is None and time.monotonic() < deadline:
        client.get("/healthz")  # the worker's loop runs its report
        time.sleep(0.05)
    assert (read_at()[read] or 0) >= t0 and read_at()[idle] is None
    assert queue.evict(t0) == [(7, idle)]  # never read: gone; the one read stays
    assert set(read_at()) == {read}
    r = client.get(idle, headers=_auth(7))  # rendered again on its next read (no platform)
    assert r.status_code == 503 and "items" not in r.text


def test_waiting_worker_wakes_on_the_writers_commit(worker: tuple[TestClient, Queue]) -> None:
    """A command the platform has not run answers 202 (its row stays queued); once the
    writer stores its response, the same key answers it at once, and a request waiting on a
    row is woken by the writer's commit."""
    client, queue = worker
    path = "/api/v1/users/7/withdrawals"
    h = {**_auth(7), "Idempotency-Key": "wake-up-key-0001"}
    r = client.post(path, json={"amount_fen": 1}, headers=h)
    assert r.status_code == 202, r.text
    row_id = r.json()["command_id"]
    queue.finish(row_id, "done", 200, {"headers": [["content-type", "application/json"]],
                                       "body": '{"wallet_fen": 41}'})  # fmt: skip
    r = client.post(path, json={"amount_fen": 1}, headers=h)  # already finished: no wait
    assert r.status_code == 200 and r.json() == {"wallet_fen": 41}
    assert r.headers["idempotent-replayed"] == "true"
    # a new command, finished by "the writer" while the worker waits (wait_s is 1 s)
    h2 = {**_auth(7), "Idempotency-Key": "wake-up-key-0002"}

    def finish_soon() -> None:  # the writer's part: finish the row once it is queued
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with queue.engine.connect() as conn:
                found = conn.execute(
                    sa.select(commands.c.id).where(commands.c.key == "wake-up-key-0002")
                ).first()
            if found is not None:
                queue.finish(int(found[0]), "done", 201, {"headers": [], "body": '{"n": 2}'})
                return
            time.sleep(0.01)

    t = threading.Thread(target=finish_soon)
    t.start()
    r = client.post(path, json={"amount_fen": 1}, headers=h2)
    t.join()
    assert r.status_code == 201 and r.json() == {"n": 2}


def test_a_command_is_queued_by_the_outermost_layer(
    worker: tuple[TestClient, Queue], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write to a platform endpoint is queued and answered by `FastReads._write` (not the
    application's middleware), as the middleware would: the client's request id (in the row
    the platform runs and in the answer), the same key with another body refused 422 (typed),
    a failed row queued again by its retry; OPTIONS and local endpoints still go through the
    application."""
    client, queue = worker
    seen: list[str] = []
    real = FastReads._write

    async def spy(self: FastReads, scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await real(self, scope, receive, send)

    monkeypatch.setattr(FastReads, "_write", spy)
    path = "/api/v1/users/7/withdrawals"
    h = {**_auth(7), "Idempotency-Key": "fast-write-key-01", "X-Request-ID": "req-fastwrite1"}
    r = client.post(path, json={"amount_fen": 3}, headers=h)
    assert r.status_code == 202 and r.headers["x-request-id"] == "req-fastwrite1"
    assert len(seen) == 1
    row = queue.get(r.json()["command_id"])
    assert row is not None and row.state == "queued" and row.client_key and row.owner_id == 7
    assert ["x-request-id", "req-fastwrite1"] in row.payload["headers"]
    assert bytes.fromhex(row.payload["body_hex"]) == b'{"amount_fen":3}'
    # the same key, another body: the typed refusal, with a request id of its own
    r = client.post(path, json={"amount_fen": 4}, headers={**h, "X-Request-ID": "bad id"})
    assert r.status_code == 422 and r.json()["error"] == "idempotency_key_reused"
    rid = r.headers["x-request-id"]
    assert len(rid) == 32 and rid != "bad id"
    # a failed row: its retry queues it again (the same row)
    queue.finish(row.id, "failed", 503, {"headers": [], "body": "{}"})
    r = client.post(path, json={"amount_fen": 3}, headers=h)
    assert r.status_code == 202 and r.json()["command_id"] == row.id
    again = queue.get(row.id)
    assert again is not None and again.state == "queued"
    # OPTIONS is the application's (its middleware answers), not a command
    n = len(seen)
    r = client.options(path)
    assert r.status_code == 204 and "POST" in r.headers["allow"] and len(seen) == n
    assert queue.counts() == {"queued": 1}


def test_the_queues_plain_sqlite_paths(tmp_path: Path) -> None:
    """The queue's writes on its own sqlite3 connections (enqueue, claim, answers and views)
    keep the semantics of the engine's: the same key answers its row; a claim takes the rows
    from the head up to the first one `only` refuses, marks them running once; the answers
    and the views (inserted, then updated) commit together."""
    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET)  # type: ignore[call-arg]
    queue = Queue(engine_from_settings(settings))
    queue.create_schema()
    ids = [queue.enqueue(owner_id=7, key=f"plain-key-{i:04d}", kind="write",
                         payload={"path": f"/p/{i}"}, req_hash=f"h{i}")[0]
           for i in range(3)]  # fmt: skip
    assert queue.enqueue(owner_id=7, key="plain-key-0001", kind="write",
                         payload={"path": "/p/1"}, req_hash="h1") == (ids[1], True)  # fmt: skip
    with pytest.raises(IdempotencyKeyMismatch):
        queue.enqueue(owner_id=7, key="plain-key-0001", kind="write", payload={}, req_hash="x")
    rows = queue.claim(16, only=lambda kind, p: p["path"] != "/p/1")
    assert [(r.id, r.state, r.attempts) for r in rows] == [(ids[0], "running", 1)]
    assert queue.claim(16, only=lambda kind, p: p["path"] != "/p/1") == []
    rows = queue.claim(16)
    assert [(r.id, r.attempts) for r in rows] == [(ids[1], 1), (ids[2], 1)]
    doc = {"viewer_id": 7, "path": "/v", "kind": "/v", "status_code": 200, "headers": "[]",
           "body": b"one", "seq": 1, "rendered_at_ms": now_ms()}  # fmt: skip
    queue.finish_many([(ids[0], "done", 200, {"headers": [], "body": "a"})], [doc])
    queue.finish_many([(ids[1], "failed", 503, {"headers": [], "body": "b"})],
                      [{**doc, "body": b"two", "seq": 2}])  # fmt: skip
    found = queue.results(ids)
    assert {i: (r.state, r.status_code, r.result) for i, r in found.items()} == {
        ids[0]: ("done", 200, {"headers": [], "body": "a"}),
        ids[1]: ("failed", 503, {"headers": [], "body": "b"}),
    }
    got = queue.doc_fast(7, "/v")
    assert got is not None and (got.body, got.seq) == (b"two", 2)
    assert queue.doc_keys({7}) == [(7, "/v", "/v")] and queue.doc_keys({8}) == []
    assert queue.counts() == {"done": 1, "failed": 1, "running": 1}
