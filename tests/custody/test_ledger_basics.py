"""The ledger's TigerBeetle semantics, one behaviour per test, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from crowdleverage.custody.ledger import Ledger
from crowdleverage.custody.types import (
    Account,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    PendingStatus,
    Transfer,
    TransferFlags,
    new_id,
)

R = CreateTransferResult
CNY = 156  # ledger number: ISO 4217 numeric code of CNY
CASH, INVESTOR = 1, 2  # account codes
BANK, ALICE_INV, BOB_INV = 10, 11, 12
LINKED, PENDING = TransferFlags.LINKED, TransferFlags.PENDING
POST, VOID = TransferFlags.POST_PENDING_TRANSFER, TransferFlags.VOID_PENDING_TRANSFER


class Clock:
    def __init__(self) -> None:
        self.now_ns = 1_700_000_000 * 10**9

    def __call__(self) -> int:
        return self.now_ns


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(engine: Engine, clock: Clock) -> Ledger:
    led = Ledger(engine, clock_ns=clock)
    led.create_schema()
    res = led.create_accounts(
        [
            Account(BANK, CNY, CASH),
            Account(ALICE_INV, CNY, INVESTOR, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
            Account(BOB_INV, CNY, INVESTOR, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
        ]
    )
    assert res == [CreateAccountResult.CREATED] * 3
    return led


def balances(led: Ledger, *ids: int) -> list[tuple[int, int, int, int]]:
    return [
        (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
        for a in led.lookup_accounts(ids)
    ]


def test_single_phase_transfer_moves_posted_totals(ledger: Ledger) -> None:
    res = ledger.create_transfers([Transfer(1, BANK, ALICE_INV, 150_000, CNY, 1)])
    assert res == [R.CREATED]
    assert balances(ledger, BANK, ALICE_INV) == [(0, 150_000, 0, 0), (0, 0, 0, 150_000)]
    [t] = ledger.lookup_transfers([1])
    assert (t.amount, t.debit_account_id, t.credit_account_id) == (150_000, BANK, ALICE_INV)
    assert t.timestamp > 0


def test_retry_is_idempotent_and_differences_are_named(ledger: Ledger) -> None:
    t = Transfer(7, BANK, ALICE_INV, 500, CNY, 1, user_data_128=99)
    assert ledger.create_transfers([t]) == [R.CREATED]
    before = balances(ledger, BANK, ALICE_INV)
    assert ledger.create_transfers([t]) == [R.EXISTS]
    assert ledger.create_transfers(
        [Transfer(7, BANK, ALICE_INV, 501, CNY, 1, user_data_128=99)]
    ) == [R.EXISTS_WITH_DIFFERENT_AMOUNT]
    assert ledger.create_transfers([Transfer(7, BANK, BOB_INV, 500, CNY, 1, user_data_128=99)]) == [
        R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
    ]
    assert ledger.create_transfers([Transfer(7, BANK, ALICE_INV, 500, CNY, 1)]) == [
        R.EXISTS_WITH_DIFFERENT_USER_DATA_128
    ]
    assert balances(ledger, BANK, ALICE_INV) == before


def test_same_id_twice_in_one_batch_creates_once(ledger: Ledger) -> None:
    t = Transfer(8, BANK, ALICE_INV, 300, CNY, 1)
    assert ledger.create_transfers([t, t]) == [R.CREATED, R.EXISTS]
    assert balances(ledger, ALICE_INV) == [(0, 0, 0, 300)]


def test_validation_results(ledger: Ledger) -> None:
    res = ledger.create_transfers(
        [
            Transfer(0, BANK, ALICE_INV, 1, CNY, 1),
            Transfer(21, BANK, BANK, 1, CNY, 1),
            Transfer(22, BANK, ALICE_INV, 0, CNY, 1),
            Transfer(23, BANK, ALICE_INV, -5, CNY, 1),
            Transfer(24, BANK, 999, 1, CNY, 1),
            Transfer(25, BANK, ALICE_INV, 1, CNY, 1, flags=PENDING | POST),
            Transfer(26, BANK, ALICE_INV, 1, CNY, 1, timeout_s=5),
            Transfer(27, BANK, ALICE_INV, 1, 840, 1),
            Transfer(28, BANK, ALICE_INV, 1, CNY, 0),
            Transfer(29, BANK, ALICE_INV, 1, CNY, 1, flags=TransferFlags(1 << 9)),
        ]
    )
    assert res == [
        R.ID_MUST_NOT_BE_ZERO,
        R.ACCOUNTS_MUST_BE_DIFFERENT,
        R.AMOUNT_MUST_NOT_BE_ZERO,
        R.AMOUNT_MUST_NOT_BE_NEGATIVE,
        R.CREDIT_ACCOUNT_NOT_FOUND,
        R.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
        R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER,
        R.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS,
        R.CODE_MUST_NOT_BE_ZERO,
        R.RESERVED_FLAG,
    ]
    assert ledger.lookup_transfers(range(20, 30)) == []


def test_debits_must_not_exceed_credits(ledger: Ledger) -> None:
    assert ledger.create_transfers([Transfer(1, BANK, ALICE_INV, 1_000, CNY, 1)]) == [R.CREATED]
    res = ledger.create_transfers(
        [Transfer(2, ALICE_INV, BANK, 1_001, CNY, 2), Transfer(3, ALICE_INV, BANK, 1_000, CNY, 2)]
    )
    assert res == [R.EXCEEDS_CREDITS, R.CREATED]
    assert balances(ledger, ALICE_INV) == [(0, 1_000, 0, 1_000)]


def test_credits_must_not_exceed_debits(ledger: Ledger) -> None:
    limited = Account(40, CNY, CASH, AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
    assert ledger.create_accounts([limited]) == [CreateAccountResult.CREATED]
    assert ledger.create_transfers([Transfer(1, BANK, 40, 1, CNY, 1)]) == [R.EXCEEDS_DEBITS]
    assert ledger.create_transfers([Transfer(2, 40, BANK, 5, CNY, 1)]) == [R.CREATED]
    assert ledger.create_transfers([Transfer(3, BANK, 40, 5, CNY, 1)]) == [R.CREATED]


def test_linked_chain_fails_together(ledger: Ledger) -> None:
    res = ledger.create_transfers(
        [
            Transfer(1, BANK, ALICE_INV, 100, CNY, 1, flags=LINKED),
            Transfer(2, ALICE_INV, BOB_INV, 100, CNY, 1, flags=LINKED),
            Transfer(3, BOB_INV, ALICE_INV, 1_000, CNY, 1),  # exceeds Bob's credits
            Transfer(4, BANK, BOB_INV, 7, CNY, 1),
        ]
    )
    assert res == [R.LINKED_EVENT_FAILED, R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS, R.CREATED]
    assert ledger.lookup_transfers([1, 2, 3]) == []
    assert balances(ledger, ALICE_INV, BOB_INV) == [(0, 0, 0, 0), (0, 0, 0, 7)]


def test_linked_chain_succeeds_together_and_open_chain_fails(ledger: Ledger) -> None:
    ok = ledger.create_transfers(
        [
            Transfer(1, BANK, ALICE_INV, 100, CNY, 1, flags=LINKED),
            Transfer(2, ALICE_INV, BOB_INV, 100, CNY, 1),
        ]
    )
    assert ok == [R.CREATED, R.CREATED]
    assert balances(ledger, ALICE_INV, BOB_INV) == [(0, 100, 0, 100), (0, 0, 0, 100)]
    open_chain = ledger.create_transfers(
        [
            Transfer(5, BANK, ALICE_INV, 1, CNY, 1),
            Transfer(6, BANK, ALICE_INV, 1, CNY, 1, flags=LINKED),
            Transfer(7, BANK, ALICE_INV, 1, CNY, 1, flags=LINKED),
        ]
    )
    assert open_chain == [R.CREATED, R.LINKED_EVENT_FAILED, R.LINKED_EVENT_CHAIN_OPEN]


def test_pending_post_partial_releases_the_rest(ledger: Ledger) -> None:
    assert ledger.create_transfers(
        [Transfer(1, BANK, ALICE_INV, 1_000, CNY, 1, flags=PENDING)]
    ) == [R.CREATED]
    assert balances(ledger, BANK, ALICE_INV) == [(1_000, 0, 0, 0), (0, 0, 1_000, 0)]
    assert ledger.create_transfers([Transfer(2, amount=600, pending_id=1, flags=POST)]) == [
        R.CREATED
    ]
    assert balances(ledger, BANK, ALICE_INV) == [(0, 600, 0, 0), (0, 0, 0, 600)]
    assert ledger.pending_status(1) is PendingStatus.POSTED
    again = ledger.create_transfers(
        [Transfer(3, pending_id=1, flags=POST), Transfer(4, pending_id=1, flags=VOID)]
    )
    assert again == [R.PENDING_TRANSFER_ALREADY_POSTED, R.PENDING_TRANSFER_ALREADY_POSTED]
    [post] = ledger.lookup_transfers([2])
    assert (post.debit_account_id, post.credit_account_id, post.amount) == (BANK, ALICE_INV, 600)


def test_void_and_post_checks(ledger: Ledger) -> None:
    ledger.create_transfers([Transfer(1, BANK, ALICE_INV, 1_000, CNY, 1, flags=PENDING)])
    res = ledger.create_transfers(
        [
            Transfer(2, amount=1_001, pending_id=1, flags=POST),
            Transfer(3, amount=5, pending_id=1, flags=VOID),
            Transfer(4, pending_id=77, flags=VOID),
            Transfer(5, BOB_INV, pending_id=1, flags=VOID),
            Transfer(6, pending_id=1, flags=VOID),
            Transfer(7, pending_id=1, flags=POST),
        ]
    )
    assert res == [
        R.EXCEEDS_PENDING_TRANSFER_AMOUNT,
        R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT,
        R.PENDING_TRANSFER_NOT_FOUND,
        R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID,
        R.CREATED,
        R.PENDING_TRANSFER_ALREADY_VOIDED,
    ]
    assert balances(ledger, BANK, ALICE_INV) == [(0, 0, 0, 0), (0, 0, 0, 0)]
    single = ledger.create_transfers(
        [Transfer(8, BANK, ALICE_INV, 5, CNY, 1), Transfer(9, pending_id=8, flags=POST)]
    )
    assert single == [R.CREATED, R.PENDING_TRANSFER_NOT_PENDING]


def test_pending_timeout_expires(ledger: Ledger, clock: Clock) -> None:
    ledger.create_transfers(
        [Transfer(1, BANK, ALICE_INV, 400, CNY, 1, flags=PENDING, timeout_s=60)]
    )
    clock.now_ns += 59 * 10**9
    assert ledger.expire_pending() == 0
    clock.now_ns += 2 * 10**9
    assert ledger.create_transfers([Transfer(2, pending_id=1, flags=POST)]) == [
        R.PENDING_TRANSFER_EXPIRED
    ]
    assert ledger.pending_status(1) is PendingStatus.EXPIRED
    assert balances(ledger, BANK, ALICE_INV) == [(0, 0, 0, 0), (0, 0, 0, 0)]
    assert ledger.audit() == []


def test_pending_created_and_posted_in_one_linked_batch(ledger: Ledger) -> None:
    res = ledger.create_transfers(
        [
            Transfer(1, BANK, ALICE_INV, 50, CNY, 1, flags=PENDING | LINKED),
            Transfer(2, pending_id=1, flags=POST),
        ]
    )
    assert res == [R.CREATED, R.CREATED]
    assert ledger.pending_status(1) is PendingStatus.POSTED
    assert ledger.audit() == []


def test_accounts_results(ledger: Ledger) -> None:
    A = CreateAccountResult
    res = ledger.create_accounts(
        [
            Account(BANK, CNY, CASH),
            Account(BANK, CNY, INVESTOR),
            Account(0, CNY, CASH),
            Account(50, 0, CASH),
            Account(51, CNY, CASH, AccountFlags(6)),
            Account(52, CNY, CASH, AccountFlags.LINKED),
            Account(53, CNY, 0),
        ]
    )
    assert res == [
        A.EXISTS,
        A.EXISTS_WITH_DIFFERENT_CODE,
        A.ID_MUST_NOT_BE_ZERO,
        A.LEDGER_MUST_NOT_BE_ZERO,
        A.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
        A.LINKED_EVENT_FAILED,
        A.CODE_MUST_NOT_BE_ZERO,
    ]
    assert ledger.lookup_accounts([52]) == []


def test_totals_balance_and_new_ids_sort_by_time(ledger: Ledger) -> None:
    ids = [new_id() for _ in range(200)]
    assert ids == sorted(ids) and len(set(ids)) == 200
    ledger.create_transfers([Transfer(i, BANK, ALICE_INV, 3, CNY, 1) for i in ids])
    [tot] = ledger.totals()
    assert tot.debits_posted == tot.credits_posted == 600
    assert ledger.audit() == []
