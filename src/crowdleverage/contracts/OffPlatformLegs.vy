# pragma version ~=0.4.3
"""
@title OffPlatformLegs
@custom:contract-name OffPlatformLegs
@notice Institutional strategy accounts (DESIGN.md §12): the legs the platform cannot custody
        (index futures, H shares, short legs borrowed through securities lending) are held at
        a broker, which reports them once per trading day with the broker account's cash, each
        leg's settlement price and margin, and a reference used once. The financed A-share or
        ETF leg stays on the MarginEngine. This contract keeps the reported legs and gives the
        account's combined ratio:
            (engine assets + counted off-platform value) / engine debt, in bps, rounded down,
        where a leg's positive value counts at its kind's haircut and a negative value in full,
        and broker cash at the CASH haircut. Legs are marked by the oracle when they have an
        oracle code and its price is reliable (a future: quantity x (mark - settlement) x
        multiplier, settled daily; a share: quantity x mark x multiplier), else at the broker's
        settlement price. A report older than `max_stale_days` trading days counts losses only.
        It also holds the liquidity-reversal brake's platform stage and each account's exposure
        cap: `check_financing` reverts with the reason the off-chain desk refuses a new
        financed buy with.
@custom:security Compliance enrols an account (professional investors only: the off-chain
        test runs first; on chain the holder must be an active BORROWER at suitability C5) and
        names its reporting broker; only that broker (with the BROKER role) reports it. The
        operator sets haircuts and the staleness limit; the operator or a keeper sets the brake
        stage, caps and an account's unwind flag. The contract holds no assets.
@custom:kill Nothing to pause: it holds no assets. Setting the brake to NO_NEW stops new
        strategy financing at the desk.
"""

# ---------------------------------------------------------------- interfaces
from .interfaces import IIdentityRegistry
from .interfaces import IPriceOracle


interface IEngineView:
    def account_state(who: address) -> (uint256, uint256, uint256): view


interface IRegistryView:
    def identities(account: address) -> (IIdentityRegistry.Role, bool, uint8, bytes2, uint256, bool): view


# ---------------------------------------------------------------- constants
BPS: constant(uint256) = 10_000
MAX_LEGS: constant(uint256) = 8
PROFESSIONAL_SUITABILITY: constant(uint8) = 5  # C5
KIND_CASH: constant(uint8) = 0  # broker account cash (haircut only)
KIND_FUTURES: constant(uint8) = 1  # index futures, settled daily
KIND_SHARE: constant(uint8) = 2  # H shares and other shares held at the broker
KIND_SHORT: constant(uint8) = 3  # a spot leg sold short through securities lending
MAX_KIND: constant(uint8) = 3
MAX_RATIO: constant(uint256) = max_value(uint256)
STAGE_UNWIND: constant(uint8) = 3

# ---------------------------------------------------------------- events
event StrategyAccountEnrolled:
    account: indexed(address)
    broker: indexed(address)

event LegsSettled:
    account: indexed(address)
    day: uint256
    ref: bytes32
    cash_fen: int256
    legs: uint256
    nlv_fen: int256
    margin_fen: uint256

event LegHaircutSet:
    kind: uint8
    haircut_bps: uint256

event BrakeStageSet:
    stage: uint8
    by: indexed(address)

event ExposureCapSet:
    account: indexed(address)
    cap_fen: uint256

event UnwindFlagSet:
    account: indexed(address)
    unwinding: bool


# ---------------------------------------------------------------- structs
struct Leg:
    kind: uint8
    symbol: bytes16  # e.g. b"IF1509", b"00939.HK"
    oracle_code: uint256  # 0: no oracle feed, valued at the settlement price
    quantity: int256  # contracts or shares; negative = short
    settle_price_fen: uint256  # CNY fen per unit (index point or share), at the day's settlement
    multiplier: uint256  # units per contract (300 for IF/IH), 1 for shares
    margin_fen: uint256  # the broker's requirement on this leg


struct Account:
    enrolled: bool
    broker: address
    cash_fen: int256  # broker account cash after the day's settlement (negative: owed)
    settled_day: uint256  # oracle trading day of the last report
    cap_fen: uint256  # max engine debt while the brake caps exposure; 0 = no cap
    unwinding: bool
    reported: bool  # a settlement was reported since enrolment


# ---------------------------------------------------------------- storage
REGISTRY: public(immutable(IIdentityRegistry))
ORACLE: public(immutable(IPriceOracle))
ENGINE: public(immutable(IEngineView))

accounts: public(HashMap[address, Account])
_legs: HashMap[address, DynArray[Leg, MAX_LEGS]]
used_refs: public(HashMap[bytes32, bool])
# haircut per leg kind (bps of a positive value counted)
haircut_bps: public(HashMap[uint8, uint256])
max_stale_days: public(uint256)
# liquidity-reversal brake: 0 NORMAL, 1 NO_NEW, 2 LIMIT, 3 UNWIND (strategies/brake.py)
brake_stage: public(uint8)
enrolled_count: public(uint256)


@deploy
def __init__(registry: IIdentityRegistry, oracle: IPriceOracle, engine: IEngineView):
    REGISTRY = registry
    ORACLE = oracle
    ENGINE = engine
    # conservative defaults: broker cash 90%, a gain on a leg 50%
    self.haircut_bps[KIND_CASH] = 9_000
    self.haircut_bps[KIND_FUTURES] = 5_000
    self.haircut_bps[KIND_SHARE] = 5_000
    self.haircut_bps[KIND_SHORT] = 5_000
    self.max_stale_days = 1


# ---------------------------------------------------------------- internal
@view
@internal
def _check_role(role: IIdentityRegistry.Role, reason: String[40]):
    assert staticcall REGISTRY.has_role(msg.sender, role), reason


@view
@internal
def _check_operator_or_keeper():
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.OPERATOR) or (
        staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.KEEPER)
    ), "legs: caller is not operator or keeper"


@view
@internal
def _enrolled(who: address) -> Account:
    a: Account = self.accounts[who]
    assert a.enrolled, "legs: not a strategy account"
    return a


@view
@internal
def _mark(leg: Leg) -> uint256:
    if leg.oracle_code != 0 and staticcall ORACLE.is_reliable(leg.oracle_code):
        return staticcall ORACLE.price(leg.oracle_code)
    return leg.settle_price_fen


@view
@internal
def _leg_value(leg: Leg) -> int256:
    """Signed value in fen: a future's variation since settlement, a share's market value."""
    mark: int256 = convert(self._mark(leg), int256)
    mult: int256 = convert(leg.multiplier, int256)
    if leg.kind == KIND_FUTURES:
        return leg.quantity * (mark - convert(leg.settle_price_fen, int256)) * mult
    return leg.quantity * mark * mult


@view
@internal
def _counted(v: int256, kind: uint8, stale: bool) -> int256:
    """A gain at its kind's haircut (rounded down; none when stale), a loss in full."""
    if v <= 0:
        return v
    if stale:
        return 0
    return convert(convert(v, uint256) * self.haircut_bps[kind] // BPS, int256)


@view
@internal
def _stale(a: Account) -> bool:
    return staticcall ORACLE.trading_day() > a.settled_day + self.max_stale_days


@view
@internal
def _off(who: address, a: Account) -> (int256, int256, uint256):
    """(net liquidation value, counted value, broker margin required) in fen."""
    stale: bool = self._stale(a)
    nlv: int256 = a.cash_fen
    counted: int256 = self._counted(nlv, KIND_CASH, stale)
    margin: uint256 = 0
    for leg: Leg in self._legs[who]:
        v: int256 = self._leg_value(leg)
        nlv += v
        counted += self._counted(v, leg.kind, stale)
        margin += leg.margin_fen
    return nlv, counted, margin


# ---------------------------------------------------------------- external: views
@external
@view
def legs_of(who: address) -> DynArray[Leg, MAX_LEGS]:
    """
    @notice The legs the broker last reported for `who`.
    """
    return self._legs[who]


@external
@view
def off_platform(who: address) -> (int256, int256, uint256, bool):
    """
    @notice (net liquidation value, value counted in the ratio, broker margin required, stale)
            of `who`'s broker account, in fen.
    """
    a: Account = self._enrolled(who)
    nlv: int256 = 0
    counted: int256 = 0
    margin: uint256 = 0
    nlv, counted, margin = self._off(who, a)
    return nlv, counted, margin, self._stale(a)


@external
@view
def combined_state(who: address) -> (uint256, uint256, int256, uint256, uint256):
    """
    @notice (engine assets, engine debt, counted off-platform value, combined assets, combined
            ratio in bps; max uint256 without debt). Combined assets are engine assets plus
            the counted value, floored at 0.
    """
    a: Account = self._enrolled(who)
    assets: uint256 = 0
    debt: uint256 = 0
    ratio: uint256 = 0
    assets, debt, ratio = staticcall ENGINE.account_state(who)
    nlv: int256 = 0
    counted: int256 = 0
    margin: uint256 = 0
    nlv, counted, margin = self._off(who, a)
    total: int256 = convert(assets, int256) + counted
    combined: uint256 = 0
    if total > 0:
        combined = convert(total, uint256)
    if debt == 0:
        return assets, debt, counted, combined, MAX_RATIO
    return assets, debt, counted, combined, combined * BPS // debt


@external
@view
def check_financing(who: address, extra_debt_fen: uint256):
    """
    @notice Reverts when `who` is a strategy account that may not take `extra_debt_fen` more
            financing now: the brake stopped new strategy financing, the account is being
            unwound, or the debt would pass its exposure cap. Other accounts always pass.
    """
    a: Account = self.accounts[who]
    if not a.enrolled:
        return
    assert not a.unwinding, "legs: strategy account unwinding"
    assert self.brake_stage == 0, "legs: strategy financing stopped"
    if a.cap_fen != 0:
        assets: uint256 = 0
        debt: uint256 = 0
        ratio: uint256 = 0
        assets, debt, ratio = staticcall ENGINE.account_state(who)
        assert debt + extra_debt_fen <= a.cap_fen, "legs: above strategy exposure cap"


# ---------------------------------------------------------------- external: compliance
@external
def enrol(who: address, broker: address):
    """
    @notice Compliance: make `who` (a borrower with a margin account, professional investor:
            suitability C5 on chain) a strategy account reported by `broker`.
    """
    self._check_role(IIdentityRegistry.Role.COMPLIANCE, "legs: caller is not compliance")
    assert not self.accounts[who].enrolled, "legs: already enrolled"
    assert staticcall REGISTRY.has_role(who, IIdentityRegistry.Role.BORROWER), (
        "legs: holder is not an active borrower"
    )
    suit: uint8 = (staticcall IRegistryView(REGISTRY.address).identities(who))[2]
    assert suit >= PROFESSIONAL_SUITABILITY, "legs: professional investors only"
    assert staticcall REGISTRY.has_role(broker, IIdentityRegistry.Role.BROKER), (
        "legs: reporter is not a broker"
    )
    self.accounts[who] = Account(
        enrolled=True, broker=broker, cash_fen=0,
        settled_day=staticcall ORACLE.trading_day(), cap_fen=0, unwinding=False,
        reported=False,
    )
    self.enrolled_count += 1
    log StrategyAccountEnrolled(account=who, broker=broker)


# ---------------------------------------------------------------- external: broker
@external
def settle(who: address, day: uint256, ref: bytes32, cash_fen: int256, legs: DynArray[Leg, MAX_LEGS]):
    """
    @notice The account's broker: the day's settlement of the off-platform legs. Replaces the
            legs reported before (an empty list: everything closed).
    @param day The oracle trading day settled (after the last one reported, not in the future).
    @param ref Settlement reference, used once.
    """
    a: Account = self._enrolled(who)
    assert msg.sender == a.broker, "legs: caller is not the account's broker"
    self._check_role(IIdentityRegistry.Role.BROKER, "legs: caller is not broker")
    assert ref != empty(bytes32), "legs: empty reference"
    assert not self.used_refs[ref], "legs: reference already used"
    assert day > a.settled_day or (day == a.settled_day and not a.reported), (
        "legs: day not after last settlement"
    )
    assert day <= staticcall ORACLE.trading_day(), "legs: day in the future"
    margin: uint256 = 0
    nlv: int256 = cash_fen
    for leg: Leg in legs:
        assert leg.kind >= KIND_FUTURES and leg.kind <= MAX_KIND, "legs: bad leg kind"
        assert leg.quantity != 0, "legs: zero quantity"
        assert leg.multiplier > 0, "legs: zero multiplier"
        assert leg.settle_price_fen > 0, "legs: zero settlement price"
        assert leg.kind != KIND_SHORT or leg.quantity < 0, "legs: a short leg must be negative"
        margin += leg.margin_fen
        if leg.kind != KIND_FUTURES:
            nlv += leg.quantity * convert(leg.settle_price_fen * leg.multiplier, int256)
    self.used_refs[ref] = True
    a.cash_fen = cash_fen
    a.settled_day = day
    a.reported = True
    self.accounts[who] = a
    self._legs[who] = legs
    log LegsSettled(
        account=who, day=day, ref=ref, cash_fen=cash_fen, legs=len(legs), nlv_fen=nlv,
        margin_fen=margin,
    )


# ---------------------------------------------------------------- external: operator, keeper
@external
def set_haircut(kind: uint8, haircut_bps: uint256):
    """
    @notice Operator: the haircut on a positive value of a leg kind (0 cash, 1 futures,
            2 shares, 3 short spot).
    """
    self._check_role(IIdentityRegistry.Role.OPERATOR, "legs: caller is not operator")
    assert kind <= MAX_KIND, "legs: bad leg kind"
    assert haircut_bps <= BPS, "legs: haircut above 100%"
    self.haircut_bps[kind] = haircut_bps
    log LegHaircutSet(kind=kind, haircut_bps=haircut_bps)


@external
def set_max_stale_days(days: uint256):
    """
    @notice Operator: trading days a report counts gains for (at least 1).
    """
    self._check_role(IIdentityRegistry.Role.OPERATOR, "legs: caller is not operator")
    assert days >= 1 and days <= 10, "legs: staleness not in 1..10"
    self.max_stale_days = days


@external
def set_brake_stage(stage: uint8):
    """
    @notice Operator or keeper: the liquidity-reversal brake's platform stage (0 NORMAL,
            1 NO_NEW, 2 LIMIT, 3 UNWIND); any stage above 0 stops new strategy financing.
    """
    self._check_operator_or_keeper()
    assert stage <= STAGE_UNWIND, "legs: bad brake stage"
    self.brake_stage = stage
    log BrakeStageSet(stage=stage, by=msg.sender)


@external
def set_cap(who: address, cap_fen: uint256):
    """
    @notice Operator or keeper: the account's exposure cap (engine debt, fen; 0 = none).
    """
    self._check_operator_or_keeper()
    a: Account = self._enrolled(who)
    a.cap_fen = cap_fen
    self.accounts[who] = a
    log ExposureCapSet(account=who, cap_fen=cap_fen)


@external
def set_unwinding(who: address, unwinding: bool):
    """
    @notice Operator or keeper: mark the account as being unwound (no new financing) or done.
    """
    self._check_operator_or_keeper()
    a: Account = self._enrolled(who)
    a.unwinding = unwinding
    self.accounts[who] = a
    log UnwindFlagSet(account=who, unwinding=unwinding)
