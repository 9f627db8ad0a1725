"""CashToken: every external function, a negative test beside each positive one."""

from __future__ import annotations

import boa
from contract_system import System, ref

from crowdleverage.chain.roles import Role

ZERO = "0x" + "00" * 20


def _fund(system: System, to: str, amount_fen: int, tag: str = "dep") -> None:
    system.cash.mint(to, amount_fen, ref(f"{tag}-{to}-{amount_fen}"), sender=system.custodian)


def test_metadata(system: System) -> None:
    assert system.cash.decimals() == 2
    assert system.cash.symbol() == "CNYC"
    assert system.cash.REGISTRY() == system.registry.address


def test_mint_credits_and_consumes_reference(system: System) -> None:
    system.cash.mint(system.investor, 1_000_000, ref("T1"), sender=system.custodian)
    log = system.cash.get_logs()[-1]
    assert type(log).__name__ == "Minted"
    assert (log.amount_fen, log.supply_after_fen) == (1_000_000, 1_000_000)
    assert system.cash.balanceOf(system.investor) == 1_000_000
    assert system.cash.totalSupply() == 1_000_000
    assert system.cash.ref_used(ref("T1"))


def test_mint_rejects_reused_reference(system: System) -> None:
    system.cash.mint(system.investor, 100, ref("T1"), sender=system.custodian)
    with boa.reverts("cash: reference already used"):
        system.cash.mint(system.borrower, 100, ref("T1"), sender=system.custodian)


def test_mint_rejects_non_custodian_and_bad_input(system: System) -> None:
    with boa.reverts("cash: caller is not custodian"):
        system.cash.mint(system.investor, 100, ref("T1"), sender=system.operator)
    with boa.reverts("cash: zero amount"):
        system.cash.mint(system.investor, 0, ref("T1"), sender=system.custodian)
    with boa.reverts("cash: empty reference"):
        system.cash.mint(system.investor, 100, b"\0" * 32, sender=system.custodian)
    with boa.reverts("cash: receiver not verified"):
        system.cash.mint(system.outsider, 100, ref("T1"), sender=system.custodian)
    with boa.reverts("cash: zero address"):
        system.cash.mint(ZERO, 100, ref("T1"), sender=system.custodian)
    # the supply (and so every balance) stays below 2^128: a balance shares its slot
    system.cash.mint(system.investor, 2**128 - 2, ref("T2"), sender=system.custodian)
    with boa.reverts("cash: amount too large"):
        system.cash.mint(system.investor, 2, ref("T3"), sender=system.custodian)
    system.cash.mint(system.investor, 1, ref("T3"), sender=system.custodian)
    assert system.cash.balanceOf(system.investor) == system.cash.totalSupply() == 2**128 - 1
    assert not system.cash.frozen(system.investor) and not system.cash.platform(system.investor)


def test_burn_debits_and_consumes_reference(system: System) -> None:
    _fund(system, system.investor, 500)
    system.cash.burn(system.investor, 200, ref("W1"), sender=system.custodian)
    log = system.cash.get_logs()[-1]
    assert type(log).__name__ == "Burned"
    assert (log.amount_fen, log.supply_after_fen) == (200, 300)
    assert system.cash.balanceOf(system.investor) == 300
    assert system.cash.ref_used(ref("W1"))


def test_burn_rejects_bad_calls(system: System) -> None:
    _fund(system, system.investor, 500)
    with boa.reverts("cash: caller is not custodian"):
        system.cash.burn(system.investor, 100, ref("W1"), sender=system.investor)
    with boa.reverts("cash: insufficient balance"):
        system.cash.burn(system.investor, 501, ref("W1"), sender=system.custodian)
    with boa.reverts("cash: zero amount"):
        system.cash.burn(system.investor, 0, ref("W1"), sender=system.custodian)
    system.cash.burn(system.investor, 1, ref("W1"), sender=system.custodian)
    with boa.reverts("cash: reference already used"):
        system.cash.burn(system.investor, 1, ref("W1"), sender=system.custodian)
    system.cash.set_frozen(system.investor, True, sender=system.compliance)
    with boa.reverts("cash: holder frozen"):
        system.cash.burn(system.investor, 1, ref("W2"), sender=system.custodian)


def test_mint_and_burn_share_one_reference_space(system: System) -> None:
    _fund(system, system.investor, 500, tag="X")
    system.cash.mint(system.investor, 5, ref("R"), sender=system.custodian)
    with boa.reverts("cash: reference already used"):
        system.cash.burn(system.investor, 5, ref("R"), sender=system.custodian)


def test_transfer_between_verified_and_platform(system: System) -> None:
    _fund(system, system.investor, 1_000)
    assert system.cash.transfer(system.pool, 400, sender=system.investor)
    assert system.cash.balanceOf(system.pool) == 400
    assert system.cash.balanceOf(system.investor) == 600
    assert system.cash.transfer(system.borrower, 0, sender=system.pool)  # ERC-20: zero is fine


def test_transfer_rejects_unverified_frozen_expired(system: System) -> None:
    _fund(system, system.investor, 1_000)
    with boa.reverts("cash: receiver not verified"):
        system.cash.transfer(system.outsider, 1, sender=system.investor)
    with boa.reverts("cash: sender not verified"):
        system.cash.transfer(system.investor, 0, sender=system.outsider)
    with boa.reverts("cash: insufficient balance"):
        system.cash.transfer(system.pool, 1_001, sender=system.investor)
    with boa.reverts("cash: zero address"):
        system.cash.transfer(ZERO, 1, sender=system.investor)
    system.cash.set_frozen(system.pool, True, sender=system.compliance)
    with boa.reverts("cash: receiver frozen"):
        system.cash.transfer(system.pool, 1, sender=system.investor)
    system.registry.set_frozen(system.investor, True, sender=system.compliance)
    with boa.reverts("cash: sender not verified"):
        system.cash.transfer(system.borrower, 1, sender=system.investor)


def test_transfer_from_frozen_sender_reverts(system: System) -> None:
    _fund(system, system.investor, 1_000)
    system.cash.set_frozen(system.investor, True, sender=system.compliance)
    with boa.reverts("cash: sender frozen"):
        system.cash.transfer(system.pool, 1, sender=system.investor)


def test_expired_identity_cannot_send(system: System) -> None:
    _fund(system, system.borrower, 1_000)
    system.register(system.borrower, Role.BORROWER, expires_in_s=60)
    boa.env.time_travel(seconds=61)
    with boa.reverts("cash: sender not verified"):
        system.cash.transfer(system.pool, 1, sender=system.borrower)


def test_approve_and_transfer_from(system: System) -> None:
    _fund(system, system.investor, 1_000)
    assert system.cash.approve(system.pool, 300, sender=system.investor)
    assert system.cash.allowance(system.investor, system.pool) == 300
    assert system.cash.transferFrom(system.investor, system.pool, 200, sender=system.pool)
    assert system.cash.allowance(system.investor, system.pool) == 100
    assert system.cash.balanceOf(system.pool) == 200


def test_transfer_from_rejects_over_allowance_and_unverified_spender(system: System) -> None:
    _fund(system, system.investor, 1_000)
    system.cash.approve(system.pool, 100, sender=system.investor)
    with boa.reverts("cash: insufficient allowance"):
        system.cash.transferFrom(system.investor, system.pool, 101, sender=system.pool)
    system.cash.approve(system.outsider, 100, sender=system.investor)
    with boa.reverts("cash: spender not verified"):
        system.cash.transferFrom(system.investor, system.pool, 1, sender=system.outsider)


def test_approve_rejects_zero_spender(system: System) -> None:
    with boa.reverts("cash: zero address"):
        system.cash.approve(ZERO, 1, sender=system.investor)


def test_pause_blocks_everything_until_unpause(system: System) -> None:
    _fund(system, system.investor, 1_000)
    system.cash.pause(sender=system.operator)
    assert system.cash.paused()
    with boa.reverts("cash: paused"):
        system.cash.transfer(system.pool, 1, sender=system.investor)
    with boa.reverts("cash: paused"):
        system.cash.mint(system.investor, 1, ref("P1"), sender=system.custodian)
    with boa.reverts("cash: paused"):
        system.cash.burn(system.investor, 1, ref("P2"), sender=system.custodian)
    system.cash.unpause(sender=system.operator)
    assert system.cash.transfer(system.pool, 1, sender=system.investor)


def test_pause_rejects_non_operator_and_double(system: System) -> None:
    with boa.reverts("cash: caller is not operator"):
        system.cash.pause(sender=system.custodian)
    with boa.reverts("cash: not paused"):
        system.cash.unpause(sender=system.operator)
    system.cash.pause(sender=system.operator)
    with boa.reverts("cash: already paused"):
        system.cash.pause(sender=system.operator)
    with boa.reverts("cash: caller is not operator"):
        system.cash.unpause(sender=system.investor)


def test_set_frozen_by_compliance(system: System) -> None:
    system.cash.set_frozen(system.investor, True, sender=system.compliance)
    assert system.cash.frozen(system.investor)
    system.cash.set_frozen(system.investor, False, sender=system.compliance)
    assert not system.cash.frozen(system.investor)


def test_set_frozen_rejects_non_compliance_and_unchanged(system: System) -> None:
    with boa.reverts("cash: caller is not compliance"):
        system.cash.set_frozen(system.investor, True, sender=system.operator)
    with boa.reverts("cash: frozen flag unchanged"):
        system.cash.set_frozen(system.investor, False, sender=system.compliance)


def test_frozen_custodian_cannot_mint(system: System) -> None:
    system.registry.set_frozen(system.custodian, True, sender=system.compliance)
    with boa.reverts("cash: caller is not custodian"):
        system.cash.mint(system.investor, 1, ref("F"), sender=system.custodian)


def test_name_and_constructor_rejects_zero_registry(system: System) -> None:
    from crowdleverage.chain.artifacts import deployer

    assert system.cash.name() == "CrowdLeverage CNY"
    with boa.reverts("cash: zero registry"):
        deployer("CashToken").deploy(ZERO)


def test_set_platform_marks_only_a_platform_contract(system: System) -> None:
    contract = system.shares.address  # any contract: it needs the PLATFORM role first
    with boa.reverts("cash: caller is not compliance"):
        system.cash.set_platform(contract, True, sender=system.operator)
    with boa.reverts("cash: not a platform contract"):
        system.cash.set_platform(contract, True, sender=system.compliance)
    system.register(system.investor, Role.INVESTOR | Role.PLATFORM)
    with boa.reverts("cash: not a platform contract"):  # a human address, whatever its roles
        system.cash.set_platform(system.investor, True, sender=system.compliance)
    system.register(contract, Role.PLATFORM)
    system.cash.set_platform(contract, True, sender=system.compliance)
    log = system.cash.get_logs()[-1]
    assert type(log).__name__ == "PlatformSet"
    assert (log.account, log.by, log.platform) == (contract, system.compliance, True)
    assert system.cash.platform(contract) and not system.cash.frozen(contract)
    with boa.reverts("cash: platform flag unchanged"):
        system.cash.set_platform(contract, True, sender=system.compliance)


def test_a_marked_platform_contract_skips_the_registry_not_the_cash_freeze(
    system: System,
) -> None:
    contract = system.shares.address
    system.register(contract, Role.PLATFORM)
    system.cash.set_platform(contract, True, sender=system.compliance)
    _fund(system, system.investor, 1_000)
    # the registry freezes the contract: its side is not checked there any more
    system.registry.set_frozen(contract, True, sender=system.compliance)
    system.cash.transfer(contract, 300, sender=system.investor)
    system.cash.transfer(system.investor, 100, sender=contract)
    # a human party is still checked in the registry
    system.registry.set_frozen(system.investor, True, sender=system.compliance)
    with boa.reverts("cash: receiver not verified"):
        system.cash.transfer(system.investor, 100, sender=contract)
    system.registry.set_frozen(system.investor, False, sender=system.compliance)
    # the cash freeze applies to it, and keeps the platform flag
    system.cash.set_frozen(contract, True, sender=system.compliance)
    assert system.cash.frozen(contract) and system.cash.platform(contract)
    with boa.reverts("cash: sender frozen"):
        system.cash.transfer(system.investor, 100, sender=contract)
    with boa.reverts("cash: receiver frozen"):
        system.cash.transfer(contract, 100, sender=system.investor)
    system.cash.set_frozen(contract, False, sender=system.compliance)
    assert system.cash.platform(contract)
    # unmarked, the registry's freeze applies to it again
    system.cash.set_platform(contract, False, sender=system.compliance)
    assert not system.cash.platform(contract)
    with boa.reverts("cash: sender not verified"):
        system.cash.transfer(system.investor, 100, sender=contract)
    with boa.reverts("cash: receiver not verified"):
        system.cash.transfer(contract, 100, sender=system.investor)
    assert system.cash.balanceOf(contract) == 200
