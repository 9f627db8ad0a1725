"""The database schema under Alembic (DESIGN.md §10): one history of revisions for every
table the platform keeps in its database (custody, compliance, audit, API, commands and the
platform's record), on SQLite and PostgreSQL.

- `0001_baseline`: the tables of the previous release (what each component's
  `metadata.create_all` made), each created only if it is missing, so a data dir of that
  release (no `alembic_version` table) upgrades from it and a fresh one starts from it;
- `0002_platform_record`: the platform's record as append-only tables (`flows.record`), and
  the previous release's JSON document (`flows_snapshot`, version 2) moved into them once;
- `0003_reports`: notifications, their preferences and cursor, and the auditor's attestations;
- `0004_service`: the command queue, read models and writer heartbeat of the process split;
- `0005_read_model_reads`: when each read model was last read (idle views are evicted).

`upgrade(engine)` runs at start-up (`flows.Platform`) and from `crowdlev db upgrade`; it
holds the database's write lock while it runs (SQLite `BEGIN IMMEDIATE`, a PostgreSQL
advisory lock), so two processes starting together migrate once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `crowdlev db --help` imports this package: keep SQLAlchemy out of it
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("crowdleverage.migrations")

HERE = Path(__file__).resolve().parent
HEAD = "0005_read_model_reads"
_PG_LOCK = 0x43524F57444C4556  # "CROWDLEV": the advisory lock of schema upgrades


def _config(conn: Connection) -> object:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = conn
    return cfg


def current(engine: Engine) -> str | None:
    """The database's revision (None: never migrated — fresh, or the previous release)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, target: str = "head") -> str | None:
    """Bring the database to `target` (idempotent); returns the revision it is at."""
    from alembic import command

    before = current(engine)
    if before == HEAD and target in ("head", HEAD):
        return before
    with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE (custody.db's engine)
        if conn.dialect.name == "postgresql":
            import sqlalchemy as sa

            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        command.upgrade(_config(conn), target)  # type: ignore[arg-type]
    after = current(engine)
    if after != before:
        log.info("database migrated", extra={"event": "db_migrated", "from_revision": before,
                                              "to_revision": after})  # fmt: skip
    return after
