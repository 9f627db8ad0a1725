"""When a read model was last read (`service_read_models.read_at_ms`): the writer stops
re-rendering, and deletes, the views nobody has read for a while (`service.writer`).

Revision ID: 0005_read_model_reads
Revises: 0004_service
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_read_model_reads"
down_revision = "0004_service"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    columns = {c["name"] for c in sa.inspect(bind).get_columns("service_read_models")}
    if "read_at_ms" not in columns:  # the queue's own create_schema may have made it
        op.add_column("service_read_models", sa.Column("read_at_ms", sa.BigInteger, nullable=True))


def downgrade() -> None:
    raise NotImplementedError("revisions do not downgrade")
