"""The writer's typed path for withdrawals (`api.direct`, issue 14): queued withdrawals run as
one batch without a request through the application each. It must answer exactly what the
endpoint answers: a request it takes is one the endpoint accepts (same response body, status
and headers, same audit entry, same command record), and every request the endpoint refuses
is left to the endpoint (`prepare` answers None; the writer sends it through the application).

In process: the demo world on the embedded chain and SQLite, the writer fed through its queue."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from service_world import WriterWorld

from crowdleverage.api import direct
from crowdleverage.api.security import issue_token
from crowdleverage.service.queue import Row, request_hash


class World(WriterWorld):
    def user(self, name: str) -> Any:
        return self.st.users.find(name)

    def token(self, name: str) -> str:
        return issue_token(self.user(name), self.st.secret, ttl_s=600)

    def request(
        self,
        who: str,
        body: Any = None,
        *,
        user_id: int | None = None,
        key: str | None = "auto",
        headers: list[tuple[str, str]] | None = None,
        raw: bytes | None = None,
    ) -> dict[str, Any]:
        """A queued write's payload as an API worker stores it."""
        self.n += 1
        uid = user_id if user_id is not None else self.user(who).id
        data = raw if raw is not None else json.dumps(body if body is not None else
                                                      {"amount_fen": 1}).encode()  # fmt: skip
        h = [("host", "x"), ("content-type", "application/json"),
             ("x-request-id", f"rid-direct-{self.n:06d}")]  # fmt: skip
        if who:
            h.append(("authorization", f"Bearer {self.token(who)}"))
        if key == "auto":
            key = f"direct-{os.getpid()}-{self.n:06d}"
        if key is not None:
            h.append(("idempotency-key", key))
        h += headers or []
        return {
            "method": "POST",
            "path": f"/api/v1/users/{uid}/withdrawals",
            "query": "",
            "headers": [list(x) for x in h],
            "body_hex": data.hex(),
            "client": "127.0.0.1",
        }

    def enqueue(self, owner: str, payload: dict[str, Any]) -> int:
        key = next((v for k, v in payload["headers"] if k == "idempotency-key"), None)
        body = bytes.fromhex(payload["body_hex"])
        row_id, _ = self.queue.enqueue(
            owner_id=self.user(owner).id if owner else 0, key=key, kind="write",
            payload=payload, req_hash=request_hash("POST", payload["path"], "", body),
        )  # fmt: skip
        return row_id

    def run_all(self) -> None:
        while self.queue.counts().get("queued"):
            self.writer.step()

    def via_app(self, payload: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        return self.writer._call(payload)

    def prepare(self, payload: dict[str, Any]) -> direct.Prepared | None:
        return direct.prepare(self.st, payload["method"], payload["path"],
                              [(k, v) for k, v in payload["headers"]],
                              bytes.fromhex(payload["body_hex"]))  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("direct"))
    yield w
    w.writer.close()
    w.p.close()


def _shape(answer: tuple[int, list[tuple[str, str]], bytes]) -> tuple[int, list[str], Any]:
    status, headers, body = answer
    return status, sorted(k.lower() for k, _ in headers), set(json.loads(body))


def test_a_withdrawal_answers_as_the_endpoint_does(world: World) -> None:
    """One withdrawal through the application and one through the typed path (a batch of
    one): the same status, header names, body fields, request id and command record."""
    a = world.request("investor1")
    b = world.request("investor1")
    through_app = world.via_app(a)
    prepared = world.prepare(b)
    assert prepared is not None
    [typed] = direct.run(world.st, [prepared])
    assert _shape(typed) == _shape(through_app)
    assert typed[0] == 200
    assert dict(typed[1])["x-request-id"] == dict(b["headers"])["x-request-id"]
    w_app, w_typed = json.loads(through_app[2])["wallet_fen"], json.loads(typed[2])["wallet_fen"]
    assert w_typed == w_app - 1 == world.p.wallet_fen(world.user("investor1").id)
    # the same key again: a replay of the stored answer, on both paths
    again_app, again_typed = world.via_app(b), direct.run(world.st, [world.prepare(a)])[0]  # type: ignore[list-item]
    assert json.loads(again_app[2]) == json.loads(typed[2])
    assert json.loads(again_typed[2]) == json.loads(through_app[2])
    assert ("idempotent-replayed", "true") in [(k.lower(), v) for k, v in again_typed[1]]
    assert _shape(again_typed) == _shape(again_app)
    entries = world.st.audit.page(1000, 0)[0]
    mine = [e for e in entries if e["action"] == "withdrawal"][-2:]
    assert [e["details"] for e in mine] == [{"user_id": world.user("investor1").id,
                                            "amount_fen": 1}] * 2  # fmt: skip


REFUSED = {
    "string amount": dict(body={"amount_fen": "1"}),
    "float amount": dict(body={"amount_fen": 1.0}),
    "boolean amount": dict(body={"amount_fen": True}),
    "zero amount": dict(body={"amount_fen": 0}),
    "extra field": dict(body={"amount_fen": 1, "to": "elsewhere"}),
    "not json": dict(raw=b"amount_fen=1"),
    "no key": dict(key=None),
    "bad key": dict(key="short"),
    "no token": dict(who=""),
    "bad token": dict(headers=[("authorization", "Bearer not-a-token")]),
    "staff role": dict(who="custodian"),
    "another user's wallet": dict(who="investor2"),
    "no such user": dict(user_id=2_000_000),
    "form body": dict(headers=[("content-type", "text/plain")]),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_the_endpoint_refuses_is_left_to_the_endpoint(world: World, case: str) -> None:
    """The typed path takes none of these: the application answers each with its own
    refusal (4xx), exactly as before."""
    spec: dict[str, Any] = dict(REFUSED[case])
    who = spec.pop("who", "investor1")
    user_id = world.user("investor1").id if "user_id" not in spec else spec.pop("user_id")
    if who == "investor2":
        user_id = world.user("investor1").id
    payload = world.request(who, user_id=user_id, **spec)
    if case == "bad token":  # the second authorization header would be ambiguous: replace
        payload["headers"] = [h for h in payload["headers"] if h[0] != "authorization"]
        payload["headers"].append(["authorization", "Bearer not-a-token"])
    if case == "form body":
        payload["headers"] = [h for h in payload["headers"] if h[0] != "content-type"]
        payload["headers"].append(["content-type", "text/plain"])
    assert world.prepare(payload) is None
    status, _, _ = world.via_app(payload)
    assert 400 <= status < 500, (case, status)


def test_the_writer_runs_a_queue_of_mixed_commands_in_order(world: World) -> None:
    """Withdrawals of two holders, a refused one, a replay and a key reused for another
    amount, queued together: one batch per run of withdrawals the typed path takes, the rest
    through the application, each answered as the endpoint answers, in order."""
    inv, bor = world.user("investor1").id, world.user("borrower1").id
    w_inv, w_bor = world.p.wallet_fen(inv), world.p.wallet_fen(bor)
    first = world.request("investor1", {"amount_fen": 2})
    reused = dict(first, body_hex=json.dumps({"amount_fen": 3}).encode().hex())
    payloads = [
        ("investor1", first),
        ("borrower1", world.request("borrower1", {"amount_fen": 5})),
        ("investor1", world.request("investor1", {"amount_fen": "7"})),  # refused: a string
        ("investor1", world.request("investor1", {"amount_fen": 11})),
        ("investor1", first),  # the same key and body: a replay
    ]
    ids = [world.enqueue(o, p) for o, p in payloads]
    with pytest.raises(Exception, match="different request"):
        world.enqueue("investor1", reused)  # the queue refuses the reused key at once
    world.run_all()
    rows: dict[int, Row] = world.queue.results(ids)
    got = [(rows[i].status_code, json.loads(rows[i].result["body"])) for i in ids]  # type: ignore[index]
    assert got[0] == (200, {"user_id": inv, "wallet_fen": w_inv - 2})
    assert got[1] == (200, {"user_id": bor, "wallet_fen": w_bor - 5})
    assert got[2][0] == 422 and got[2][1]["error"] == "invalid_input"
    assert got[3] == (200, {"user_id": inv, "wallet_fen": w_inv - 13})
    assert ids[4] == ids[0]  # the same key names the same queued command
    assert world.p.wallet_fen(inv) == w_inv - 13 and world.p.wallet_fen(bor) == w_bor - 5
    assert world.p.reconcile()["status"] == "ok"


def test_a_batch_of_withdrawals_commits_twice(
    world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six queued withdrawals of three holders: one barrier for their recovery points, one
    commit for their results (one command at a time: a barrier each, then the commit). Each
    command logs one line with its key and its request id. The group's time slice is spent
    at once (as six withdrawals on a loaded machine may spend it): the batch's rows, already
    run, are still finished in its group — not run again in a second one as replays."""
    from crowdleverage.service import writer as writer_module

    monkeypatch.setattr(writer_module, "GROUP_SLICE_S", 0.0)
    names = ["investor1", "investor2", "borrower1"] * 2
    payloads = [world.request(n, {"amount_fen": 1}) for n in names]
    ids = [world.enqueue(n, p) for n, p in zip(names, payloads, strict=True)]
    commits0 = world.writer.commits
    with caplog.at_level(logging.INFO, logger="crowdleverage.flows"):
        world.run_all()
    rows = world.queue.results(ids)
    assert [rows[i].status_code for i in ids] == [200] * 6
    assert world.writer.commits - commits0 == 2
    done = [r for r in caplog.records if getattr(r, "outcome", None) == "done"]
    want = [(dict(p["headers"])["idempotency-key"], dict(p["headers"])["x-request-id"])
            for p in payloads]  # fmt: skip
    assert [(r.key, r.request_id) for r in done] == want  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.getMessage() == "command replayed"]
