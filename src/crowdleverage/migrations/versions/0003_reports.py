"""Notifications, notification preferences and cursor, and the auditor's attestations
(`reports.notify`, `reports.attest`; issue 16). Each table is created only if missing: a
data dir where the component's own `create_all` already made it upgrades in place.

Revision ID: 0003_reports
Revises: 0002_platform_record
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_reports"
down_revision = "0002_platform_record"
branch_labels = None
depends_on = None


def _tables() -> list[sa.Table]:
    m = sa.MetaData()
    return [
        sa.Table(
            "notifications", m,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("user_id", sa.BigInteger, nullable=False, index=True),
            sa.Column("event_key", sa.String(80), nullable=False),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("account_id", sa.BigInteger, nullable=True),
            sa.Column("params", sa.Text, nullable=False),
            sa.Column("trade_date", sa.String(10), nullable=False),
            sa.Column("created_at", sa.String(32), nullable=False),
            sa.Column("in_app", sa.Boolean, nullable=False),
            sa.Column("read", sa.Boolean, nullable=False),
            sa.Column("email_status", sa.String(12), nullable=False),
            sa.UniqueConstraint("user_id", "event_key", name="uq_notification_event"),
        ),
        sa.Table(
            "notify_prefs", m,
            sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("lang", sa.String(5), nullable=False),
            sa.Column("email", sa.String(254), nullable=True),
            sa.Column("in_app", sa.Text, nullable=False),
            sa.Column("by_email", sa.Text, nullable=False),
        ),
        sa.Table(
            "notify_cursor", m,
            sa.Column("name", sa.String(40), primary_key=True),
            sa.Column("value", sa.BigInteger, nullable=False),
        ),
        sa.Table(
            "audit_attestations", m,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("created_at", sa.String(32), nullable=False),
            sa.Column("period_start", sa.String(10), nullable=False),
            sa.Column("period_end", sa.String(10), nullable=False),
            sa.Column("auditor", sa.String(128), nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("signature", sa.String(128), nullable=False),
            sa.Column("public_key", sa.String(64), nullable=False),
        ),
    ]  # fmt: skip


def upgrade() -> None:
    bind = op.get_bind()
    for table in _tables():
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    raise NotImplementedError("revisions do not downgrade")
