"""Idempotency-Key on money-moving POSTs: first response stored and replayed, a different body
refused, a missing or malformed key refused, a command cut short resumed by its retry."""

from __future__ import annotations

import time

from api_world import World

API = "/api/v1"


def _sub(world: World, key: str, amount_fen: int, user: str = "investor1"):  # type: ignore[no-untyped-def]
    uid = world.uid(user)
    headers = {**world.h(user), "Idempotency-Key": key}
    return world.client.post(
        f"{API}/investors/{uid}/subscriptions",
        json={"tranche": "senior", "amount_fen": amount_fen},
        headers=headers,
    )


def test_retry_replays_the_first_response_and_moves_money_once(world: World) -> None:
    uid = world.uid("investor1")
    before = world.state.platform.wallet_fen(uid)
    first = _sub(world, "retry-key-0001", 70_000)
    again = _sub(world, "retry-key-0001", 70_000)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert world.state.platform.wallet_fen(uid) == before - 70_000  # reserved once
    held = world.state.platform.holdings(uid)
    assert [q["amount"] for q in held["queued"] if q["kind"] == "subscribe"] == [70_000]


def test_same_key_with_another_body_is_refused(world: World) -> None:
    assert _sub(world, "reuse-key-0001", 10_000).status_code == 201
    r = _sub(world, "reuse-key-0001", 20_000)
    assert r.status_code == 422
    assert r.json()["error"] == "idempotency_key_reused"
    assert "different request" in r.json()["message"]


def test_same_key_on_another_endpoint_is_refused(world: World) -> None:
    uid = world.uid("investor1")
    assert _sub(world, "cross-key-0001", 10_000).status_code == 201
    r = world.client.post(
        f"{API}/users/{uid}/withdrawals",
        json={"amount_fen": 10_000},
        headers={**world.h("investor1"), "Idempotency-Key": "cross-key-0001"},
    )
    assert r.status_code == 422 and r.json()["details"]["original_path"].endswith("subscriptions")


def test_keys_are_per_user(world: World) -> None:
    a = _sub(world, "shared-key-0001", 10_000, "investor1")
    b = _sub(world, "shared-key-0001", 10_000, "investor2")
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


def test_missing_or_malformed_key_is_a_422(world: World) -> None:
    uid = world.uid("investor1")
    url = f"{API}/investors/{uid}/subscriptions"
    body = {"tranche": "senior", "amount_fen": 1}
    r = world.client.post(url, json=body, headers=world.h("investor1"))
    assert r.status_code == 422 and "Idempotency-Key" in r.text
    r = world.client.post(url, json=body, headers={**world.h("investor1"), "Idempotency-Key": "x"})
    assert r.status_code == 422 and r.json()["details"]["header"] == "Idempotency-Key"


def test_a_refusal_is_stored_and_replayed_too(world: World) -> None:
    uid = world.uid("investor1")
    too_much = world.state.platform.wallet_fen(uid) + 1
    first = _sub(world, "refused-key-0001", too_much)
    assert first.status_code == 422 and "insufficient" in first.json()["message"]
    # money arrives, but the retry with the same key still answers the stored refusal
    world.state.platform.deposit(uid, 10**9, "LATE-FUNDS-1")
    again = _sub(world, "refused-key-0001", too_much)
    assert again.status_code == 422 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_a_command_left_running_by_a_crash_is_resumed_once(world: World) -> None:
    """A key whose first attempt died before its result was stored: the retry completes the
    same command (here nothing had reached the chain yet) and later retries replay it."""
    from crowdleverage.api.idempotency import request_hash
    from crowdleverage.api.schemas import SubscribeIn
    from crowdleverage.flows.commands import commands

    uid = world.uid("investor1")
    path = f"{API}/investors/{uid}/subscriptions"
    with world.state.engine.begin() as conn:
        conn.execute(
            commands.insert().values(
                owner_id=uid, key="crashed-key-01", path=path, state="running", progress="{}",
                created_at_s=int(time.time()),
                request_hash=request_hash(
                    "POST", path, SubscribeIn(tranche="senior", amount_fen=5)
                ),
            )
        )  # fmt: skip
    before = world.state.platform.wallet_fen(uid)
    r = _sub(world, "crashed-key-01", 5)
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    again = _sub(world, "crashed-key-01", 5)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert world.state.platform.wallet_fen(uid) == before - 5


def test_an_unexpected_failure_after_the_chain_call_is_completed_by_the_retry(
    world: World,
) -> None:
    """A 500 after the subscription reached the chain: the key is kept, the retry finishes
    the same command without subscribing again (the chain's event is its witness)."""
    p = world.state.platform
    original = p._after
    calls = {"n": 0}

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database connection dropped")
        return original(*args, **kwargs)

    p._after = flaky  # type: ignore[method-assign]
    try:
        from fastapi.testclient import TestClient

        client = TestClient(world.client.app, raise_server_exceptions=False)
        uid = world.uid("investor1")
        before = p.wallet_fen(uid)
        hdr = {**world.h("investor1"), "Idempotency-Key": "flaky-key-0001"}
        body = {"tranche": "senior", "amount_fen": 3_000}
        url = f"{API}/investors/{uid}/subscriptions"
        first = client.post(url, json=body, headers=hdr)
        assert first.status_code == 500 and first.json()["error"] == "internal_error"
        assert "RuntimeError" not in first.text
        r = client.post(url, json=body, headers=hdr)
        assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers
        assert p.wallet_fen(uid) == before - 3_000  # subscribed once
        lines = [x for x in p.history[uid] if x["kind"] == "subscription_requested"]
        assert [x["amount_fen"] for x in lines].count(-3_000) == 1
    finally:
        p._after = original  # type: ignore[method-assign]
