"""Shared fixtures. Services the tests need are started by scripts/services.sh (make test);
under CI (CI=true) a missing service is a failure, never a skip."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crowdleverage.custody.db import make_engine

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


# ── databases: custody, audit and other store tests run on SQLite (WAL file) and on
# PostgreSQL, the latter in a fresh schema per test so that runs can repeat on one server.


class EngineFactory:
    """Makes fresh, isolated databases on one backend; drops them at teardown."""

    def __init__(self, backend: str, tmp_path: Path, pg_url: str | None) -> None:
        self.backend, self.tmp_path, self.pg_url = backend, tmp_path, pg_url
        self._made: list[tuple[Engine, str | None]] = []

    def url_and_schema(self) -> tuple[str, str | None]:
        name = f"t_{uuid.uuid4().hex[:16]}"
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp_path / (name + '.db')}", None
        assert self.pg_url is not None
        admin = sa.create_engine(self.pg_url)
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {name}"))
        admin.dispose()
        return self.pg_url, name

    def __call__(self) -> Engine:
        url, schema = self.url_and_schema()
        engine = make_engine(url, schema=schema)
        self._made.append((engine, schema))
        return engine

    def close(self) -> None:
        for engine, _ in self._made:
            engine.dispose()
        schemas = [sch for _, sch in self._made if sch]
        if schemas and self.pg_url:
            admin = sa.create_engine(self.pg_url)
            with admin.begin() as conn:
                for sch in schemas:
                    conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {sch} CASCADE"))
            admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EngineFactory]:
    pg_url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    factory = EngineFactory(request.param, tmp_path, pg_url)
    yield factory
    factory.close()


@pytest.fixture
def engine(engine_factory: EngineFactory) -> Engine:
    return engine_factory()
