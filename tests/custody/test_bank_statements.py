"""Simulated bank → camt.053 → custody ledger, and payouts → pain.001 → bank → camt.053,
on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import date, datetime

import pytest
from sqlalchemy.engine import Engine

from crowdleverage.custody.bank.camt053 import read_statement
from crowdleverage.custody.bank.pain001 import read_payment_file
from crowdleverage.custody.bank.simulator import SimulatedBank
from crowdleverage.custody.service import CustodyService, payment_message_id
from crowdleverage.domain.errors import Conflict, DataFileError, InvalidInput, RuleViolation

ACCOUNT = "6222020200112233445"
DAY = date(2026, 3, 2)
EOD = datetime(2026, 3, 2, 17, 0, 0)


@pytest.fixture
def custody(engine: Engine) -> CustodyService:
    svc = CustodyService(engine, ACCOUNT)
    svc.setup()
    svc.register_investor(
        "INV-0001",
        name="张三",
        virtual_account="VA-0001",
        reference="CLZS01",
        payout_account="6217001",
    )
    svc.register_investor(
        "INV-0002",
        name="李四",
        virtual_account="VA-0002",
        reference="CLLS02",
        payout_account="6217002",
    )
    return svc


@pytest.fixture
def bank() -> SimulatedBank:
    return SimulatedBank(ACCOUNT)


def fund(bank: SimulatedBank) -> bytes:
    bank.receive_transfer(
        1_500_000, payer_name="张三", payer_account="6217001", virtual_account="VA-0001", day=DAY
    )
    bank.receive_transfer(
        250_050, payer_name="李四", payer_account="6217002", remittance="subscribe CLLS02", day=DAY
    )
    bank.receive_transfer(999, payer_name="王五", payer_account="6217999", remittance="?", day=DAY)
    return bank.close_statement(at=EOD)


def test_statement_round_trip(bank: SimulatedBank) -> None:
    st = read_statement(fund(bank))
    assert (st.sequence_nb, st.account, st.opening_fen, st.closing_fen) == (
        1,
        ACCOUNT,
        0,
        1_751_049,
    )
    assert [e.amount_fen for e in st.entries] == [1_500_000, 250_050, 999]
    assert st.entries[0].virtual_account == "VA-0001"
    assert st.entries[1].counterparty_name == "李四"


def test_import_books_deposits_by_virtual_account_and_reference(
    custody: CustodyService, bank: SimulatedBank
) -> None:
    report = custody.import_statement(fund(bank))
    assert not report.already_imported
    assert [(d.investor_id, d.amount_fen) for d in report.deposits] == [
        ("INV-0001", 1_500_000),
        ("INV-0002", 250_050),
    ]
    assert report.suspense_fen == 999
    assert custody.investor_balances() == {"INV-0001": 1_500_000, "INV-0002": 250_050}
    assert custody.bank_cash_fen() == 1_751_049 == report.closing_fen
    [dep] = custody.ledger.lookup_transfers([report.deposits[0].transfer_id])
    assert dep.amount == 1_500_000 and dep.user_data_32 == 20260302
    assert custody.ledger.audit() == []


def test_reimport_changes_nothing(custody: CustodyService, bank: SimulatedBank) -> None:
    data = fund(bank)
    custody.import_statement(data)
    totals = custody.ledger.totals()
    again = custody.import_statement(data)
    assert again.already_imported and again.deposits == ()
    assert custody.ledger.totals() == totals
    assert custody.investor_balances() == {"INV-0001": 1_500_000, "INV-0002": 250_050}


def test_interrupted_import_completes_once(custody: CustodyService, bank: SimulatedBank) -> None:
    """A crash after booking but before recording the statement: re-import records it and
    books nothing twice."""
    data = fund(bank)
    st = read_statement(data)
    from sqlalchemy import select

    from crowdleverage.custody.service import investors, payouts

    with custody.engine.connect() as conn:
        registry = conn.execute(select(investors)).all()
        open_payouts = {r.transfer_id: r for r in conn.execute(select(payouts)).all()}
    custody._book(st, custody._plan(st, registry, open_payouts, "x"), "x")  # the crash point
    report = custody.import_statement(data)
    assert not report.already_imported
    assert custody.bank_cash_fen() == 1_751_049
    assert custody.import_statement(data).already_imported


def mutate(data: bytes, old: str, new: str) -> bytes:
    assert old.encode() in data, old
    return data.replace(old.encode(), new.encode(), 1)


BAD_FILES = [
    ("</Document>", "", "not well-formed"),
    ('Ccy="CNY">15000.00', 'Ccy="USD">15000.00', "only CNY"),
    (">15000.00<", ">15000.01<", "differs from its entry amount"),
    (">17510.49<", ">17510.50<", "do not add up"),
    (">15000.00<", ">15000.001<", "≤ 2 decimals"),
    ("<Cd>BOOK</Cd>", "<Cd>PDNG</Cd>", "booked (BOOK)"),
    ("<NbOfNtries>3</NbOfNtries>", "<NbOfNtries>4</NbOfNtries>", "NbOfNtries says 4"),
    ("SIM2026030200000002", "SIM2026030200000001", "AcctSvcrRef repeated"),
    ("<Cd>OPBD</Cd>", "<Cd>OPAV</Cd>", "OPBD balance is missing"),
    ("<CdtDbtInd>CRDT</CdtDbtInd>", "<CdtDbtInd>CREDIT</CdtDbtInd>", "neither CRDT nor DBIT"),
    ("camt.053.001.08", "camt.054.001.08", "expected a Document"),
]


@pytest.mark.parametrize(("old", "new", "reason"), BAD_FILES)
def test_malformed_or_inconsistent_statement_is_rejected_whole(
    custody: CustodyService, bank: SimulatedBank, old: str, new: str, reason: str
) -> None:
    data = mutate(fund(bank), old, new)
    with pytest.raises(DataFileError, match=re.escape(reason)) as err:
        custody.import_statement(data, "eod.xml")
    assert err.value.path == "eod.xml"
    assert custody.bank_cash_fen() == 0
    assert custody.investor_balances() == {"INV-0001": 0, "INV-0002": 0}


def test_entity_expansion_is_refused(custody: CustodyService) -> None:
    data = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "boom">]>'
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">&x;</Document>'
    )
    with pytest.raises(DataFileError, match="DOCTYPE"):
        custody.import_statement(data)


def test_out_of_order_and_conflicting_statements(
    custody: CustodyService, bank: SimulatedBank
) -> None:
    first = fund(bank)
    bank.receive_transfer(
        100, payer_name="张三", payer_account="6217001", virtual_account="VA-0001", day=DAY
    )
    second = bank.close_statement(at=EOD)
    with pytest.raises(InvalidInput, match="opening balance"):
        custody.import_statement(second)
    custody.import_statement(first)
    with pytest.raises(Conflict, match="conflicts"):
        custody.import_statement(mutate(first, "<Ustrd>?</Ustrd>", "<Ustrd>changed</Ustrd>"))
    custody.import_statement(second)
    assert custody.bank_cash_fen() == 1_751_149
    with pytest.raises(InvalidInput, match="not ours"):
        custody.import_statement(SimulatedBank("OTHER").close_statement(at=EOD))


def test_payout_round_trip_through_pain001(custody: CustodyService, bank: SimulatedBank) -> None:
    custody.import_statement(fund(bank))
    custody.request_payout("INV-0001", 400_000, payout_id=777)
    assert custody.request_payout("INV-0001", 400_000, payout_id=777) == 777  # retry: no-op
    with pytest.raises(RuleViolation, match="less than"):
        custody.request_payout("INV-0001", 1_100_001, payout_id=778)
    assert custody.investor_balances()["INV-0001"] == 1_500_000  # reserved, not yet posted
    pain = custody.export_payouts(at=EOD, execution_date=DAY)
    assert pain is not None
    pf = read_payment_file(pain)
    assert [(p.end_to_end_id, p.amount_fen, p.creditor_account) for p in pf.payments] == [
        (f"{777:032x}", 400_000, "6217001")
    ]
    assert custody.export_payouts(at=EOD, execution_date=DAY) is None  # exported once
    assert bank.execute_payment_file(pain, day=DAY) == 1
    report = custody.import_statement(bank.close_statement(at=EOD))
    assert report.payouts_settled == 1
    assert custody.investor_balances()["INV-0001"] == 1_100_000
    assert custody.bank_cash_fen() == bank.balance_fen == 1_351_049
    assert custody.ledger.audit() == []


def test_a_payment_file_under_a_chosen_message_id_is_written_again_until_paid(
    custody: CustodyService, bank: SimulatedBank
) -> None:
    """The platform's end of day records the MsgId before the export; after a crash that lost
    the bank's copy, exporting under it gives the same file (and takes no newer payout), and
    once the bank paid it, nothing."""
    custody.import_statement(fund(bank))
    custody.request_payout("INV-0001", 400_000, payout_id=777)
    mid = payment_message_id(EOD)
    first = custody.export_payouts(at=EOD, execution_date=DAY, message_id=mid)
    assert first is not None and read_payment_file(first).message_id == mid
    custody.request_payout("INV-0002", 50_000, payout_id=778)  # after the export
    again = custody.export_payouts(at=EOD, execution_date=DAY, message_id=mid)
    assert again == first  # the same file: the bank refuses it if it executed it
    assert bank.execute_payment_file(again, day=DAY) == 1
    with pytest.raises(Conflict, match="already executed"):
        bank.execute_payment_file(first, day=DAY)
    assert custody.import_statement(bank.close_statement(at=EOD)).payouts_settled == 1
    assert custody.export_payouts(at=EOD, execution_date=DAY, message_id=mid) is None  # paid
    later = custody.export_payouts(at=EOD, execution_date=DAY)  # the newer payout: its own
    assert later is not None
    assert [p.amount_fen for p in read_payment_file(later).payments] == [50_000]


def test_pain001_inconsistent_file_is_refused(custody: CustodyService, bank: SimulatedBank) -> None:
    custody.import_statement(fund(bank))
    custody.request_payout("INV-0002", 50, payout_id=9)
    pain = custody.export_payouts(at=EOD, execution_date=DAY)
    assert pain is not None
    with pytest.raises(DataFileError, match="CtrlSum"):
        bank.execute_payment_file(
            mutate(pain, "<CtrlSum>0.50</CtrlSum>", "<CtrlSum>0.60</CtrlSum>"), day=DAY
        )
    assert bank.balance_fen == 1_751_049


def test_bank_debit_of_a_different_amount_is_rejected(
    custody: CustodyService, bank: SimulatedBank
) -> None:
    custody.import_statement(fund(bank))
    custody.request_payout("INV-0002", 50_000, payout_id=10)
    pain = custody.export_payouts(at=EOD, execution_date=DAY)
    assert pain is not None
    bank.execute_payment_file(
        pain.replace(b">500.00<", b">500.01<"),
        day=DAY,  # the bank pays one fen too much
    )
    with pytest.raises(InvalidInput, match="which is 50000 fen"):
        custody.import_statement(bank.close_statement(at=EOD))
    assert custody.bank_cash_fen() == 1_751_049
