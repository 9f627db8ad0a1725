# pragma version ~=0.4.3
"""
@title TrancheShare
@custom:contract-name TrancheShare
@notice ERC-20 share of one tranche (senior 优先级 or junior 劣后级) of the TranchePool.
        Only the pool mints and burns (at epoch close); holders transfer between verified
        identities only. Decimals are the cash token's 2 plus the pool's 3-digit virtual
        share offset, so 1 fen of a fresh tranche buys 1,000 share units.
@custom:security The pool is fixed at deployment; a share is a claim on the pool's
        internal accounting, never on `balanceOf(pool)`.
@custom:kill Pause the MarginEngine: the pool stops executing subscriptions/redemptions.
"""

# ---------------------------------------------------------------- interfaces
from ethereum.ercs import IERC20

from snekmate.auth import ownable
from snekmate.tokens import erc20

from .interfaces import IIdentityRegistry

implements: IERC20

initializes: ownable
initializes: erc20[ownable := ownable]

exports: (
    erc20.balanceOf,
    erc20.totalSupply,
    erc20.allowance,
    erc20.name,
    erc20.symbol,
    erc20.decimals,
)

# ---------------------------------------------------------------- constants
DECIMALS: constant(uint8) = 5

# ---------------------------------------------------------------- storage
# The only minter and burner: the TranchePool that deployed this share.
POOL: public(immutable(address))

# Who is verified: shares move only between KYC'd identities.
REGISTRY: public(immutable(IIdentityRegistry))


@deploy
def __init__(name_: String[25], symbol_: String[5], registry: IIdentityRegistry):
    ownable.__init__()
    erc20.__init__(name_, symbol_, DECIMALS, name_, "1")
    POOL = msg.sender
    REGISTRY = registry


# ---------------------------------------------------------------- internal logic
@internal
@view
def _check_parties(owner: address, to: address):
    assert to != empty(address), "share: zero address"
    assert staticcall REGISTRY.is_verified(owner), "share: sender not verified"
    assert staticcall REGISTRY.is_verified(to), "share: receiver not verified"


# ---------------------------------------------------------------- external: ERC-20
@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice Move `amount` share units to `to`; both parties must be verified.
    """
    self._check_parties(msg.sender, to)
    erc20._transfer(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @notice Move `amount` share units of `owner` on an allowance; both parties verified.
    """
    self._check_parties(owner, to)
    erc20._spend_allowance(owner, msg.sender, amount)
    erc20._transfer(owner, to, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @notice Standard ERC-20 approval.
    """
    erc20._approve(msg.sender, spender, amount)
    return True


# ---------------------------------------------------------------- external: pool
@external
def mint(owner: address, amount: uint256):
    """
    @notice Pool: issue shares for an executed subscription.
    """
    assert msg.sender == POOL, "share: caller is not pool"
    erc20._mint(owner, amount)


@external
def escrow(owner: address, to: address, amount: uint256):
    """
    @notice Pool: move shares into (redemption request) or out of (cancel) the pool's escrow.
    """
    assert msg.sender == POOL, "share: caller is not pool"
    erc20._transfer(owner, to, amount)


@external
def burn(owner: address, amount: uint256):
    """
    @notice Pool: retire shares for an executed redemption (held in escrow by the pool).
    """
    assert msg.sender == POOL, "share: caller is not pool"
    erc20._burn(owner, amount)
