"""ShareCertificates: every external function, a negative test beside each positive one."""

from __future__ import annotations

import boa
import pytest
from contract_system import PAB, System, ref

from crowdleverage.chain.roles import Role

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


def test_set_custody_rejects_bad_calls(system: System) -> None:
    custody = system.cash.address  # any contract: it needs the PLATFORM role
    with boa.reverts("shares: caller is not operator"):
        system.shares.set_custody(custody, sender=system.broker)
    with boa.reverts("shares: not a platform contract"):
        system.shares.set_custody(custody, sender=system.operator)
    system.register(system.investor, Role.INVESTOR | Role.PLATFORM)
    with boa.reverts("shares: not a platform contract"):  # a human address
        system.shares.set_custody(system.investor, sender=system.operator)
    system.register(custody, Role.PLATFORM)
    system.shares.set_custody(custody, sender=system.operator)
    log = system.shares.get_logs()[-1]
    assert (type(log).__name__, log.holder, log.by) == ("CustodySet", custody, system.operator)
    assert system.shares.custody() == custody
    with boa.reverts("shares: custody already set"):
        system.shares.set_custody(custody, sender=system.operator)


def test_set_custody_only_before_any_mint(system: System) -> None:
    _buy(system, system.borrower, 100)
    system.register(system.cash.address, Role.PLATFORM)
    with boa.reverts("shares: certificates already minted"):
        system.shares.set_custody(system.cash.address, sender=system.operator)


def _holding(system: System, who: str) -> tuple[int, ...]:
    s = system.shares
    lock = s.locks(who, PAB)
    return (s.balance_of(who, PAB), s.locked_balance_of(who, PAB),
            s.unlocked_balance_of(who, PAB), lock[0], lock[1])  # fmt: skip


@pytest.mark.parametrize("listed", [False, True])
@pytest.mark.parametrize("mirrored", [False, True])
def test_custody_holder_behaves_as_any_holder(system: System, listed: bool, mirrored: bool) -> None:
    """The custody holder's word lives in the security's slot with the supply: the same
    sequence of mints, burns, transfers and forced transfers gives it the same balances and
    locks as an ordinary holder, and the supply counts both — whether the security was listed
    for custody first (its slot made before the first mint) and whether the oracle tells the
    certificates the trading day (`set_day_sink`) or they ask it."""
    custody = system.cash.address
    system.register(custody, Role.PLATFORM)
    system.shares.set_custody(custody, sender=system.operator)
    if listed:
        system.shares.list_securities([PAB], sender=system.operator)
    if mirrored:
        system.oracle.set_day_sink(system.shares.address, sender=system.operator)
    other = system.pool  # an ordinary holder (verified)
    seen = []
    for who in (custody, other):
        _buy(system, who, 500, tag="a")
        _next_day(system)
        _buy(system, who, 300, tag="b")
        system.shares.burn(who, PAB, 200, ref(f"burn-{who}"), sender=system.broker)
        system.shares.transfer(system.borrower, PAB, 100, sender=who)
        system.shares.forced_transfer(who, system.borrower, PAB, 350, sender=system.operator)
        seen.append((*_holding(system, who), system.oracle.trading_day()))
    for h in seen:  # 200 unlocked moved first, then 150 of the 300 locked today
        assert h[:4] == (150, 150, 0, 150) and h[4] == h[5]
    assert system.shares.total_supply(PAB) == 2 * 600
    assert system.shares.balance_of(system.borrower, PAB) == 2 * 450
    # into the custody holder: a holder's transfer and a forced transfer (lock carried)
    system.shares.transfer(custody, PAB, 100, sender=system.borrower)
    _buy(system, system.borrower, 100, tag="c")
    system.shares.forced_transfer(system.borrower, custody, PAB, 900, sender=system.operator)
    assert _holding(system, custody) == (1_150, 250, 900, 250, system.oracle.trading_day())
    assert system.shares.total_supply(PAB) == 1_300
    assert system.shares.balance_of(custody, PAB) + system.shares.balance_of(other, PAB) == 1_300
    with boa.reverts("shares: locked until next trading day"):
        system.shares.burn(custody, PAB, 901, ref("burn-locked"), sender=system.broker)


def test_supply_and_custody_holding_bounds(system: System) -> None:
    """The supply shares a slot with the custody holder's holding: both stay below 2^80."""
    custody = system.cash.address
    system.register(custody, Role.PLATFORM)
    system.shares.set_custody(custody, sender=system.operator)
    with boa.reverts("shares: quantity too large"):
        system.shares.mint(system.borrower, PAB, 2**80, ref("big"), sender=system.broker)
    with boa.reverts("shares: quantity too large"):
        system.shares.mint(custody, PAB, 2**80, ref("big"), sender=system.broker)
    system.shares.mint(custody, PAB, 2**56 - 1, ref("lock-max"), sender=system.broker)
    with boa.reverts("shares: quantity too large"):  # its T+1 lock is below 2^56
        system.shares.mint(custody, PAB, 1, ref("lock-over"), sender=system.broker)
    _next_day(system)
    system.shares.mint(custody, PAB, 1, ref("next-day"), sender=system.broker)
    assert system.shares.total_supply(PAB) == 2**56
    assert system.shares.locked_balance_of(custody, PAB) == 1


def test_list_securities_makes_the_slot_once(system: System) -> None:
    s = system.shares
    with boa.reverts("shares: caller is not operator"):
        s.list_securities([PAB], sender=system.broker)
    with boa.reverts("shares: bad security code"):
        s.list_securities([PAB, 1_000_000], sender=system.operator)
    assert not s.listed(PAB)
    s.list_securities([PAB], sender=system.operator)
    logs = s.get_logs()
    assert [(type(e).__name__, e.code, e.by) for e in logs] == [
        ("SecurityListed", PAB, system.operator)
    ]
    assert s.listed(PAB) and s.total_supply(PAB) == 0
    s.list_securities([PAB], sender=system.operator)  # listed already: skipped, no event
    assert s.get_logs() == []
    _buy(system, system.borrower, 100)
    _next_day(system)
    system.shares.burn(system.borrower, PAB, 100, ref("out"), sender=system.broker)
    assert s.listed(PAB) and s.total_supply(PAB) == 0


def test_day_sink_mirrors_the_oracle_day(system: System) -> None:
    o, s = system.oracle, system.shares
    with boa.reverts("oracle: caller is not operator"):
        o.set_day_sink(s.address, sender=system.broker)
    with boa.reverts("oracle: day sink not a contract"):
        o.set_day_sink(system.investor, sender=system.operator)
    with boa.reverts("shares: caller is not oracle"):
        s.oracle_day(5, sender=system.operator)
    o.open_day(4, sender=system.operator)
    o.set_day_sink(s.address, sender=system.operator)  # told the current day at once
    assert (o.day_sink(), s.trading_day()) == (s.address, 4)
    with boa.reverts("oracle: day sink already set"):
        o.set_day_sink(s.address, sender=system.operator)
    _next_day(system)
    assert s.trading_day() == o.trading_day() == 5
    _buy(system, system.borrower, 100)
    assert s.locks(system.borrower, PAB)[1] == 5
    with boa.reverts("shares: bad day"):
        s.oracle_day(0, sender=o.address)
