"""The service tables of the one-writer/many-readers split (`service.queue`): the durable
command queue, the read models the API workers answer from, and the writer's heartbeat.
Each is created only if missing (the queue's own `create_schema` may have made it).

Revision ID: 0004_service
Revises: 0003_reports
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_service"
down_revision = "0003_reports"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite: a rowid alias


def _tables() -> list[sa.Table]:
    m = sa.MetaData()
    return [
        sa.Table(
            "service_commands", m,
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("owner_id", sa.BigInteger, nullable=False),
            sa.Column("key", sa.String(128), nullable=False),
            sa.Column("client_key", sa.Boolean, nullable=False),
            sa.Column("request_hash", sa.String(64), nullable=False),
            sa.Column("kind", sa.String(8), nullable=False),
            sa.Column("payload", sa.Text, nullable=False),
            sa.Column("state", sa.String(8), nullable=False),
            sa.Column("status_code", sa.Integer, nullable=True),
            sa.Column("result", sa.Text, nullable=True),
            sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
            sa.Column("created_at_ms", sa.BigInteger, nullable=False),
            sa.Column("done_at_ms", sa.BigInteger, nullable=True),
            sa.UniqueConstraint("owner_id", "key", name="uq_service_commands_key"),
            sa.Index("ix_service_commands_state", "state", "id"),
        ),
        sa.Table(
            "service_read_models", m,
            sa.Column("viewer_id", sa.BigInteger, primary_key=True),
            sa.Column("path", sa.String(600), primary_key=True),
            sa.Column("kind", sa.String(128), nullable=False),
            sa.Column("status_code", sa.Integer, nullable=False),
            sa.Column("headers", sa.Text, nullable=False),
            sa.Column("body", sa.LargeBinary, nullable=False),
            sa.Column("seq", sa.BigInteger, nullable=False),
            sa.Column("rendered_at_ms", sa.BigInteger, nullable=False),
        ),
        sa.Table(
            "service_writer", m,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("pid", sa.Integer, nullable=False),
            sa.Column("started_at_ms", sa.BigInteger, nullable=False),
            sa.Column("heartbeat_ms", sa.BigInteger, nullable=False),
            sa.Column("ready", sa.Boolean, nullable=False),
            sa.Column("info", sa.Text, nullable=False),
        ),
    ]  # fmt: skip


def upgrade() -> None:
    bind = op.get_bind()
    for table in _tables():
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    raise NotImplementedError("revisions do not downgrade")
