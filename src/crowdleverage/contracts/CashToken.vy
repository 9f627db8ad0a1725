# pragma version ~=0.4.3
"""
@title CashToken
@custom:contract-name CashToken
@notice Custody-backed CNY deposit token with 2 decimals: one unit is one fen held by the
        custodian bank for the platform. Minted and burned only by the custodian role, each
        time with a `bytes32` reference (the custody ledger transfer id) that can be used
        once, so every on-chain movement of supply has exactly one ledger twin.
        Transfers move only between verified identities (platform contracts are identities
        with the PLATFORM role) and never to or from a frozen address. Compliance may mark a
        platform contract (a contract holding the PLATFORM role) as such here: its side of a
        transfer then skips the registry call (the cash freeze still applies); a human
        address is always checked in the registry.
@custom:security The custodian can burn from any holder that is not frozen here: the bank's
        ledger is the book of record and a burn is a payout it has already posted. Supply
        changes are auditable by reference (`Minted`/`Burned`). Allowances are standard
        ERC-20; infinite approvals are not decreased (snekmate semantics).
@custom:kill The operator role calls `pause()`; every transfer, mint and burn then reverts with
        "cash: paused" until `unpause()`. Compliance freezes one address with `set_frozen`.
"""

# ---------------------------------------------------------------- interfaces
from ethereum.ercs import IERC20

from snekmate.auth import ownable
from snekmate.utils import pausable

from .interfaces import ICashToken
from .interfaces import IIdentityRegistry

implements: IERC20
implements: ICashToken

initializes: pausable

# The ERC-20 state is kept here (not in snekmate's erc20): each holder's balance shares one
# slot with its cash flags, so a transfer reads two holder slots instead of four. Every state
# change goes through the compliance-gated entry points below (no permit, no minter roles).
exports: pausable.paused


# ---------------------------------------------------------------- events
event Minted:
    to: indexed(address)
    ref: indexed(bytes32)
    amount_fen: uint256
    supply_after_fen: uint256


event Burned:
    holder: indexed(address)
    ref: indexed(bytes32)
    amount_fen: uint256
    supply_after_fen: uint256


event FrozenChanged:
    account: indexed(address)
    by: indexed(address)
    frozen: bool


event PlatformSet:
    account: indexed(address)
    by: indexed(address)
    platform: bool


# ---------------------------------------------------------------- constants
DECIMALS: constant(uint8) = 2

# ---------------------------------------------------------------- storage
# Where identities and roles live; fixed at deployment so a token can never be re-pointed.
REGISTRY: public(immutable(IIdentityRegistry))

# Custody references already consumed by a mint or burn (one namespace: ledger transfer ids).
ref_used: public(HashMap[bytes32, bool])

# Per address, one slot read by every transfer: the balance in fen (128 bits; the supply
# stays below 2^128, "cash: amount too large") | the cash-only freeze (e.g. a disputed
# deposit) on top of the registry-wide freeze (1 << 128) | a platform contract marked by
# compliance, whose registry check is skipped (1 << 129). Getters `balanceOf`, `frozen`,
# `platform`.
word: HashMap[address, uint256]
FROZEN: constant(uint256) = 2**128
PLATFORM: constant(uint256) = 2**129
M128: constant(uint256) = 2**128 - 1

# ERC-20 (snekmate semantics: infinite approvals are not decreased; a spent allowance logs
# `Approval`).
totalSupply: public(uint256)
allowance: public(HashMap[address, HashMap[address, uint256]])
name: public(constant(String[25])) = "CrowdLeverage CNY"
symbol: public(constant(String[5])) = "CNYC"
decimals: public(constant(uint8)) = DECIMALS


@deploy
def __init__(registry: IIdentityRegistry):
    assert registry.address != empty(address), "cash: zero registry"
    pausable.__init__()
    REGISTRY = registry


# ---------------------------------------------------------------- internal logic: checks
@internal
@view
def _check_not_paused():
    assert not pausable.paused, "cash: paused"


@internal
@view
def _check_sender(account: address) -> uint256:
    """
    @dev The sender's word (balance and flags), checked.
    """
    f: uint256 = self.word[account]
    if f & PLATFORM == 0:
        assert staticcall REGISTRY.is_verified(account), "cash: sender not verified"
    assert f & FROZEN == 0, "cash: sender frozen"
    return f


@internal
@view
def _check_receiver(account: address):
    assert account != empty(address), "cash: zero address"
    f: uint256 = self.word[account]
    if f & PLATFORM == 0:
        assert staticcall REGISTRY.is_verified(account), "cash: receiver not verified"
    assert f & FROZEN == 0, "cash: receiver frozen"


@internal
@view
def _check_ref(ref: bytes32):
    assert ref != empty(bytes32), "cash: empty reference"
    assert not self.ref_used[ref], "cash: reference already used"


@internal
def _move(owner: address, to: address, amount: uint256):
    self._check_not_paused()
    f: uint256 = self._check_sender(owner)
    self._check_receiver(to)
    assert f & M128 >= amount, "cash: insufficient balance"
    self.word[owner] = f - amount
    # dev: read after the write (a transfer to oneself); balances <= supply < 2^128
    self.word[to] += amount
    log IERC20.Transfer(sender=owner, receiver=to, value=amount)


@internal
def _approve(owner: address, spender: address, amount: uint256):
    self.allowance[owner][spender] = amount
    log IERC20.Approval(owner=owner, spender=spender, value=amount)


# ---------------------------------------------------------------- external: ERC-20
@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice Move `amount` fen from the caller to `to`; both must be verified and not frozen.
    """
    self._move(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @notice Move `amount` fen from `owner` to `to` on an allowance; the caller (spender) must
            also be verified (typically a platform contract; pulling to itself, it is checked
            as the receiver).
    """
    if msg.sender != to and self.word[msg.sender] & PLATFORM == 0:
        # dev: a spender pulling to itself is checked once, as the receiver (also not frozen)
        assert staticcall REGISTRY.is_verified(msg.sender), "cash: spender not verified"
    allowed: uint256 = self.allowance[owner][msg.sender]
    assert allowed >= amount, "cash: insufficient allowance"
    self._move(owner, to, amount)
    if allowed != max_value(uint256):
        # dev: an infinite approval is not decreased
        self._approve(owner, msg.sender, allowed - amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @notice Standard ERC-20 approval; spending still requires every party to be verified.
    """
    assert spender != empty(address), "cash: zero address"
    self._approve(msg.sender, spender, amount)
    return True


# ---------------------------------------------------------------- external: custodian
@external
def mint(to: address, amount_fen: uint256, ref: bytes32):
    """
    @notice Custodian: mint `amount_fen` to `to` for a deposit the custody ledger posted under
            transfer id `ref` (each reference at most once).
    """
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.CUSTODIAN), (
        "cash: caller is not custodian"
    )
    self._check_not_paused()
    assert amount_fen > 0, "cash: zero amount"
    self._check_ref(ref)
    self._check_receiver(to)
    supply: uint256 = self.totalSupply + amount_fen
    assert supply <= M128, "cash: amount too large"
    self.ref_used[ref] = True
    self.totalSupply = supply
    self.word[to] += amount_fen
    log IERC20.Transfer(sender=empty(address), receiver=to, value=amount_fen)
    log Minted(to=to, ref=ref, amount_fen=amount_fen, supply_after_fen=supply)


@external
def burn(holder: address, amount_fen: uint256, ref: bytes32):
    """
    @notice Custodian: burn `amount_fen` of `holder` for a payout the custody ledger posted
            under transfer id `ref` (each reference at most once).
    """
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.CUSTODIAN), (
        "cash: caller is not custodian"
    )
    self._check_not_paused()
    assert amount_fen > 0, "cash: zero amount"
    self._check_ref(ref)
    f: uint256 = self.word[holder]
    assert f & FROZEN == 0, "cash: holder frozen"
    assert f & M128 >= amount_fen, "cash: insufficient balance"
    self.ref_used[ref] = True
    self.word[holder] = f - amount_fen
    supply: uint256 = self.totalSupply - amount_fen
    self.totalSupply = supply
    log IERC20.Transfer(sender=holder, receiver=empty(address), value=amount_fen)
    log Burned(holder=holder, ref=ref, amount_fen=amount_fen, supply_after_fen=supply)


# ---------------------------------------------------------------- external: operator/compliance
@external
def pause():
    """
    @notice Operator: stop every transfer, mint and burn (fail closed on a reconciliation break).
    """
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.OPERATOR), (
        "cash: caller is not operator"
    )
    assert not pausable.paused, "cash: already paused"
    pausable._pause()


@external
def unpause():
    """
    @notice Operator: resume after a pause.
    """
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.OPERATOR), (
        "cash: caller is not operator"
    )
    assert pausable.paused, "cash: not paused"
    pausable._unpause()


@external
def set_frozen(account: address, frozen: bool):
    """
    @notice Compliance: freeze or unfreeze the cash of one address.
    """
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.COMPLIANCE), (
        "cash: caller is not compliance"
    )
    f: uint256 = self.word[account]
    assert (f & FROZEN != 0) != frozen, "cash: frozen flag unchanged"
    self.word[account] = f & ~FROZEN | convert(frozen, uint256) << 128
    log FrozenChanged(account=account, by=msg.sender, frozen=frozen)


@external
def set_platform(account: address, platform: bool):
    """
    @notice Compliance: mark (or unmark) a platform contract, whose side of a transfer then
            skips the registry check (its cash freeze here still applies). Only a contract
            holding the PLATFORM role in the registry can be marked; unmark it to have the
            registry's status (freeze, expiry) apply to it again.
    @param account The platform contract (TranchePool, InsuranceFund, MarginEngine).
    @param platform Mark (True) or unmark (False).
    """
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.COMPLIANCE), (
        "cash: caller is not compliance"
    )
    if platform:
        assert account.is_contract and staticcall REGISTRY.has_role(
            account, IIdentityRegistry.Role.PLATFORM
        ), "cash: not a platform contract"
    f: uint256 = self.word[account]
    assert (f & PLATFORM != 0) != platform, "cash: platform flag unchanged"
    self.word[account] = f & ~PLATFORM | convert(platform, uint256) << 129
    log PlatformSet(account=account, by=msg.sender, platform=platform)


@external
@view
def balanceOf(account: address) -> uint256:
    """
    @notice The cash of `account`, in fen.
    @param account The address.
    @return The balance.
    """
    return self.word[account] & M128


@external
@view
def frozen(account: address) -> bool:
    """
    @notice Whether compliance froze the cash of `account` (on top of the registry).
    @param account The address.
    @return True when frozen here.
    """
    return self.word[account] & FROZEN != 0


@external
@view
def platform(account: address) -> bool:
    """
    @notice Whether `account` is a platform contract marked by compliance (its registry
            check is skipped in transfers).
    @param account The address.
    @return True when marked.
    """
    return self.word[account] & PLATFORM != 0
