"""Security fixes of issue 14: strict integer amounts, bounded JWTs, login back-off per address
and per (username, address), bounded strings, a private data dir, a typed error for a body
that is not UTF-8, no exception class names in answers, OPTIONS with the real methods."""

from __future__ import annotations

import os
import stat
import time

import jwt
import sqlalchemy as sa
from api_world import World
from fastapi.testclient import TestClient

from crowdleverage.api import demo, store
from crowdleverage.api.security import LOGIN_MAX_BACKOFF_S, issue_token

API = "/api/v1"


def _withdraw(world: World, raw_body: str, user: str = "investor1") -> tuple[int, dict]:  # type: ignore[type-arg]
    uid = world.uid(user)
    r = world.client.post(
        f"{API}/users/{uid}/withdrawals",
        content=raw_body.encode(),
        headers={**world.h(user, key=True), "Content-Type": "application/json"},
    )
    return r.status_code, r.json()


AMOUNTS = ['"1_0"', '"1"', '" 1 "', "1.0", "true", "false", '"10"', "1e1", "null"]


def test_amounts_are_strict_json_integers(world: World) -> None:
    uid = world.uid("investor1")
    before = world.state.platform.wallet_fen(uid)
    for amount in AMOUNTS:
        status, body = _withdraw(world, f'{{"amount_fen": {amount}}}')
        assert status == 422, (amount, body)
        assert body["error"] == "invalid_input"
        assert body["details"]["fields"][0]["field"] == "amount_fen"
    assert world.state.platform.wallet_fen(uid) == before
    status, body = _withdraw(world, '{"amount_fen": 10}')  # an integer still moves that much
    assert status == 200, body
    assert world.state.platform.wallet_fen(uid) == before - 10


def _token(world: World, **claims: object) -> str:
    now = int(time.time())
    base: dict[str, object] = {"sub": str(world.uid("investor1")), "role": "investor",
                               "iat": now, "exp": now + 600}  # fmt: skip
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, "t" * 40, "HS256")


BAD_CLAIMS: list[dict[str, object]] = [
    {"sub": str(2**70)},  # beyond every backend's integer
    {"sub": "0"},
    {"sub": "-3"},
    {"sub": "１"},  # a full-width digit: int() would accept it
    {"sub": 5},  # not a string
    {"exp": 10**300},
    {"exp": int(time.time()) + 10 * 86_400},  # longer than the platform issues
    {"iat": None},
    {"iat": int(time.time()) + 86_400, "exp": int(time.time()) + 86_400 + 60},
]


def test_tokens_outside_the_platform_limits_answer_401(world: World) -> None:
    for claims in BAD_CLAIMS:
        bearer = {"Authorization": f"Bearer {_token(world, **claims)}"}
        r = world.client.get(f"{API}/me", headers=bearer)
        assert r.status_code == 401, (claims, r.text)
        assert r.json()["error"] == "unauthorized"
        assert "Error" not in r.json()["message"]  # no exception class names
    # a well-formed token, and the platform's own, are accepted
    r = world.client.get(f"{API}/me", headers={"Authorization": f"Bearer {_token(world)}"})
    assert r.status_code == 200 and r.json()["id"] == world.uid("investor1")
    user = world.state.users.get(world.uid("investor1"))
    ok = issue_token(user, "t" * 40)
    r = world.client.get(f"{API}/me", headers={"Authorization": f"Bearer {ok}"})
    assert r.status_code == 200


def _client(world: World, address: str) -> TestClient:
    return TestClient(world.client.app, client=(address, 40000))


def _login(c: TestClient, username: str, password: str) -> int:
    r = c.post(f"{API}/auth/token", data={"username": username, "password": password})
    if r.status_code == 429:
        assert int(r.headers["Retry-After"]) <= LOGIN_MAX_BACKOFF_S
        assert r.json()["error"] == "rate_limited"
    return r.status_code


def test_failures_back_off_the_address_but_not_the_user_from_a_new_address(world: World) -> None:
    attacker, user = _client(world, "10.9.9.9"), _client(world, "10.1.1.1")
    codes = [_login(attacker, "borrower1", "wrong-password") for _ in range(8)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    # the right password from the attacker's address waits too (it cannot be tested there) …
    assert _login(attacker, "borrower1", demo.password("borrower1")) == 429
    # … but the real user from their own address logs in at once
    assert _login(user, "borrower1", demo.password("borrower1")) == 200


def test_one_address_trying_many_usernames_is_slowed_down(world: World) -> None:
    c = _client(world, "10.7.7.7")
    names = [f"nobody{i:03d}" for i in range(14)]
    codes = [_login(c, n, "wrong-password") for n in names]
    assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}
    # another address is not affected
    assert _login(_client(world, "10.7.7.8"), "nobody999", "wrong-password") == 401


def test_the_back_off_is_short_and_expires(world: World) -> None:
    """Six failures ten seconds ago: the back-off (4 s after the fifth, 8 s after the sixth)
    is over and the right password works from the same address; 60 failures wait at most
    LOGIN_MAX_BACKOFF_S."""
    now = int(time.time())
    with world.state.engine.begin() as conn:
        for _ in range(6):
            conn.execute(store.login_failures.insert().values(
                username="investor1", client="10.2.2.2", at_s=now - 10))  # fmt: skip
    c = _client(world, "10.2.2.2")
    assert _login(c, "investor1", demo.password("investor1")) == 200
    with world.state.engine.begin() as conn:  # a success cleared the pair's failures
        left = conn.execute(sa.select(sa.func.count()).select_from(store.login_failures).where(
            store.login_failures.c.client == "10.2.2.2")).scalar_one()  # fmt: skip
        assert left == 0
        for _ in range(60):
            conn.execute(store.login_failures.insert().values(
                username="investor2", client="10.3.3.3", at_s=now))  # fmt: skip
    r = _client(world, "10.3.3.3").post(
        f"{API}/auth/token", data={"username": "investor2", "password": "x" * 9}
    )
    assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= LOGIN_MAX_BACKOFF_S


def test_oversized_login_fields_are_refused_before_storage(world: World) -> None:
    c = _client(world, "10.4.4.4")
    assert _login(c, "u" * 10_000, "wrong-password") == 401
    assert _login(c, "investor1", "p" * 100_000) == 401
    with world.state.engine.connect() as conn:
        longest = conn.execute(
            sa.select(sa.func.max(sa.func.length(store.login_failures.c.username)))
        ).scalar()
    assert longest is None or longest <= 64
    r = world.client.post(f"{API}/auth/register", json={
        "username": "ok_name", "password": "long-enough", "display_name": "d" * 500,
        "role": "investor"})  # fmt: skip
    assert r.status_code == 422


def test_data_dir_files_are_private(world: World) -> None:
    world.client.post(f"{API}/auth/token", data={"username": "x" * 5, "password": "y" * 9})
    data_dir = world.state.settings.data_dir
    seen = 0
    for root, _dirs, files in os.walk(data_dir):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700, root
        for f in files:
            path = os.path.join(root, f)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
            seen += 1
    assert seen >= 3  # the database, the JWT secret, the audit key at least


def test_a_body_that_is_not_utf8_gets_the_typed_error(world: World) -> None:
    uid = world.uid("investor1")
    r = world.client.post(
        f"{API}/users/{uid}/withdrawals",
        content=b'{"amount_fen": 1, "x": "\xff\xfe"}',
        headers={**world.h("investor1", key=True), "Content-Type": "application/json"},
    )
    assert 400 <= r.status_code < 500
    body = r.json()
    assert set(body) == {"error", "message", "details"} and body["error"] in (
        "bad_request",
        "invalid_input",
    )
    assert "Error" not in body["message"]


def test_options_answers_the_real_methods(world: World) -> None:
    r = world.client.options(f"{API}/users")
    assert r.status_code == 204
    assert r.headers["Allow"] == "GET, OPTIONS, POST"
    uid = world.uid("investor1")
    r = world.client.options(f"{API}/users/{uid}/wallet")
    assert r.status_code == 204 and r.headers["Allow"] == "GET, OPTIONS"
    assert world.client.options(f"{API}/no/such/route").status_code == 404
