"""Alembic environment: the connection comes from `crowdleverage.migrations.upgrade` (the
platform's engine, in one transaction); there is no ini file and no offline mode."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
