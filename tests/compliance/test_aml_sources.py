"""AML sources: custodian camt.053 statements (through the real writer and reader) become
monitoring transactions; the third-party-payer rule then sees payer names and accounts."""

from __future__ import annotations

from datetime import UTC, date, datetime

from crowdleverage.compliance import aml
from crowdleverage.compliance.aml import Customer, TxnKind
from crowdleverage.compliance.aml_sources import transactions_from_statement
from crowdleverage.compliance.kyc import sha256_text
from crowdleverage.custody.bank.camt053 import Entry, Statement, read_statement, write_statement

CARD = "6222021234567890128"


def statement() -> Statement:
    entries = (
        Entry("B1", 2_000_000, True, date(2026, 1, 5), "E2E-1", "王小明", CARD, "VA-001"),
        Entry("B2", 3_000_000, True, date(2026, 1, 5), "E2E-2", "李娜", "6217000000000000004",
              "VA-001"),
        Entry("B3", 500_000, False, date(2026, 1, 6), "E2E-3", "王小明", CARD, "VA-001"),
        Entry("B4", 9_000_000, True, date(2026, 1, 6), "E2E-4", "张伟", "6217000000000000004",
              "VA-999"),  # not a known customer's sub-account
    )  # fmt: skip
    credits = sum(e.amount_fen for e in entries if e.credit)
    debits = sum(e.amount_fen for e in entries if not e.credit)
    return Statement(
        "STMT-1", 1, "CUSTODY-001", datetime(2026, 1, 6, 18, tzinfo=UTC), 0, credits - debits,
        entries,
    )  # fmt: skip


def test_statement_lines_become_transactions_with_payer_details() -> None:
    parsed = read_statement(write_statement(statement()))

    txns = transactions_from_statement(parsed, {"VA-001": "kyc_1"}, {sha256_text(CARD): "kyc_1"})

    assert [(t.txn_id, t.kind, t.amount_fen) for t in txns] == [
        ("bank:CUSTODY-001:B1", TxnKind.DEPOSIT, 2_000_000),
        ("bank:CUSTODY-001:B2", TxnKind.DEPOSIT, 3_000_000),
        ("bank:CUSTODY-001:B3", TxnKind.WITHDRAWAL, 500_000),
    ]
    assert txns[0].payer_account_sha256 == sha256_text(CARD)
    assert txns[0].at == datetime(2026, 1, 4, 16, tzinfo=UTC)  # midnight in Shanghai
    assert txns[2].payer_name is None


def test_third_party_payer_found_in_a_bank_statement() -> None:
    txns = transactions_from_statement(
        read_statement(write_statement(statement())), {"VA-001": "kyc_1"}
    )
    customers = {"kyc_1": Customer("kyc_1", "王小明", frozenset({sha256_text(CARD)}))}

    alerts = aml.run_rules(txns, customers, rules=["third_party_payer"])

    assert [a.txn_ids for a in alerts] == [("bank:CUSTODY-001:B2",)]
    assert "李娜" in alerts[0].description
