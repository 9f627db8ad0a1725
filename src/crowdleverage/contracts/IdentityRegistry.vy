# pragma version ~=0.4.3
"""
@title IdentityRegistry
@custom:contract-name IdentityRegistry
@notice Who may hold and move platform assets: per address the role flags, the verification
        status, the suitability level (C1-C5), the jurisdiction, the expiry time and a frozen
        flag. Only the compliance role writes; the owner (platform admin, two-step transfer)
        can act as compliance as a break-glass so that a lost compliance key can be replaced.
@custom:security Every permissioned action of the asset and oracle contracts asks this
        registry `has_role(sender, ROLE)`; a role counts only while the identity is verified,
        unexpired and not frozen. A compromised compliance key can grant any role: keep it in
        an HSM and watch `IdentitySet` events.
@custom:kill Freeze an address with `set_frozen(account, True)` (it loses every role and can
        neither send nor receive assets); revoke it with `revoke(account)`.
"""

# ---------------------------------------------------------------- interfaces
from snekmate.auth import ownable
from snekmate.auth import ownable_2step

from .interfaces import IIdentityRegistry

implements: IIdentityRegistry

initializes: ownable
initializes: ownable_2step[ownable := ownable]

exports: (
    ownable.owner,
    ownable_2step.pending_owner,
    ownable_2step.transfer_ownership,
    ownable_2step.accept_ownership,
)

# ---------------------------------------------------------------- events
event IdentitySet:
    account: indexed(address)
    by: indexed(address)
    roles_before: IIdentityRegistry.Role
    roles_after: IIdentityRegistry.Role
    suitability: uint8
    jurisdiction: bytes2
    expires_at: uint256


event RolesChanged:
    account: indexed(address)
    by: indexed(address)
    roles_before: IIdentityRegistry.Role
    roles_after: IIdentityRegistry.Role


event FrozenChanged:
    account: indexed(address)
    by: indexed(address)
    frozen: bool


event Revoked:
    account: indexed(address)
    by: indexed(address)


# ---------------------------------------------------------------- structs
struct Identity:
    roles: IIdentityRegistry.Role
    verified: bool
    suitability: uint8  # 1..5 for C1..C5
    jurisdiction: bytes2  # ISO 3166-1 alpha-2, e.g. b"CN"
    expires_at: uint256  # UNIX seconds; the identity is inactive from this second on
    frozen: bool

# ---------------------------------------------------------------- constants
MAX_SUITABILITY: constant(uint8) = 5

# One identity in one slot (every role check of the platform is one SLOAD): roles (bits
# 0..15), verified (16), frozen (17), suitability (24..31), jurisdiction (32..47), expires_at
# (128..255).
VERIFIED_BIT: constant(uint256) = 1 << 16
FROZEN_BIT: constant(uint256) = 1 << 17
ROLES_MASK: constant(uint256) = 2**16 - 1

# ---------------------------------------------------------------- storage
# The book of identities (packed, read with `identities`); the platform asks it who may act.
packed: HashMap[address, uint256]

# Number of addresses ever registered, so auditors can tell an empty registry from a bad read.
identity_count: public(uint256)


# ---------------------------------------------------------------- internal logic
@deploy
def __init__():
    ownable.__init__()
    ownable_2step.__init__()


@internal
@pure
def _unpack(w: uint256) -> Identity:
    return Identity(
        roles=convert(w & ROLES_MASK, IIdentityRegistry.Role),
        verified=w & VERIFIED_BIT != 0,
        suitability=convert((w >> 24) & 255, uint8),
        jurisdiction=convert(convert((w >> 32) & 65535, uint16), bytes2),
        expires_at=w >> 128,
        frozen=w & FROZEN_BIT != 0,
    )


@internal
@view
def _live(w: uint256) -> bool:
    return w & (VERIFIED_BIT | FROZEN_BIT) == VERIFIED_BIT and block.timestamp < w >> 128


@internal
@view
def _active(account: address) -> bool:
    return self._live(self.packed[account])


@internal
@view
def _check_compliance():
    if msg.sender == ownable.owner:
        return
    w: uint256 = self.packed[msg.sender]
    assert self._live(w) and w & convert(IIdentityRegistry.Role.COMPLIANCE, uint256) != 0, (
        "identity: caller is not compliance"
    )


@internal
@view
def _check_registered(account: address):
    assert self.packed[account] >> 128 != 0, "identity: unknown account"


# ---------------------------------------------------------------- views
@external
@view
def is_verified(account: address) -> bool:
    """
    @notice True when `account` is verified, not frozen and not expired.
    @param account The address to check.
    """
    return self._active(account)


@external
@view
def has_role(account: address, role: IIdentityRegistry.Role) -> bool:
    """
    @notice True when `account` is active (see `is_verified`) and holds every flag in `role`.
    @param account The address to check.
    @param role One or more role flags; the empty flag is never held.
    """
    if role == empty(IIdentityRegistry.Role):
        return False
    w: uint256 = self.packed[account]
    r: uint256 = convert(role, uint256)
    return self._live(w) and w & r == r


@external
@view
def roles_of(account: address) -> IIdentityRegistry.Role:
    """
    @notice The role flags recorded for `account`, whether or not it is active.
    """
    return convert(self.packed[account] & ROLES_MASK, IIdentityRegistry.Role)


@external
@view
def identities(account: address) -> Identity:
    """
    @notice The identity recorded for `account` (all fields zero if never registered).
    @param account The address.
    """
    return self._unpack(self.packed[account])


# ---------------------------------------------------------------- compliance entry points
@external
def register(
    account: address,
    roles: IIdentityRegistry.Role,
    suitability: uint8,
    jurisdiction: bytes2,
    expires_at: uint256,
):
    """
    @notice Register or re-verify `account` (KYC passed). Overwrites a previous record,
            clears `verified = False` from a revocation but keeps a freeze in place.
    @param account The address being verified.
    @param roles Its role flags (at least one).
    @param suitability Suitability level 1..5 (C1..C5).
    @param jurisdiction ISO 3166-1 alpha-2 code.
    @param expires_at UNIX second from which the verification lapses (must be in the future).
    """
    self._check_compliance()
    assert account != empty(address), "identity: zero address"
    assert roles != empty(IIdentityRegistry.Role), "identity: no roles"
    assert suitability >= 1 and suitability <= MAX_SUITABILITY, "identity: suitability not in 1..5"
    assert jurisdiction != empty(bytes2), "identity: empty jurisdiction"
    assert expires_at > block.timestamp, "identity: expiry not in the future"
    assert expires_at < 2**128, "identity: expiry too large"
    w: uint256 = self.packed[account]
    before: Identity = self._unpack(w)
    if before.expires_at == 0:
        self.identity_count += 1
    self.packed[account] = (
        convert(roles, uint256) | VERIFIED_BIT | (w & FROZEN_BIT)
        | convert(suitability, uint256) << 24
        | convert(convert(jurisdiction, uint16), uint256) << 32 | expires_at << 128
    )
    log IdentitySet(
        account=account,
        by=msg.sender,
        roles_before=before.roles,
        roles_after=roles,
        suitability=suitability,
        jurisdiction=jurisdiction,
        expires_at=expires_at,
    )


@external
def set_roles(account: address, roles: IIdentityRegistry.Role):
    """
    @notice Replace the role flags of a registered account.
    """
    self._check_compliance()
    self._check_registered(account)
    assert roles != empty(IIdentityRegistry.Role), "identity: no roles"
    w: uint256 = self.packed[account]
    before: IIdentityRegistry.Role = convert(w & ROLES_MASK, IIdentityRegistry.Role)
    self.packed[account] = (w & ~ROLES_MASK) | convert(roles, uint256)
    log RolesChanged(account=account, by=msg.sender, roles_before=before, roles_after=roles)


@external
def set_frozen(account: address, frozen: bool):
    """
    @notice Freeze or unfreeze a registered account (sanctions hit, AML case, court order).
    """
    self._check_compliance()
    self._check_registered(account)
    w: uint256 = self.packed[account]
    assert (w & FROZEN_BIT != 0) != frozen, "identity: frozen flag unchanged"
    if frozen:
        self.packed[account] = w | FROZEN_BIT
    else:
        self.packed[account] = w & ~FROZEN_BIT
    log FrozenChanged(account=account, by=msg.sender, frozen=frozen)


@external
def revoke(account: address):
    """
    @notice Withdraw the verification of a registered account; `register` restores it.
    """
    self._check_compliance()
    self._check_registered(account)
    w: uint256 = self.packed[account]
    assert w & VERIFIED_BIT != 0, "identity: already revoked"
    self.packed[account] = w & ~VERIFIED_BIT
    log Revoked(account=account, by=msg.sender)
