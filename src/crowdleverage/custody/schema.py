"""Tables of the custody ledger (SQLAlchemy Core, own MetaData, `custody_` prefix).

128-bit ids are stored as 32 lowercase hex digits: fixed width, so text order is numeric order
(time order for ids from `new_id`), and portable to SQLite, whose integers stop at 64 bits.
Transfers are insert-only; the only mutable rows are the account totals and the status of a
pending transfer, which changes once, from `pending`, by a conditional update.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ID = sa.String(32)

accounts = sa.Table(
    "custody_accounts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("ledger", sa.Integer, nullable=False),
    sa.Column("code", sa.Integer, nullable=False),
    sa.Column("flags", sa.Integer, nullable=False),
    sa.Column("user_data_128", ID, nullable=False),
    sa.Column("user_data_64", sa.Numeric(20, 0), nullable=False),
    sa.Column("user_data_32", sa.BigInteger, nullable=False),
    sa.Column("debits_pending", sa.BigInteger, nullable=False),
    sa.Column("debits_posted", sa.BigInteger, nullable=False),
    sa.Column("credits_pending", sa.BigInteger, nullable=False),
    sa.Column("credits_posted", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False, unique=True),
)

transfers = sa.Table(
    "custody_transfers",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("debit_account_id", ID, nullable=False, index=True),
    sa.Column("credit_account_id", ID, nullable=False, index=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("pending_id", ID, nullable=False),
    sa.Column("ledger", sa.Integer, nullable=False),
    sa.Column("code", sa.Integer, nullable=False),
    sa.Column("flags", sa.Integer, nullable=False),
    sa.Column("timeout_s", sa.BigInteger, nullable=False),
    sa.Column("user_data_128", ID, nullable=False),
    sa.Column("user_data_64", sa.Numeric(20, 0), nullable=False),
    sa.Column("user_data_32", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False, unique=True),
    # References are looked up by value; most transfers carry none, so index only those that do.
    sa.Index(
        "ix_custody_transfers_user_data_128",
        "user_data_128",
        sqlite_where=sa.text("user_data_128 != '00000000000000000000000000000000'"),
        postgresql_where=sa.text("user_data_128 != '00000000000000000000000000000000'"),
    ),
)

# State of each two-phase transfer: the one mutable fact about it, changed at most once.
pending = sa.Table(
    "custody_pending",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("expires_at_ns", sa.BigInteger, nullable=False),  # 0: never
    sa.Column("resolved_by", ID, nullable=True),
    sa.Index("ix_custody_pending_open", "status", "expires_at_ns"),
)


def hex_id(value: int) -> str:
    return f"{value:032x}"
