"""ShareCertificates: every external function, a negative test beside each positive one."""

from __future__ import annotations

import boa
from contract_system import PAB, System, ref

ZERO = "0x" + "00" * 20


def _buy(system: System, holder: str, qty: int, tag: str = "fill") -> None:
    system.shares.mint(holder, PAB, qty, ref(f"{tag}-{holder}-{qty}"), sender=system.broker)


def _next_day(system: System) -> None:
    system.oracle.open_day(system.oracle.trading_day() + 1, sender=system.operator)


def test_mint_credits_locked_shares(system: System) -> None:
    system.oracle.open_day(3, sender=system.operator)
    system.shares.mint(system.borrower, PAB, 1_000, ref("F1"), sender=system.broker)
    log = system.shares.get_logs()[-1]
    assert (log.qty, log.day, log.supply_after) == (1_000, 3, 1_000)
    assert system.shares.balance_of(system.borrower, PAB) == 1_000
    assert system.shares.total_supply(PAB) == 1_000
    assert system.shares.locked_balance_of(system.borrower, PAB) == 1_000
    assert system.shares.unlocked_balance_of(system.borrower, PAB) == 0
    assert system.shares.ref_used(ref("F1"))


def test_mint_rejects_bad_calls(system: System) -> None:
    with boa.reverts("shares: caller is not broker"):
        system.shares.mint(system.borrower, PAB, 100, ref("F1"), sender=system.operator)
    with boa.reverts("shares: bad security code"):
        system.shares.mint(system.borrower, 0, 100, ref("F1"), sender=system.broker)
    with boa.reverts("shares: zero quantity"):
        system.shares.mint(system.borrower, PAB, 0, ref("F1"), sender=system.broker)
    with boa.reverts("shares: empty reference"):
        system.shares.mint(system.borrower, PAB, 100, b"\0" * 32, sender=system.broker)
    with boa.reverts("shares: receiver not verified"):
        system.shares.mint(system.outsider, PAB, 100, ref("F1"), sender=system.broker)
    with boa.reverts("shares: zero address"):
        system.shares.mint(ZERO, PAB, 100, ref("F1"), sender=system.broker)
    system.shares.mint(system.borrower, PAB, 100, ref("F1"), sender=system.broker)
    with boa.reverts("shares: reference already used"):
        system.shares.mint(system.borrower, PAB, 100, ref("F1"), sender=system.broker)


def test_t_plus_one_unlocks_next_day(system: System) -> None:
    _buy(system, system.borrower, 500)
    _next_day(system)
    _buy(system, system.borrower, 300, tag="d1")
    assert system.shares.unlocked_balance_of(system.borrower, PAB) == 500
    assert system.shares.locked_balance_of(system.borrower, PAB) == 300
    _buy(system, system.borrower, 200, tag="d1b")
    assert system.shares.locked_balance_of(system.borrower, PAB) == 500
    _next_day(system)
    assert system.shares.unlocked_balance_of(system.borrower, PAB) == 1_000


def test_transfer_moves_unlocked_shares(system: System) -> None:
    _buy(system, system.borrower, 500)
    _next_day(system)
    system.shares.transfer(system.pool, PAB, 200, sender=system.borrower)
    log = system.shares.get_logs()[-1]
    assert (log.sender, log.receiver, log.code, log.qty) == (
        system.borrower, system.pool, PAB, 200,
    )  # fmt: skip
    assert system.shares.balance_of(system.pool, PAB) == 200
    assert system.shares.balance_of(system.borrower, PAB) == 300


def test_transfer_rejects_locked_unverified_and_overdraft(system: System) -> None:
    _buy(system, system.borrower, 500)
    with boa.reverts("shares: locked until next trading day"):
        system.shares.transfer(system.pool, PAB, 1, sender=system.borrower)
    _next_day(system)
    with boa.reverts("shares: insufficient balance"):
        system.shares.transfer(system.pool, PAB, 501, sender=system.borrower)
    with boa.reverts("shares: receiver not verified"):
        system.shares.transfer(system.outsider, PAB, 1, sender=system.borrower)
    with boa.reverts("shares: sender not verified"):
        system.shares.transfer(system.borrower, PAB, 1, sender=system.outsider)
    with boa.reverts("shares: zero quantity"):
        system.shares.transfer(system.pool, PAB, 0, sender=system.borrower)
    system.registry.set_frozen(system.borrower, True, sender=system.compliance)
    with boa.reverts("shares: sender not verified"):
        system.shares.transfer(system.pool, PAB, 1, sender=system.borrower)


def test_burn_retires_unlocked_shares(system: System) -> None:
    _buy(system, system.borrower, 500)
    _next_day(system)
    system.shares.burn(system.borrower, PAB, 200, ref("S1"), sender=system.broker)
    log = system.shares.get_logs()[-1]
    assert (log.qty, log.supply_after) == (200, 300)
    assert system.shares.total_supply(PAB) == 300


def test_burn_rejects_locked_and_bad_calls(system: System) -> None:
    _buy(system, system.borrower, 500)
    with boa.reverts("shares: locked until next trading day"):
        system.shares.burn(system.borrower, PAB, 1, ref("S1"), sender=system.broker)
    _next_day(system)
    with boa.reverts("shares: caller is not broker"):
        system.shares.burn(system.borrower, PAB, 1, ref("S1"), sender=system.borrower)
    with boa.reverts("shares: insufficient balance"):
        system.shares.burn(system.borrower, PAB, 501, ref("S1"), sender=system.broker)
    system.shares.burn(system.borrower, PAB, 1, ref("S1"), sender=system.broker)
    with boa.reverts("shares: reference already used"):
        system.shares.burn(system.borrower, PAB, 1, ref("S1"), sender=system.broker)


def test_forced_transfer_carries_lock(system: System) -> None:
    _buy(system, system.borrower, 300)
    _next_day(system)
    _buy(system, system.borrower, 200, tag="today")
    system.shares.forced_transfer(system.borrower, system.pool, PAB, 400, sender=system.operator)
    log = system.shares.get_logs()[-1]
    assert (log.qty, log.locked_qty) == (400, 100)
    assert system.shares.balance_of(system.borrower, PAB) == 100
    assert system.shares.locked_balance_of(system.borrower, PAB) == 100
    assert system.shares.locked_balance_of(system.pool, PAB) == 100
    assert system.shares.unlocked_balance_of(system.pool, PAB) == 300


def test_forced_transfer_rejects_bad_calls(system: System) -> None:
    _buy(system, system.borrower, 300)
    with boa.reverts("shares: caller is not operator"):
        system.shares.forced_transfer(system.borrower, system.pool, PAB, 1, sender=system.broker)
    with boa.reverts("shares: insufficient balance"):
        system.shares.forced_transfer(
            system.borrower, system.pool, PAB, 301, sender=system.operator
        )
    with boa.reverts("shares: receiver not verified"):
        system.shares.forced_transfer(
            system.borrower, system.outsider, PAB, 1, sender=system.operator
        )
    with boa.reverts("shares: transfer to self"):
        system.shares.forced_transfer(
            system.borrower, system.borrower, PAB, 1, sender=system.operator
        )
    with boa.reverts("shares: zero quantity"):
        system.shares.forced_transfer(system.borrower, system.pool, PAB, 0, sender=system.operator)


def test_forced_transfer_from_frozen_holder_works(system: System) -> None:
    _buy(system, system.borrower, 300)
    system.registry.set_frozen(system.borrower, True, sender=system.compliance)
    system.shares.forced_transfer(system.borrower, system.pool, PAB, 300, sender=system.operator)
    assert system.shares.balance_of(system.pool, PAB) == 300


def test_pause_blocks_holder_and_broker_not_operator(system: System) -> None:
    _buy(system, system.borrower, 300)
    _next_day(system)
    system.shares.pause(sender=system.operator)
    assert system.shares.paused()
    with boa.reverts("shares: paused"):
        system.shares.transfer(system.pool, PAB, 1, sender=system.borrower)
    with boa.reverts("shares: paused"):
        system.shares.mint(system.borrower, PAB, 1, ref("P1"), sender=system.broker)
    with boa.reverts("shares: paused"):
        system.shares.burn(system.borrower, PAB, 1, ref("P2"), sender=system.broker)
    system.shares.forced_transfer(system.borrower, system.pool, PAB, 1, sender=system.operator)
    system.shares.unpause(sender=system.operator)
    system.shares.transfer(system.pool, PAB, 1, sender=system.borrower)
    assert system.shares.balance_of(system.pool, PAB) == 2


def test_pause_rejects_non_operator_and_double(system: System) -> None:
    with boa.reverts("shares: caller is not operator"):
        system.shares.pause(sender=system.broker)
    with boa.reverts("shares: not paused"):
        system.shares.unpause(sender=system.operator)
    system.shares.pause(sender=system.operator)
    with boa.reverts("shares: already paused"):
        system.shares.pause(sender=system.operator)
    with boa.reverts("shares: caller is not operator"):
        system.shares.unpause(sender=system.broker)


def test_immutables(system: System) -> None:
    assert system.shares.REGISTRY() == system.registry.address
    assert system.shares.ORACLE() == system.oracle.address


def test_locks_getter_records_day(system: System) -> None:
    system.oracle.open_day(7, sender=system.operator)
    _buy(system, system.borrower, 300)
    lock = system.shares.locks(system.borrower, PAB)
    assert (lock.qty, lock.day) == (300, 7)
    assert system.shares.locks(system.pool, PAB).qty == 0


def test_constructor_rejects_zero_addresses(system: System) -> None:
    from crowdleverage.chain.artifacts import deployer

    with boa.reverts("shares: zero registry"):
        deployer("ShareCertificates").deploy(ZERO, system.oracle.address)
    with boa.reverts("shares: zero oracle"):
        deployer("ShareCertificates").deploy(system.registry.address, ZERO)
