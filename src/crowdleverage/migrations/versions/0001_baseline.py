"""Baseline: the tables of the previous release (what each component's `metadata.create_all`
made: custody, compliance, onboarding, audit, API, commands, the platform record's JSON
document), frozen here. Each table (with its indexes) is created only if it is missing: a data
dir of the previous release has no `alembic_version` and some or all of these tables, a fresh
one has none.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    have = set(sa.inspect(op.get_bind()).get_table_names())
    if "api_login_failures" not in have:
        op.create_table(
            "api_login_failures",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("username", sa.String(length=64), nullable=False),
            sa.Column("client", sa.String(length=64), nullable=False),
            sa.Column("at_s", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            op.f("ix_api_login_failures_client"), "api_login_failures", ["client"], unique=False
        )
        op.create_index(
            op.f("ix_api_login_failures_username"), "api_login_failures", ["username"], unique=False
        )

    if "api_users" not in have:
        op.create_table(
            "api_users",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("username", sa.String(length=64), nullable=False),
            sa.Column("password_hash", sa.String(length=256), nullable=False),
            sa.Column("role", sa.String(length=16), nullable=False),
            sa.Column("display_name", sa.String(length=128), nullable=False),
            sa.Column("kyc_status", sa.String(length=16), server_default="pending", nullable=False),
            sa.Column("credit_tier", sa.Integer(), nullable=True),
            sa.Column("created_at_s", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("username"),
        )

    if "audit_log" not in have:
        op.create_table(
            "audit_log",
            sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("ts_ns", sa.BigInteger(), nullable=False),
            sa.Column("actor", sa.String(length=128), nullable=False),
            sa.Column("action", sa.String(length=128), nullable=False),
            sa.Column("payload", sa.Text(), nullable=False),
            sa.Column("prev_hash", sa.String(length=64), nullable=False),
            sa.Column("entry_hash", sa.String(length=64), nullable=False),
            sa.Column("signer", sa.String(length=42), nullable=False),
            sa.Column("signature", sa.String(length=132), nullable=False),
            sa.PrimaryKeyConstraint("seq"),
            sa.UniqueConstraint("entry_hash"),
        )

    if "audit_pol_epochs" not in have:
        op.create_table(
            "audit_pol_epochs",
            sa.Column("epoch", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("root_hash", sa.String(length=64), nullable=False),
            sa.Column("total_fen", sa.BigInteger(), nullable=False),
            sa.Column("n_leaves", sa.Integer(), nullable=False),
            sa.Column("created_ns", sa.BigInteger(), nullable=False),
            sa.Column("published_ref", sa.String(length=128), nullable=True),
            sa.PrimaryKeyConstraint("epoch"),
        )

    if "audit_pol_leaves" not in have:
        op.create_table(
            "audit_pol_leaves",
            sa.Column("epoch", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("investor_id", sa.String(length=64), nullable=False),
            sa.Column("balance_fen", sa.BigInteger(), nullable=False),
            sa.Column("salt", sa.String(length=64), nullable=False),
            sa.PrimaryKeyConstraint("epoch", "idx"),
            sa.UniqueConstraint("epoch", "investor_id", name="uq_audit_pol_leaf_investor"),
        )

    if "audit_recon_runs" not in have:
        op.create_table(
            "audit_recon_runs",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("at_ns", sa.BigInteger(), nullable=False),
            sa.Column("ok", sa.Boolean(), nullable=False),
            sa.Column("n_breaks", sa.Integer(), nullable=False),
            sa.Column("report_json", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )

    if "compliance_case_events" not in have:
        op.create_table(
            "compliance_case_events",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("case_id", sa.String(length=40), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("actor", sa.String(length=64), nullable=False),
            sa.Column("action", sa.String(length=32), nullable=False),
            sa.Column("from_status", sa.String(length=16), nullable=True),
            sa.Column("to_status", sa.String(length=16), nullable=False),
            sa.Column("note", sa.String(length=2000), server_default="", nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            op.f("ix_compliance_case_events_case_id"),
            "compliance_case_events",
            ["case_id"],
            unique=False,
        )

    if "compliance_cases" not in have:
        op.create_table(
            "compliance_cases",
            sa.Column("case_id", sa.String(length=40), nullable=False),
            sa.Column("kind", sa.String(length=32), nullable=False),
            sa.Column("identity_id", sa.String(length=40), nullable=True),
            sa.Column("dedup_key", sa.String(length=256), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("resolution", sa.String(length=32), nullable=True),
            sa.Column("title", sa.String(length=512), nullable=False),
            sa.Column("details", sa.JSON(), nullable=False),
            sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("case_id"),
            sa.UniqueConstraint("dedup_key"),
        )
        op.create_index(
            op.f("ix_compliance_cases_identity_id"),
            "compliance_cases",
            ["identity_id"],
            unique=False,
        )

    if "compliance_chain_outbox" not in have:
        op.create_table(
            "compliance_chain_outbox",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("address", sa.String(length=42), nullable=False),
            sa.Column("verified", sa.Boolean(), nullable=False),
            sa.Column("frozen", sa.Boolean(), nullable=False),
            sa.Column("expiry_s", sa.BigInteger(), nullable=False),
            sa.Column("suitability_level", sa.Integer(), nullable=False),
            sa.Column("roles", sa.Integer(), nullable=False),
            sa.Column("tier", sa.Integer(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )

    if "compliance_documents" not in have:
        op.create_table(
            "compliance_documents",
            sa.Column("identity_id", sa.String(length=40), nullable=False),
            sa.Column("sha256", sa.String(length=64), nullable=False),
            sa.Column("kind", sa.String(length=32), nullable=False),
            sa.Column("size_bytes", sa.Integer(), nullable=False),
            sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("identity_id", "sha256"),
        )

    if "compliance_identities" not in have:
        op.create_table(
            "compliance_identities",
            sa.Column("identity_id", sa.String(length=40), nullable=False),
            sa.Column("address", sa.String(length=42), nullable=False),
            sa.Column("name", sa.String(length=64), nullable=False),
            sa.Column("id_number_sha256", sa.String(length=64), nullable=False),
            sa.Column("id_number_masked", sa.String(length=18), nullable=False),
            sa.Column("birth_date", sa.Date(), nullable=False),
            sa.Column("region_code", sa.String(length=6), nullable=False),
            sa.Column("phone", sa.String(length=11), nullable=False),
            sa.Column("bank_card_sha256", sa.String(length=64), nullable=False),
            sa.Column("bank_card_masked", sa.String(length=19), nullable=False),
            sa.Column("document_expiry", sa.Date(), nullable=False),
            sa.Column("roles", sa.Integer(), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("status_reason", sa.String(length=512), server_default="", nullable=False),
            sa.Column("frozen", sa.Boolean(), server_default=sa.false(), nullable=False),
            sa.Column("suitability_level", sa.Integer(), nullable=True),
            sa.Column(
                "qualified_investor", sa.Boolean(), server_default=sa.false(), nullable=False
            ),
            sa.Column("credit_tier", sa.Integer(), nullable=True),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("identity_id"),
            sa.UniqueConstraint("address"),
            sa.UniqueConstraint("id_number_sha256"),
        )

    if "compliance_lists" not in have:
        op.create_table(
            "compliance_lists",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("list_id", sa.String(length=32), nullable=False),
            sa.Column("fmt", sa.String(length=16), nullable=False),
            sa.Column("version", sa.String(length=64), nullable=False),
            sa.Column("sha256", sa.String(length=64), nullable=False),
            sa.Column("source", sa.String(length=512), nullable=False),
            sa.Column("entry_count", sa.Integer(), nullable=False),
            sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("sha256"),
        )

    if "compliance_screenings" not in have:
        op.create_table(
            "compliance_screenings",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("identity_id", sa.String(length=40), nullable=False),
            sa.Column("list_versions", sa.String(length=256), nullable=False),
            sa.Column("top_score", sa.Integer(), nullable=False),
            sa.Column("hit", sa.Boolean(), nullable=False),
            sa.Column("result", sa.JSON(), nullable=False),
            sa.Column("screened_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            op.f("ix_compliance_screenings_identity_id"),
            "compliance_screenings",
            ["identity_id"],
            unique=False,
        )

    if "custody_accounts" not in have:
        op.create_table(
            "custody_accounts",
            sa.Column("id", sa.String(length=32), nullable=False),
            sa.Column("ledger", sa.Integer(), nullable=False),
            sa.Column("code", sa.Integer(), nullable=False),
            sa.Column("flags", sa.Integer(), nullable=False),
            sa.Column("user_data_128", sa.String(length=32), nullable=False),
            sa.Column("user_data_64", sa.Numeric(precision=20, scale=0), nullable=False),
            sa.Column("user_data_32", sa.BigInteger(), nullable=False),
            sa.Column("debits_pending", sa.BigInteger(), nullable=False),
            sa.Column("debits_posted", sa.BigInteger(), nullable=False),
            sa.Column("credits_pending", sa.BigInteger(), nullable=False),
            sa.Column("credits_posted", sa.BigInteger(), nullable=False),
            sa.Column("timestamp", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("timestamp"),
        )

    if "custody_bridge_ops" not in have:
        op.create_table(
            "custody_bridge_ops",
            sa.Column("op_id", sa.String(length=32), nullable=False),
            sa.Column("kind", sa.String(length=4), nullable=False),
            sa.Column("investor_id", sa.String(length=64), nullable=False),
            sa.Column("address", sa.String(length=42), nullable=False),
            sa.Column("amount_fen", sa.BigInteger(), nullable=False),
            sa.Column("status", sa.String(length=8), nullable=False),
            sa.Column("chain_tx", sa.String(length=80), nullable=True),
            sa.PrimaryKeyConstraint("op_id"),
        )

    if "custody_investors" not in have:
        op.create_table(
            "custody_investors",
            sa.Column("investor_id", sa.String(length=64), nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("virtual_account", sa.String(length=64), nullable=False),
            sa.Column("reference", sa.String(length=32), nullable=False),
            sa.Column("payout_account", sa.String(length=64), nullable=False),
            sa.Column("ledger_account_id", sa.String(length=32), nullable=False),
            sa.PrimaryKeyConstraint("investor_id"),
            sa.UniqueConstraint("ledger_account_id"),
            sa.UniqueConstraint("reference"),
            sa.UniqueConstraint("virtual_account"),
        )

    if "custody_mirror_accounts" not in have:
        op.create_table(
            "custody_mirror_accounts",
            sa.Column("address", sa.String(length=42), nullable=False),
            sa.Column("ledger_account_id", sa.String(length=32), nullable=False),
            sa.PrimaryKeyConstraint("address"),
            sa.UniqueConstraint("ledger_account_id"),
        )

    if "custody_mirror_failures" not in have:
        op.create_table(
            "custody_mirror_failures",
            sa.Column("transfer_id", sa.String(length=32), nullable=False),
            sa.Column("event_seq", sa.BigInteger(), nullable=False),
            sa.Column("result", sa.String(length=64), nullable=False),
            sa.PrimaryKeyConstraint("transfer_id"),
        )

    if "custody_mirror_state" not in have:
        op.create_table(
            "custody_mirror_state",
            sa.Column("name", sa.String(length=32), nullable=False),
            sa.Column("cursor_seq", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )

    if "custody_payouts" not in have:
        op.create_table(
            "custody_payouts",
            sa.Column("transfer_id", sa.String(length=32), nullable=False),
            sa.Column("investor_id", sa.String(length=64), nullable=False),
            sa.Column("amount_fen", sa.BigInteger(), nullable=False),
            sa.Column("status", sa.String(length=10), nullable=False),
            sa.Column("message_id", sa.String(length=64), nullable=True),
            sa.PrimaryKeyConstraint("transfer_id"),
        )

    if "custody_pending" not in have:
        op.create_table(
            "custody_pending",
            sa.Column("id", sa.String(length=32), nullable=False),
            sa.Column("status", sa.String(length=8), nullable=False),
            sa.Column("expires_at_ns", sa.BigInteger(), nullable=False),
            sa.Column("resolved_by", sa.String(length=32), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            "ix_custody_pending_open", "custody_pending", ["status", "expires_at_ns"], unique=False
        )

    if "custody_statements" not in have:
        op.create_table(
            "custody_statements",
            sa.Column("account", sa.String(length=64), nullable=False),
            sa.Column("statement_id", sa.String(length=128), nullable=False),
            sa.Column("sequence_nb", sa.BigInteger(), nullable=False),
            sa.Column("content_sha256", sa.String(length=64), nullable=False),
            sa.Column("opening_fen", sa.BigInteger(), nullable=False),
            sa.Column("closing_fen", sa.BigInteger(), nullable=False),
            sa.Column("imported_at_ns", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("account", "statement_id"),
            sa.UniqueConstraint("account", "sequence_nb", name="uq_custody_statements_seq"),
        )

    if "custody_transfers" not in have:
        op.create_table(
            "custody_transfers",
            sa.Column("id", sa.String(length=32), nullable=False),
            sa.Column("debit_account_id", sa.String(length=32), nullable=False),
            sa.Column("credit_account_id", sa.String(length=32), nullable=False),
            sa.Column("amount", sa.BigInteger(), nullable=False),
            sa.Column("pending_id", sa.String(length=32), nullable=False),
            sa.Column("ledger", sa.Integer(), nullable=False),
            sa.Column("code", sa.Integer(), nullable=False),
            sa.Column("flags", sa.Integer(), nullable=False),
            sa.Column("timeout_s", sa.BigInteger(), nullable=False),
            sa.Column("user_data_128", sa.String(length=32), nullable=False),
            sa.Column("user_data_64", sa.Numeric(precision=20, scale=0), nullable=False),
            sa.Column("user_data_32", sa.BigInteger(), nullable=False),
            sa.Column("timestamp", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("timestamp"),
        )
        op.create_index(
            op.f("ix_custody_transfers_credit_account_id"),
            "custody_transfers",
            ["credit_account_id"],
            unique=False,
        )
        op.create_index(
            op.f("ix_custody_transfers_debit_account_id"),
            "custody_transfers",
            ["debit_account_id"],
            unique=False,
        )
        op.create_index(
            "ix_custody_transfers_user_data_128",
            "custody_transfers",
            ["user_data_128"],
            unique=False,
            sqlite_where=sa.text("user_data_128 != '00000000000000000000000000000000'"),
            postgresql_where=sa.text("user_data_128 != '00000000000000000000000000000000'"),
        )

    if "flows_bank_refs" not in have:
        op.create_table(
            "flows_bank_refs",
            sa.Column("reference", sa.String(length=64), nullable=False),
            sa.Column("user_id", sa.BigInteger(), nullable=False),
            sa.Column("amount_fen", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("reference"),
        )

    if "flows_commands" not in have:
        op.create_table(
            "flows_commands",
            sa.Column("owner_id", sa.BigInteger(), nullable=False),
            sa.Column("key", sa.String(length=128), nullable=False),
            sa.Column("request_hash", sa.String(length=64), nullable=False),
            sa.Column("path", sa.String(length=256), nullable=False),
            sa.Column("state", sa.String(length=8), nullable=False),
            sa.Column("status_code", sa.Integer(), nullable=True),
            sa.Column("response_json", sa.Text(), nullable=True),
            sa.Column("progress", sa.Text(), server_default="{}", nullable=False),
            sa.Column("created_at_s", sa.BigInteger(), nullable=False),
            sa.Column("done_at_s", sa.BigInteger(), nullable=True),
            sa.PrimaryKeyConstraint("owner_id", "key"),
        )
        op.create_index(op.f("ix_flows_commands_state"), "flows_commands", ["state"], unique=False)

    if "flows_snapshot" not in have:
        op.create_table(
            "flows_snapshot",
            sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("taken_at_s", sa.BigInteger(), nullable=False),
            sa.Column("body", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )

    if "onboarding_applications" not in have:
        op.create_table(
            "onboarding_applications",
            sa.Column("application_id", sa.String(length=40), nullable=False),
            sa.Column("user_ref", sa.String(length=64), nullable=False),
            sa.Column("role", sa.String(length=16), nullable=False),
            sa.Column("address", sa.String(length=42), nullable=False),
            sa.Column("identity_id", sa.String(length=40), nullable=True),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("tier", sa.Integer(), nullable=True),
            sa.Column("spread_bps", sa.Integer(), nullable=True),
            sa.Column("rate_bps", sa.Integer(), nullable=True),
            sa.Column("pd", sa.Float(), nullable=True),
            sa.Column("points", sa.Integer(), nullable=True),
            sa.Column("model_version", sa.String(length=96), nullable=True),
            sa.Column("suitability_level", sa.Integer(), nullable=True),
            sa.Column("steps", sa.JSON(), nullable=False),
            sa.Column("credit_inputs", sa.JSON(), nullable=True),
            sa.Column("override", sa.JSON(), nullable=True),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("application_id"),
        )
        op.create_index(
            op.f("ix_onboarding_applications_user_ref"),
            "onboarding_applications",
            ["user_ref"],
            unique=False,
        )

    if "compliance_list_entries" not in have:
        op.create_table(
            "compliance_list_entries",
            sa.Column("list_row", sa.Integer(), nullable=False),
            sa.Column("entry_id", sa.String(length=128), nullable=False),
            sa.Column("kind", sa.String(length=16), nullable=False),
            sa.Column("data", sa.JSON(), nullable=False),
            sa.ForeignKeyConstraint(
                ["list_row"],
                ["compliance_lists.id"],
            ),
            sa.PrimaryKeyConstraint("list_row", "entry_id"),
        )


def downgrade() -> None:
    raise NotImplementedError("the baseline is the oldest schema this project migrates from")
