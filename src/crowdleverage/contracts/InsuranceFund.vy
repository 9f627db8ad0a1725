# pragma version ~=0.4.3
"""
@title InsuranceFund
@custom:contract-name InsuranceFund
@notice The insurance pool (风险准备金): funded by the insurance premium on borrowers' interest,
        by liquidation penalties and by operator seed deposits; pays a liquidation shortfall
        to the TranchePool before any tranche takes a loss (DESIGN.md §6).
        Its balance is internal accounting (`balance_fen`), credited only when the cash has
        arrived, never read from `CashToken.balanceOf(self)`: a donation changes nothing.
@custom:security Only the pool may draw (`cover`), only to itself. Premiums and penalties are
        pushed by the pool/engine (`credit` verifies the cash arrived against `booked_fen`).
@custom:kill The fund has no pause of its own: it only moves cash when the pool calls `cover`
        from a liquidation, which the MarginEngine pause does not stop (losses must land).
"""

# ---------------------------------------------------------------- interfaces
from .interfaces import ICashToken
from .interfaces import IIdentityRegistry
from .interfaces import IInsuranceFund

implements: IInsuranceFund

# ---------------------------------------------------------------- events
event Credited:
    by: indexed(address)
    kind: indexed(uint256)
    amount_fen: uint256
    balance_after_fen: uint256


event Covered:
    pool: indexed(address)
    requested_fen: uint256
    from_penalty_fen: uint256
    from_fund_fen: uint256
    balance_after_fen: uint256


# ---------------------------------------------------------------- constants
KIND_SEED: constant(uint256) = 0
KIND_PREMIUM: constant(uint256) = 1
KIND_PENALTY: constant(uint256) = 2

# ---------------------------------------------------------------- storage
# Cash token of the platform (fen).
CASH: public(immutable(ICashToken))

# Roles (operator seeds the fund).
REGISTRY: public(immutable(IIdentityRegistry))

# The TranchePool: the only contract that may draw from the fund.
POOL: public(immutable(address))

# The MarginEngine: may credit penalties.
engine: public(address)

# Internal balance in fen: what the fund owes to the platform's loss waterfall.
balance_fen: public(uint256)

# Cash the fund has booked in total (credits - covers); compared with the token balance so a
# credit is only accepted for cash that actually arrived.
booked_fen: uint256

# Lifetime totals for the transparency page.
premiums_fen: public(uint256)
penalties_fen: public(uint256)
covered_fen: public(uint256)


@deploy
def __init__(cash: ICashToken, registry: IIdentityRegistry, pool: address):
    CASH = cash
    REGISTRY = registry
    POOL = pool


# ---------------------------------------------------------------- external
@external
def set_engine(engine: address):
    """
    @notice Operator: connect the MarginEngine once (it credits liquidation penalties).
    """
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.OPERATOR), (
        "insurance: caller is not operator"
    )
    assert self.engine == empty(address), "insurance: engine already set"
    assert engine != empty(address), "insurance: zero address"
    self.engine = engine


@external
def credit(amount_fen: uint256, kind: uint256):
    """
    @notice Pool (premium), engine (penalty) or operator (seed, after transferring cash here):
            book `amount_fen` that has already been transferred to this contract.
    """
    if kind == KIND_PREMIUM:
        assert msg.sender == POOL, "insurance: caller is not pool"
        self.premiums_fen += amount_fen
    elif kind == KIND_PENALTY:
        assert msg.sender == self.engine, "insurance: caller is not engine"
        self.penalties_fen += amount_fen
    else:
        assert kind == KIND_SEED, "insurance: unknown kind"
        assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.OPERATOR), (
            "insurance: caller is not operator"
        )
    assert amount_fen > 0, "insurance: zero amount"
    booked: uint256 = self.booked_fen + amount_fen
    assert staticcall CASH.balanceOf(self) >= booked, "insurance: cash not received"
    self.booked_fen = booked
    self.balance_fen += amount_fen
    log Credited(by=msg.sender, kind=kind, amount_fen=amount_fen, balance_after_fen=self.balance_fen)


@external
def cover(amount_fen: uint256, penalty_fen: uint256) -> uint256:
    """
    @notice Pool: pay up to `amount_fen` of a liquidation shortfall to the pool. The first
            `penalty_fen` of it is reported as paid back from that liquidation's own penalty
            (waterfall step "penalty"), the rest from the fund. Returns what was paid.
    """
    assert msg.sender == POOL, "insurance: caller is not pool"
    paid: uint256 = min(amount_fen, self.balance_fen)
    if paid == 0:
        return 0
    self.balance_fen -= paid
    self.booked_fen -= paid
    self.covered_fen += paid
    extcall CASH.transfer(POOL, paid)
    from_penalty: uint256 = min(paid, penalty_fen)
    log Covered(
        pool=POOL,
        requested_fen=amount_fen,
        from_penalty_fen=from_penalty,
        from_fund_fen=paid - from_penalty,
        balance_after_fen=self.balance_fen,
    )
    return paid
