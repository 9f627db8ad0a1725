"""Shared fixtures. Services the tests need are started by scripts/services.sh (make test);
under CI (CI=true) a missing service is a failure, never a skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DATA = PROJECT_ROOT / "data"


def require_service(name: str, reason: str) -> None:
    """Skip locally when a service is absent, but fail under CI where it must be present."""
    if os.environ.get("CI"):
        pytest.fail(f"{name} is required in CI: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the PostgreSQL test database (a real server; see scripts/services.sh)."""
    url = os.environ.get(
        "CROWDLEV_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    try:
        import sqlalchemy as sa

        eng = sa.create_engine(url)
        with eng.connect() as conn:
            conn.execute(sa.text("select 1"))
        eng.dispose()
    except Exception as exc:
        require_service("PostgreSQL", str(exc))
    return url


@pytest.fixture(scope="session")
def anvil_bin() -> str:
    """Path of the anvil binary installed from npm by scripts/services.sh."""
    path = os.environ.get(
        "CROWDLEV_ANVIL_BIN", str(PROJECT_ROOT / "tools" / "node_modules" / ".bin" / "anvil")
    )
    if not os.access(path, os.X_OK):
        require_service("anvil", f"{path} not executable; run scripts/services.sh")
    return path
