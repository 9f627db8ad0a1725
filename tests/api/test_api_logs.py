"""Structured logs (issue 14): JSON lines with the request id and the command key, one event
per command, no secrets; the demo's replay driver reports each replayed trading day."""

from __future__ import annotations

import io
import json
import logging
import time

from api_world import World

from crowdleverage.api import demo
from crowdleverage.api.logs import JsonLines
from crowdleverage.api.serve import ReplayDriver

API = "/api/v1"


def test_a_command_logs_one_json_line_with_its_key_and_request_id(world: World) -> None:
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonLines())
    root = logging.getLogger("crowdleverage")
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        uid = world.uid("investor1")
        headers = {**world.h("investor1"), "Idempotency-Key": "log-key-000001",
                   "X-Request-ID": "req-abc-000001"}  # fmt: skip
        for _ in range(2):  # the first runs, the retry is replayed
            r = world.client.post(f"{API}/users/{uid}/withdrawals", json={"amount_fen": 1},
                                  headers=headers)  # fmt: skip
            assert r.status_code == 200 and r.headers["X-Request-ID"] == "req-abc-000001"
        login = {"username": "investor2", "password": demo.password("investor2")}
        assert world.client.post(f"{API}/auth/token", data=login).status_code == 200
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    lines = [json.loads(x) for x in sink.getvalue().splitlines()]
    commands = [x for x in lines if x.get("event") == "command"]
    assert [c["outcome"] for c in commands] == ["done", "replayed"]
    assert all(c["key"] == "log-key-000001" and c["request_id"] == "req-abc-000001"
               and c["owner_id"] == uid for c in commands)  # fmt: skip
    assert commands[0]["status"] == 200 and commands[0]["ms"] >= 0
    assert demo.password("investor2") not in sink.getvalue()


def test_the_replay_driver_reports_each_replayed_day(world: World) -> None:
    lines: list[str] = []
    driver = ReplayDriver(world.state.platform, 0.05, progress=lines.append)
    first = world.state.platform.market.today.isoformat()
    driver.start()
    try:
        deadline = time.monotonic() + 120  # a condition, with a generous limit
        while not lines and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        driver.stop.set()
        driver.join(timeout=60)
    assert lines and lines[0].startswith(f"replayed {first}  (day 1;"), lines
