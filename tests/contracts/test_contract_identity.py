"""IdentityRegistry: every external function, a negative test beside each positive one."""

from __future__ import annotations

import boa
from contract_system import CN, YEAR_S, System

from crowdleverage.chain.artifacts import CONTRACTS_DIR
from crowdleverage.chain.roles import Role


def test_role_flag_mirror_matches_vyper_flag(system: System) -> None:
    # Arrange: the on-chain flag numbering is declaration order 1, 2, 4, ...
    vyi = (CONTRACTS_DIR / "interfaces" / "IIdentityRegistry.vyi").read_text()
    block = vyi.split("flag Role:")[1].split("@external")[0]
    names = [line.strip() for line in block.splitlines() if line.strip()]
    for role in Role:
        assert system.registry.has_role(system.admin, int(role)) is False
    # Assert
    assert names == [r.name for r in Role]
    assert [int(r) for r in Role] == [1 << i for i in range(len(names))]


def test_register_sets_identity_and_emits(system: System) -> None:
    account = boa.env.generate_address()
    expires = boa.env.timestamp + YEAR_S
    system.registry.register(account, int(Role.INVESTOR), 4, CN, expires, sender=system.compliance)
    logs = system.registry.get_logs()
    ident = system.registry.identities(account)
    assert (ident.roles, ident.verified, ident.suitability, ident.jurisdiction) == (
        int(Role.INVESTOR), True, 4, CN,
    )  # fmt: skip
    assert ident.expires_at == expires and not ident.frozen
    assert system.registry.is_verified(account)
    assert type(logs[-1]).__name__ == "IdentitySet"
    assert logs[-1].roles_after == int(Role.INVESTOR)


def test_register_counts_new_identities_only(system: System) -> None:
    before = system.registry.identity_count()
    account = boa.env.generate_address()
    system.register(account, Role.INVESTOR)
    system.register(account, Role.BORROWER)
    assert system.registry.identity_count() == before + 1


def test_register_rejects_non_compliance(system: System) -> None:
    with boa.reverts("identity: caller is not compliance"):
        system.registry.register(
            system.outsider, int(Role.INVESTOR), 3, CN, boa.env.timestamp + 10,
            sender=system.operator,
        )  # fmt: skip


def test_owner_acts_as_break_glass_compliance(system: System) -> None:
    account = boa.env.generate_address()
    system.registry.register(
        account, int(Role.COMPLIANCE), 5, CN, boa.env.timestamp + 10, sender=system.admin
    )
    assert system.registry.has_role(account, int(Role.COMPLIANCE))


def test_register_rejects_bad_fields(system: System) -> None:
    now = boa.env.timestamp
    c = system.compliance
    reg = system.registry
    with boa.reverts("identity: zero address"):
        reg.register("0x" + "00" * 20, int(Role.INVESTOR), 3, CN, now + 10, sender=c)
    with boa.reverts("identity: no roles"):
        reg.register(system.outsider, 0, 3, CN, now + 10, sender=c)
    with boa.reverts("identity: suitability not in 1..5"):
        reg.register(system.outsider, int(Role.INVESTOR), 0, CN, now + 10, sender=c)
    with boa.reverts("identity: suitability not in 1..5"):
        reg.register(system.outsider, int(Role.INVESTOR), 6, CN, now + 10, sender=c)
    with boa.reverts("identity: empty jurisdiction"):
        reg.register(system.outsider, int(Role.INVESTOR), 3, b"\0\0", now + 10, sender=c)
    with boa.reverts("identity: expiry not in the future"):
        reg.register(system.outsider, int(Role.INVESTOR), 3, CN, now, sender=c)


def test_is_verified_false_when_expired(system: System) -> None:
    account = boa.env.generate_address()
    system.register(account, Role.INVESTOR, expires_in_s=100)
    assert system.registry.is_verified(account)
    boa.env.time_travel(seconds=100)
    assert not system.registry.is_verified(account)
    assert not system.registry.has_role(account, int(Role.INVESTOR))


def test_is_verified_false_for_unknown(system: System) -> None:
    assert not system.registry.is_verified(system.outsider)


def test_has_role_needs_every_flag_and_never_empty(system: System) -> None:
    account = boa.env.generate_address()
    system.register(account, Role.BROKER | Role.PLATFORM)
    assert system.registry.has_role(account, int(Role.BROKER))
    assert system.registry.has_role(account, int(Role.BROKER | Role.PLATFORM))
    assert not system.registry.has_role(account, int(Role.BROKER | Role.CUSTODIAN))
    assert not system.registry.has_role(account, 0)
    assert system.registry.roles_of(account) == int(Role.BROKER | Role.PLATFORM)


def test_set_roles_replaces_flags(system: System) -> None:
    system.registry.set_roles(system.investor, int(Role.BORROWER), sender=system.compliance)
    log = system.registry.get_logs()[-1]
    assert system.registry.has_role(system.investor, int(Role.BORROWER))
    assert not system.registry.has_role(system.investor, int(Role.INVESTOR))
    assert (log.roles_before, log.roles_after) == (int(Role.INVESTOR), int(Role.BORROWER))


def test_set_roles_rejects_unknown_empty_and_non_compliance(system: System) -> None:
    with boa.reverts("identity: unknown account"):
        system.registry.set_roles(system.outsider, int(Role.INVESTOR), sender=system.compliance)
    with boa.reverts("identity: no roles"):
        system.registry.set_roles(system.investor, 0, sender=system.compliance)
    with boa.reverts("identity: caller is not compliance"):
        system.registry.set_roles(system.investor, int(Role.OPERATOR), sender=system.investor)


def test_set_frozen_blocks_verification_and_roles(system: System) -> None:
    system.registry.set_frozen(system.custodian, True, sender=system.compliance)
    assert not system.registry.is_verified(system.custodian)
    assert not system.registry.has_role(system.custodian, int(Role.CUSTODIAN))
    system.registry.set_frozen(system.custodian, False, sender=system.compliance)
    assert system.registry.has_role(system.custodian, int(Role.CUSTODIAN))


def test_set_frozen_rejects_unchanged_unknown_and_non_compliance(system: System) -> None:
    with boa.reverts("identity: frozen flag unchanged"):
        system.registry.set_frozen(system.investor, False, sender=system.compliance)
    with boa.reverts("identity: unknown account"):
        system.registry.set_frozen(system.outsider, True, sender=system.compliance)
    with boa.reverts("identity: caller is not compliance"):
        system.registry.set_frozen(system.investor, True, sender=system.operator)


def test_reregister_keeps_freeze(system: System) -> None:
    system.registry.set_frozen(system.investor, True, sender=system.compliance)
    system.register(system.investor, Role.INVESTOR)
    assert not system.registry.is_verified(system.investor)


def test_revoke_and_restore(system: System) -> None:
    system.registry.revoke(system.investor, sender=system.compliance)
    assert not system.registry.is_verified(system.investor)
    system.register(system.investor, Role.INVESTOR)
    assert system.registry.is_verified(system.investor)


def test_revoke_rejects_twice_unknown_and_non_compliance(system: System) -> None:
    system.registry.revoke(system.investor, sender=system.compliance)
    with boa.reverts("identity: already revoked"):
        system.registry.revoke(system.investor, sender=system.compliance)
    with boa.reverts("identity: unknown account"):
        system.registry.revoke(system.outsider, sender=system.compliance)
    with boa.reverts("identity: caller is not compliance"):
        system.registry.revoke(system.borrower, sender=system.borrower)


def test_frozen_compliance_officer_cannot_write(system: System) -> None:
    system.registry.set_frozen(system.compliance, True, sender=system.admin)
    with boa.reverts("identity: caller is not compliance"):
        system.registry.revoke(system.investor, sender=system.compliance)


def test_ownership_two_step(system: System) -> None:
    new_admin = boa.env.generate_address()
    system.registry.transfer_ownership(new_admin, sender=system.admin)
    assert system.registry.owner() == system.admin
    assert system.registry.pending_owner() == new_admin
    system.registry.accept_ownership(sender=new_admin)
    assert system.registry.owner() == new_admin


def test_ownership_rejects_strangers(system: System) -> None:
    with boa.reverts("ownable: caller is not the owner"):
        system.registry.transfer_ownership(system.outsider, sender=system.outsider)
    system.registry.transfer_ownership(system.investor, sender=system.admin)
    with boa.reverts("ownable_2step: caller is not the new owner"):
        system.registry.accept_ownership(sender=system.outsider)
