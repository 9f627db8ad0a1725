"""The API's own tables (users, login attempts), SQLAlchemy
Core on the same database as the custody ledger. All names are prefixed `api_`."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()

users = sa.Table(
    "api_users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("display_name", sa.String(128), nullable=False),
    # KYC state written by the compliance officer: pending → approved | rejected.
    sa.Column("kyc_status", sa.String(16), nullable=False, server_default="pending"),
    # Credit tier (1..3) granted to a borrower at KYC approval; NULL for other roles.
    sa.Column("credit_tier", sa.Integer, nullable=True),
    sa.Column("created_at_s", sa.BigInteger, nullable=False),
)

# One row per failed login; the limiter counts rows in the window (works across workers).
login_failures = sa.Table(
    "api_login_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, index=True),
    sa.Column("client", sa.String(64), nullable=False, index=True),
    sa.Column("at_s", sa.BigInteger, nullable=False),
)


def create_schema(engine: Engine) -> None:
    metadata.create_all(engine)
