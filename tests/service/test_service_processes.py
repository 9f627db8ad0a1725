"""`crowdlev serve` as separate processes under 64 concurrent clients with retries while the
platform process and API workers are SIGKILLed: no 5xx, exactly-once for every acknowledged
command, at-most-once for the others, and custody, chain, statements and read models agree.

The default run kills an API worker and then the platform process once each (clients run
until 3 s after the platform is back); CROWDLEV_LONG=1 kills each four times."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from service_world import (
    Clients,
    Serve,
    check_exactly_once,
    drive,
    quiescent,
    settle,
    wait_for,
)

from crowdleverage.config import Settings

LONG = os.environ.get("CROWDLEV_LONG") == "1"
SECRET = "s" * 40


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[str]:
    """A fresh database on the test server (the platform's tables are created by name, so a
    database of its own rather than a schema)."""
    name = f"svc_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = pg_url.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def _run(tmp_path: Path, database_url: str | None, kills: list[str], every_s: float) -> None:
    data_dir = tmp_path / "data"
    serve = Serve(data_dir, database_url)
    try:
        wait_for(serve.writer_up, "the platform process")
        cl = Clients(serve)
        load = drive(serve, cl, uuid.uuid4().hex[:6], clients=64, kills=kills, every_s=every_s)
        print(f"\nstatuses {dict(load.statuses)}  kills {dict(load.kills)}  "
              f"transport errors {load.transport_errors}  commands {len(load.ops)}")  # fmt: skip
        assert load.kills["platform"] >= 1 and load.kills["api_worker"] >= 1, load.kills
        bad = {s: n for s, n in load.statuses.items() if s >= 500}
        assert not bad, f"5xx answers: {bad}"
        assert sum(n for s, n in load.statuses.items() if s < 300) > 50, load.statuses
        wait_for(lambda: quiescent(serve), "the queue drained and the views re-rendered")
        tally = check_exactly_once(serve, cl, load)
        print(f"exactly-once: {tally}")
        # the unacknowledged ones, sent again with their keys, complete exactly once
        n = settle(cl, load)
        wait_for(lambda: quiescent(serve), "the queue drained again")
        tally = check_exactly_once(serve, cl, load)
        assert "unacknowledged" not in tally, tally
        print(f"after retrying {n} unacknowledged: {tally}")
        bad = {s: n for s, n in load.statuses.items() if s >= 500}
        assert not bad, f"5xx answers: {bad}"
    finally:
        serve.stop()
    _reconcile(Path(serve.facts["data_dir"]), database_url, cl)


def _reconcile(data_dir: Path, database_url: str | None, cl: Clients) -> None:
    """After a clean stop: the platform record reconciles custody with the chain, and every
    stored read model of a wallet, statement and margin account equals what the platform's
    own endpoints answer now."""
    from crowdleverage.api.app import create_app
    from crowdleverage.api.security import UserStore, issue_token
    from crowdleverage.flows.platform import Platform
    from crowdleverage.service.queue import Queue, read_models

    settings = Settings(data_dir=data_dir, database_url=database_url,  # type: ignore[arg-type]
                        jwt_secret=SECRET)  # fmt: skip
    # the same market start as the served platform (it picks the watched universe)
    platform = Platform(settings, market_start=dt.date(2015, 12, 28))
    try:
        rep = platform.reconcile()
        assert rep["status"] == "ok", rep
        app = create_app(settings, platform=platform, engine=platform.engine)
        users = UserStore(platform.engine)
        with Queue(platform.engine).engine.connect() as conn:  # queue.db on SQLite
            docs = conn.execute(sa.select(read_models)).all()
        checked = 0
        with TestClient(app) as client:
            for d in docs:
                if d.viewer_id == 0 or not d.path.startswith("/api/v1/"):
                    continue
                kind = d.kind
                if not (kind.endswith("/wallet") or "/statement" in kind
                        or kind == "/api/v1/margin-accounts/{id}"):  # fmt: skip
                    continue
                token = issue_token(users.get(d.viewer_id), SECRET)
                path, _, query = d.path.partition("?")
                r = client.get(path + (f"?{query}" if query else ""),
                               headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                assert r.status_code == d.status_code, (d.path, r.text)
                stored, now = json.loads(d.body), r.json()
                if kind == "/api/v1/margin-accounts/{id}":  # prices move with the replay step
                    fields = ("cash_fen", "reserve_fen", "pending_fen", "debt_fen")
                    stored = {f: stored[f] for f in fields}
                    now = {f: now[f] for f in fields}
                assert stored == now, f"read model {d.path} of viewer {d.viewer_id} differs"
                checked += 1
        assert checked >= len(cl.ids) - 1, checked  # every holder's wallet at least
    finally:
        platform.close()
        platform.engine.dispose()


KILLS = ["api_worker", "platform"] * (4 if LONG else 1)


def test_serve_sqlite_64_clients_with_kills(tmp_path: Path) -> None:
    _run(tmp_path, None, KILLS, every_s=10 if LONG else 3)


def test_serve_postgresql_64_clients_with_kills(tmp_path: Path, pg_database: str) -> None:
    _run(tmp_path, pg_database, KILLS, every_s=10 if LONG else 3)
