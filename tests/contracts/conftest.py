"""Contract fixtures: the whole asset/identity/oracle system deployed once per session in a
private titanoboa environment; every test runs with that environment swapped in and inside an
anchor, so its state changes are rolled back and other test directories' use of the global
`boa.env` cannot leak into these tests (or the other way round)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boa
import pytest
from boa.environment import Env
from contract_system import System, deploy_system


@pytest.fixture(scope="session")
def contracts_env() -> Any:
    return Env()


@pytest.fixture(scope="session")
def system(contracts_env: Any) -> System:
    with boa.swap_env(contracts_env):
        return deploy_system()


@pytest.fixture(autouse=True)
def _rollback(system: System, contracts_env: Any) -> Iterator[None]:
    with boa.swap_env(contracts_env), contracts_env.anchor():
        yield
