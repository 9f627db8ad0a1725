"""Contract fixtures: the whole asset/identity/oracle system deployed once per session with
titanoboa; every test runs inside an anchor so its state changes are rolled back."""

from __future__ import annotations

from collections.abc import Iterator

import boa
import pytest
from contract_system import System, deploy_system


@pytest.fixture(scope="session")
def system() -> System:
    return deploy_system()


@pytest.fixture(autouse=True)
def _rollback(system: System) -> Iterator[None]:
    with boa.env.anchor():
        yield
