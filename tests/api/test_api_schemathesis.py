"""Property-based API testing from the OpenAPI schema (schemathesis, in process over ASGI):
every operation, generated valid and invalid inputs, each role's token; never a server error,
and every refusal in the typed-error shape. Run against the application with the platform in
process and against an API worker's application in front of the platform's writer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from api_world import WORLD_KINDS, SplitWorld, World, make_world_of
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from crowdleverage.market.bars import Bar

MAX_EXAMPLES = 200 if os.environ.get("CROWDLEV_LONG") == "1" else 15

# which demo user calls which part of the API (the others would mostly be refused with 403)
ROLE_BY_PREFIX = [
    ("/api/v1/investors", "investor1"),
    ("/api/v1/users/{user_id}", "investor1"),
    ("/api/v1/margin-accounts", "borrower1"),
    ("/api/v1/custody", "custodian"),
    ("/api/v1/compliance", "compliance"),
    ("/api/v1/audit", "auditor"),
    ("/api/v1/broker", "broker"),
]


@pytest.fixture(scope="module", params=WORLD_KINDS)
def sworld(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    market_bars: list[Bar],
) -> Iterator[World]:
    """The platform in process, and the split service's code paths (`api_world.SplitWorld`:
    an API worker's application, the platform's writer running the command queue)."""
    tmp = tmp_path_factory.mktemp(f"schemathesis-{request.param}")
    w = make_world_of(request.param, tmp, market_bars, trade=True)
    yield w
    if isinstance(w, SplitWorld):
        assert w.writer.done > 0  # the worker queued the platform's requests
    w.close()


def _operations(w: World) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", w.client.app)
    # the SSE stream never ends by design (max_events=0); it has its own tests
    schema = schema.exclude(path_regex=r"/risk/stream$")
    return [result.ok() for result in schema.get_all_operations()]


def _runner(sworld: World, operation: Any) -> Any:
    path = operation.path
    user = next((u for prefix, u in ROLE_BY_PREFIX if path.startswith(prefix)), "operator")

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: Any) -> None:
        headers = {"Authorization": f"Bearer {sworld.login(user)}"}
        response = case.call_and_validate(headers=headers, checks=[not_a_server_error], timeout=60)
        if sworld.state.platform.paused_reason is not None:
            sworld.state.platform.resume()
        if response.status_code >= 400:
            body = response.json()
            assert {"error", "message"} <= set(body), body

    return run


def test_api_never_errors(sworld: World) -> None:
    """Each operation gets MAX_EXAMPLES generated requests (positive and negative data)."""
    operations = _operations(sworld)
    assert len(operations) >= 30
    # every role logs in before the fuzzing: the fuzzed /auth/token sends wrong passwords from
    # this client's address, whose back-off would then refuse the harness's own first login
    for user in {u for _, u in ROLE_BY_PREFIX} | {"operator"}:
        sworld.login(user)
    failures: list[str] = []
    for operation in operations:
        try:
            _runner(sworld, operation)()
        except Exception as exc:  # collect every operation's failure, then report them all
            # a flaky or grouped failure carries the real ones inside: name them too
            inner = "; ".join(f"{e!r}"[:600] for e in getattr(exc, "exceptions", ()))
            failures.append(f"{operation.label}: {str(exc)[:800]} {inner}")
    assert not failures, "\n\n".join(failures)
