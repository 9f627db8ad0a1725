"""`crowdlev db …`: the database schema (Alembic revisions, `crowdleverage.migrations`)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Database schema: migrations (Alembic).", no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(
    revision: str = typer.Argument("head", help="Target revision (default: the latest)."),
) -> None:
    """Migrate the configured database (the data dir's custody.db or CROWDLEV_DATABASE_URL)."""
    from crowdleverage.config import load_settings
    from crowdleverage.custody.db import engine_from_settings
    from crowdleverage.migrations import current, upgrade

    engine = engine_from_settings(load_settings())
    before = current(engine)
    after = upgrade(engine, revision)
    typer.echo(f"database at {after} (was {before or 'unversioned'})")
    engine.dispose()


@app.command("current")
def current_cmd() -> None:
    """Print the configured database's revision."""
    from crowdleverage.config import load_settings
    from crowdleverage.custody.db import engine_from_settings
    from crowdleverage.migrations import current

    engine = engine_from_settings(load_settings())
    typer.echo(current(engine) or "unversioned")
    engine.dispose()
