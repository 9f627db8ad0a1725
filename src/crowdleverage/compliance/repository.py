"""Compliance tables (SQLAlchemy Core, own MetaData, prefix `compliance_`). SQLite by default,
PostgreSQL at scale; the same statements run on both."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import sqlalchemy as sa

metadata = sa.MetaData()

TS = sa.DateTime(timezone=True)

lists = sa.Table(
    "compliance_lists",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("list_id", sa.String(32), nullable=False),  # "un", "ofac_sdn", "opensanctions"
    sa.Column("fmt", sa.String(16), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),  # a file loads once
    sa.Column("source", sa.String(512), nullable=False),
    sa.Column("entry_count", sa.Integer, nullable=False),
    sa.Column("loaded_at", TS, nullable=False),
)

list_entries = sa.Table(
    "compliance_list_entries",
    metadata,
    sa.Column("list_row", sa.Integer, sa.ForeignKey("compliance_lists.id"), primary_key=True),
    sa.Column("entry_id", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),  # names, birth dates, programs, reference
)

identities = sa.Table(
    "compliance_identities",
    metadata,
    sa.Column("identity_id", sa.String(40), primary_key=True),
    sa.Column("address", sa.String(42), nullable=False, unique=True),  # on-chain account
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("id_number_sha256", sa.String(64), nullable=False, unique=True),  # one per person
    sa.Column("id_number_masked", sa.String(18), nullable=False),
    sa.Column("birth_date", sa.Date, nullable=False),
    sa.Column("region_code", sa.String(6), nullable=False),
    sa.Column("phone", sa.String(11), nullable=False),
    sa.Column("bank_card_sha256", sa.String(64), nullable=False),
    sa.Column("bank_card_masked", sa.String(19), nullable=False),
    sa.Column("document_expiry", sa.Date, nullable=False),
    sa.Column("roles", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending|verified|rejected|expired
    sa.Column("status_reason", sa.String(512), nullable=False, server_default=""),
    sa.Column("frozen", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("suitability_level", sa.Integer, nullable=True),  # 1..5 for C1..C5
    sa.Column("qualified_investor", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("credit_tier", sa.Integer, nullable=True),  # borrowers: the engine's tier (1..3)
    sa.Column("version", sa.Integer, nullable=False),  # bumped by every conditional update
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

documents = sa.Table(
    "compliance_documents",
    metadata,
    sa.Column("identity_id", sa.String(40), primary_key=True),
    sa.Column("sha256", sa.String(64), primary_key=True),  # the document itself lives elsewhere
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("added_at", TS, nullable=False),
)

screenings = sa.Table(
    "compliance_screenings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("identity_id", sa.String(40), nullable=False, index=True),
    sa.Column("list_versions", sa.String(256), nullable=False),
    sa.Column("top_score", sa.Integer, nullable=False),
    sa.Column("hit", sa.Boolean, nullable=False),
    sa.Column("result", sa.JSON, nullable=False),
    sa.Column("screened_at", TS, nullable=False),
)

cases = sa.Table(
    "compliance_cases",
    metadata,
    sa.Column("case_id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),  # "sanctions" or "aml:<rule>"
    sa.Column("identity_id", sa.String(40), nullable=True, index=True),
    sa.Column("dedup_key", sa.String(256), nullable=False, unique=True),  # one case per finding
    sa.Column("status", sa.String(16), nullable=False),  # open|investigating|reported|closed
    sa.Column("resolution", sa.String(32), nullable=True),
    sa.Column("title", sa.String(512), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("opened_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

case_events = sa.Table(
    "compliance_case_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(40), nullable=False, index=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("from_status", sa.String(16), nullable=True),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("note", sa.String(2000), nullable=False, server_default=""),
)


chain_outbox = sa.Table(
    "compliance_chain_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # apply in this order
    sa.Column("address", sa.String(42), nullable=False),
    sa.Column("verified", sa.Boolean, nullable=False),
    sa.Column("frozen", sa.Boolean, nullable=False),
    sa.Column("expiry_s", sa.BigInteger, nullable=False),
    sa.Column("suitability_level", sa.Integer, nullable=False),
    sa.Column("roles", sa.Integer, nullable=False),
    sa.Column("tier", sa.Integer, nullable=True),  # borrowers: the margin engine's tier
    sa.Column("created_at", TS, nullable=False),
    sa.Column("sent_at", TS, nullable=True),  # null until relayed to the registry
)


def make_engine(url: str) -> sa.Engine:
    kwargs: dict[str, object] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    return sa.create_engine(url, **kwargs)


def create_tables(engine: sa.Engine) -> None:
    metadata.create_all(engine)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """Client-generated, time-sortable id: prefix, nanoseconds, 32 random bits."""
    return f"{prefix}_{time.time_ns():016x}{os.urandom(4).hex()}"


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
