# pragma version ~=0.4.3
# pragma optimize codesize
"""
@title RiskParams
@custom:contract-name RiskParams
@notice The one on-chain source of the margin system's risk parameters (DESIGN.md §7):
        leverage tiers (lines and rate), per-security eligibility (board haircut, ST /
        *ST status, listing day), the ST haircut, position limits, liquidation penalty,
        floors and the fee allowance; the stressed regime's haircuts (the regime is the
        OrderBook's, mirrored here by `params_regime`) and the liquidity cap on financed
        buys (a share of each security's published 20-day average traded amount). Deployed
        from one versioned definition (`domain/params.py`, recorded with `set_version`);
        the MarginEngine and every off-chain reader (monitor, keeper, account status, API,
        transparency page) read it here and follow its setter events, each carrying the old
        and the new values.
@custom:security Every setter is the operator's and checks its bounds. A tier's rate is
        pushed to the engine (`MarginEngine.params_rate`) so that interest accrues at the
        old rate up to the change.
"""

from .interfaces import IIdentityRegistry
from . import constants as C


interface IRateSink:
    def params_rate(tier: uint256, rate_bps: uint256): nonpayable


interface IEngineBook:
    def orderbook() -> address: view


# ---------------------------------------------------------------- structs
struct Tier:
    max_leverage: uint256  # financing : equity, e.g. 3 for 1:3
    initial_bps: uint256  # ratio required after a buy
    warning_bps: uint256  # MarginWarning below this
    liquidation_bps: uint256  # liquidation below this
    rate_bps: uint256  # APR


struct Security:
    haircut_bps: uint256  # board haircut (main 10000, STAR/ChiNext 8000); 0 = not financeable
    st: bool  # ST / *ST (delisting risk): valued at the ST haircut, never financeable
    listed_day: uint256  # trading day of listing (0: before the platform began)


struct Limits:
    max_single_bps: uint256  # one security <= this share of account assets
    max_exposure_bps: uint256  # platform exposure per security <= this share of pool assets
    penalty_bps: uint256  # liquidation penalty on sold value, to insurance
    hard_floor_bps: uint256  # below this ratio liquidation is full, not partial
    max_fee_bps: uint256  # fee allowance reserved on buys
    withdraw_floor_bps: uint256  # withdrawals with debt only above max(initial, this)


struct Stressed:
    haircut_scale_bps: uint256  # stressed haircut = board haircut * this / 10000 (5000..10000)
    st_haircut_bps: uint256  # stressed haircut of an ST / *ST security (<= 5000)


# ---------------------------------------------------------------- events
event TierSet:
    tier: indexed(uint256)
    old: Tier
    new: Tier


event SecuritySet:
    code: indexed(uint256)
    old: Security
    new: Security


event LimitsSet:
    old: Limits
    new: Limits


event StHaircutSet:
    old_bps: uint256
    new_bps: uint256


event StressedHaircutsSet:
    old: Stressed
    new: Stressed


event LiquidityCapSet:
    old_bps: uint256
    new_bps: uint256


event LiquiditySet:
    code: indexed(uint256)
    old_fen: uint256
    new_fen: uint256


event VersionSet:
    old: String[32]
    new: String[32]
    digest: bytes32


event EngineConnected:
    engine: address


# ---------------------------------------------------------------- storage
REGISTRY: public(immutable(IIdentityRegistry))

# The MarginEngine that accrues interest at the tiers' rates (set once).
engine: public(address)

tiers: public(HashMap[uint256, Tier])
securities: public(HashMap[uint256, Security])
limits: public(Limits)

# Haircut of an ST / *ST security (0 by default: no collateral value).
st_haircut_bps: public(uint256)

# The policy settings in one slot (one cold read per call; getters `regime`,
# `liquidity_cap_bps`, `stressed_haircuts`): bits 0..7 the market regime (0 normal, 1
# stressed: the OrderBook's, pushed here by `params_regime` in `OrderBook.set_regime`);
# 8..39 the liquidity cap (financed buys: platform exposure to a security <= this share, bps,
# of its liquidity figure); 40..71 the stressed haircut scale (bps); 72..103 the stressed ST
# haircut (bps).
policy: uint256
M32: constant(uint256) = 2**32 - 1
CAP_SHIFT: constant(uint256) = 8
SCALE_SHIFT: constant(uint256) = 40
ST_SHIFT: constant(uint256) = 72

# Per security: its published 20-day average traded amount in fen, plus 1 (0 = never
# published: no liquidity cap; a published 0 refuses every financed buy).
liquidity_raw: HashMap[uint256, uint256]

MAX_LIQUIDITY_CODES: constant(uint256) = 128

STRESSED: constant(uint8) = 1

# Version and digest of the definition the values were deployed from.
version: public(String[32])
digest: public(bytes32)


@deploy
def __init__(registry: IIdentityRegistry):
    """
    @param registry The IdentityRegistry (OPERATOR role). Tiers and limits are empty until
           the operator applies the definition.
    """
    assert registry.address != empty(address), "params: zero address"
    REGISTRY = registry
    # defaults = domain/params.py STRESSED_HAIRCUT_SCALE_BPS, STRESSED_ST_HAIRCUT_BPS,
    # LIQUIDITY_CAP_BPS (a test checks they agree)
    self.policy = 1_000 << CAP_SHIFT | 9_000 << SCALE_SHIFT


@internal
@view
def _check_operator():
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.OPERATOR), (
        "params: caller is not operator"
    )


# ---------------------------------------------------------------- views
@internal
@view
def _haircut(code: uint256, day: uint256, w: uint256) -> uint256:
    """
    @dev `w` the policy word (its regime and stressed haircuts).
    """
    s: Security = self.securities[code]
    if s.haircut_bps == 0 or (s.listed_day != 0 and day < s.listed_day + C.NEW_LISTING_DAYS):
        return 0
    h: uint256 = s.haircut_bps
    if s.st:
        h = min(h, self.st_haircut_bps)
    if w & 255 == convert(STRESSED, uint256):
        # the stressed haircut never counts more than the normal one (rounded down)
        h = h * (w >> SCALE_SHIFT & M32) // C.BPS
        if s.st:
            h = min(h, w >> ST_SHIFT & M32)
    return h


@external
@view
def haircut(code: uint256, day: uint256) -> uint256:
    """
    @notice Collateral haircut of `code` on trading day `day` (before a halt cap): 0 for an
            unlisted security or a new listing (first 5 trading days), the ST haircut for an
            ST / *ST security, else the board haircut; in the stressed regime scaled by
            the stressed haircut scale (and at most the stressed ST haircut for ST / *ST).
    @param code Security code.
    @param day Trading day.
    @return Haircut in bps.
    """
    return self._haircut(code, day, self.policy)


@external
@view
def haircuts(codes: uint256[C.MAX_CODES], day: uint256) -> uint256[C.MAX_CODES]:
    """
    @notice `haircut` of each of `codes` (up to the first 0) in one call: the engine's
            valuation of an account.
    @param codes Security codes, 0 after the last.
    @param day Trading day.
    @return Haircuts in bps, in the order of `codes` (0 after the last code).
    """
    out: uint256[C.MAX_CODES] = empty(uint256[C.MAX_CODES])
    w: uint256 = self.policy
    for i: uint256 in range(C.MAX_CODES):
        if codes[i] == 0:
            break
        out[i] = self._haircut(codes[i], day, w)
    return out


@external
@view
def buy_terms(tier: uint256, code: uint256, day: uint256) -> (uint256, uint256, uint256, uint256, uint256, uint256):
    """
    @notice What a buy is checked against, in one call (only the slots it needs).
    @param tier The account's tier.
    @param code Security code.
    @param day Trading day.
    @return The haircut if the security may be bought with financing (0 if not: unlisted,
            new listing, ST / *ST), the tier's initial line and maximum leverage, the
            single-security and platform-exposure limits and the fee allowance (bps).
    """
    h: uint256 = 0
    if not self.securities[code].st:
        h = self._haircut(code, day, self.policy)
    return (
        h, self.tiers[tier].initial_bps, self.tiers[tier].max_leverage,
        self.limits.max_single_bps, self.limits.max_exposure_bps, self.limits.max_fee_bps,
    )


@external
@view
def liquidity_fen(code: uint256) -> uint256:
    """
    @notice The published 20-day average traded amount of `code`, in fen (0 if never
            published; see `liquidity_published`).
    @param code Security code.
    @return The amount in fen.
    """
    raw: uint256 = self.liquidity_raw[code]
    if raw == 0:
        return 0
    return raw - 1


@external
@view
def liquidity_published(code: uint256) -> bool:
    """
    @notice Whether a liquidity figure of `code` was ever published.
    @param code Security code.
    @return True once `set_liquidity` named the code.
    """
    return self.liquidity_raw[code] != 0


@internal
@view
def _liquidity_cap(code: uint256) -> uint256:
    raw: uint256 = self.liquidity_raw[code]
    if raw == 0:
        return max_value(uint256)
    return (raw - 1) * (self.policy >> CAP_SHIFT & M32) // C.BPS


@external
@view
def liquidity_cap_fen(code: uint256) -> uint256:
    """
    @notice The most the platform may hold of `code` (market value, fen) after a financed
            buy: `liquidity_cap_bps` of its published figure, rounded down; max uint256 (no
            cap) while no figure was ever published.
    @param code Security code.
    @return The cap in fen.
    """
    return self._liquidity_cap(code)


@external
@view
def check_liquidity(code: uint256, exposure_fen: uint256) -> bool:
    """
    @notice The OrderBook's check of a buy that draws financing: reverts "margin: above
            liquidity cap" when the platform's position in `code` after the buy
            (`exposure_fen`, at the order's limit) is above `liquidity_cap_fen(code)`.
    @param code Security code.
    @param exposure_fen The platform's position after the buy, in fen.
    @return True (else it reverts).
    """
    assert exposure_fen <= self._liquidity_cap(code), "margin: above liquidity cap"
    return True


@external
@view
def regime() -> uint8:
    """
    @notice The market regime the haircuts follow (0 normal, 1 stressed): the OrderBook's.
    @return The regime.
    """
    return convert(self.policy & 255, uint8)


@external
@view
def liquidity_cap_bps() -> uint256:
    """
    @notice Financed buys: the platform's exposure to a security stays within this share
            (bps) of its published liquidity figure.
    @return The share in bps.
    """
    return self.policy >> CAP_SHIFT & M32


@internal
@view
def _stressed_haircuts() -> Stressed:
    w: uint256 = self.policy
    return Stressed(haircut_scale_bps=w >> SCALE_SHIFT & M32, st_haircut_bps=w >> ST_SHIFT & M32)


@external
@view
def stressed_haircuts() -> Stressed:
    """
    @notice The stressed regime's haircuts: the scale of every haircut and the ST haircut.
    @return haircut_scale_bps, st_haircut_bps.
    """
    return self._stressed_haircuts()


@external
@view
def keeper_terms(tier: uint256) -> (uint256, uint256, uint256, uint256, uint256):
    """
    @notice What the keeper decides on besides the account: the tier's initial, warning and
            liquidation lines, the liquidation penalty and the hard floor (bps).
    @param tier The account's tier.
    @return initial_bps, warning_bps, liquidation_bps, penalty_bps, hard_floor_bps.
    """
    return (
        self.tiers[tier].initial_bps, self.tiers[tier].warning_bps,
        self.tiers[tier].liquidation_bps, self.limits.penalty_bps, self.limits.hard_floor_bps,
    )


@external
@view
def withdraw_line(tier: uint256) -> uint256:
    """
    @notice The ratio an account with debt must keep after a withdrawal:
            max(the tier's initial line, the withdrawal floor), in bps.
    @param tier The account's tier.
    @return The line in bps.
    """
    return max(self.tiers[tier].initial_bps, self.limits.withdraw_floor_bps)


@external
@view
def penalty_bps() -> uint256:
    """
    @notice The liquidation penalty on sold value, in bps.
    @return The penalty in bps.
    """
    return self.limits.penalty_bps


# ---------------------------------------------------------------- operator setters
@external
def set_tier(tier: uint256, t: Tier):
    """
    @notice Operator: define or change a leverage tier; the engine accrues interest at the
            old rate up to now. Event `TierSet` with the old and the new values.
    @param tier 1..8.
    @param t max_leverage 1..10; 10000 < liquidation < warning < initial <= 100000 bps;
           rate below 10000 bps (100% APR).
    """
    self._check_operator()
    assert tier >= 1 and tier <= C.MAX_TIERS, "params: tier not in 1..8"
    assert t.max_leverage >= 1 and t.max_leverage <= 10, "params: leverage not in 1..10"
    assert t.liquidation_bps > C.BPS and t.liquidation_bps < t.warning_bps and t.warning_bps < t.initial_bps, (
        "params: lines not ordered"
    )
    assert t.initial_bps <= 10 * C.BPS, "params: initial line above 1000%"
    assert t.rate_bps < C.BPS, "params: rate not below 100%"
    log TierSet(tier=tier, old=self.tiers[tier], new=t)
    self.tiers[tier] = t
    if self.engine != empty(address):
        extcall IRateSink(self.engine).params_rate(tier, t.rate_bps)


@external
def set_security(code: uint256, haircut_bps: uint256, st: bool, listed_day: uint256):
    """
    @notice Operator: board haircut, ST / *ST status and listing day of a security (the ST
            status from the day's market data, at the day open). Event `SecuritySet` with
            the old and the new values.
    @param code Security code, 1..999999.
    @param haircut_bps Board haircut, at most 10000 (0: not eligible).
    @param st Whether the security is ST or *ST today.
    @param listed_day Trading day of listing (0: listed before the platform began).
    """
    self._check_operator()
    assert code > 0 and code < 1_000_000, "params: bad security code"
    assert haircut_bps <= C.BPS, "params: haircut above 100%"
    new: Security = Security(haircut_bps=haircut_bps, st=st, listed_day=listed_day)
    log SecuritySet(code=code, old=self.securities[code], new=new)
    self.securities[code] = new


@external
def set_limits(lim: Limits):
    """
    @notice Operator: position limits, penalty, floors and fee allowance (bps). Event
            `LimitsSet` with the old and the new values.
    @param lim max_single_bps and max_exposure_bps in 1..10000; penalty_bps and max_fee_bps
           below 10000; hard_floor_bps and withdraw_floor_bps above 10000 (100%).
    """
    self._check_operator()
    assert lim.max_single_bps <= C.BPS and lim.max_exposure_bps <= C.BPS, "params: limit above 100%"
    assert lim.max_single_bps > 0 and lim.max_exposure_bps > 0, "params: zero limit"
    assert lim.penalty_bps < C.BPS and lim.max_fee_bps < C.BPS, "params: fee above 100%"
    assert lim.hard_floor_bps > C.BPS and lim.withdraw_floor_bps > C.BPS, "params: floor not above 100%"
    log LimitsSet(old=self.limits, new=lim)
    self.limits = lim


@external
def set_st_haircut(haircut_bps: uint256):
    """
    @notice Operator: haircut of ST / *ST securities (never above a security's board
            haircut). Event `StHaircutSet` with the old and the new values.
    @param haircut_bps At most 5000 (50%).
    """
    self._check_operator()
    assert haircut_bps <= C.BPS // 2, "params: ST haircut above 50%"
    log StHaircutSet(old_bps=self.st_haircut_bps, new_bps=haircut_bps)
    self.st_haircut_bps = haircut_bps


@external
def set_stressed_haircuts(haircut_scale_bps: uint256, st_haircut_bps: uint256):
    """
    @notice Operator: the stressed regime's haircuts. Event `StressedHaircutsSet` with the
            old and the new values.
    @param haircut_scale_bps Stressed haircut = board haircut * this / 10000; 5000..10000.
    @param st_haircut_bps Stressed haircut of ST / *ST securities, at most 5000.
    """
    self._check_operator()
    assert haircut_scale_bps >= C.BPS // 2 and haircut_scale_bps <= C.BPS, (
        "params: stressed scale not in 50..100%"
    )
    assert st_haircut_bps <= C.BPS // 2, "params: ST haircut above 50%"
    new: Stressed = Stressed(haircut_scale_bps=haircut_scale_bps, st_haircut_bps=st_haircut_bps)
    log StressedHaircutsSet(old=self._stressed_haircuts(), new=new)
    w: uint256 = self.policy & ~(M32 << SCALE_SHIFT | M32 << ST_SHIFT)
    self.policy = w | haircut_scale_bps << SCALE_SHIFT | st_haircut_bps << ST_SHIFT


@external
def set_liquidity_cap(cap_bps: uint256):
    """
    @notice Operator: the share of a security's liquidity figure the platform may hold after
            a financed buy. Event `LiquidityCapSet` with the old and the new values.
    @param cap_bps 1..10000 (10000: one average day's traded amount).
    """
    self._check_operator()
    assert cap_bps > 0 and cap_bps <= C.BPS, "params: liquidity cap not in 1..10000"
    log LiquidityCapSet(old_bps=self.policy >> CAP_SHIFT & M32, new_bps=cap_bps)
    self.policy = self.policy & ~(M32 << CAP_SHIFT) | cap_bps << CAP_SHIFT


@external
def set_liquidity(codes: DynArray[uint256, MAX_LIQUIDITY_CODES], amounts_fen: DynArray[uint256, MAX_LIQUIDITY_CODES]):
    """
    @notice Operator (from the oracle's bars, before each session): each security's 20-day
            average traded amount (fen); the liquidity cap of financed buys and the order in
            which liquidations sell (most liquid first). Event `LiquiditySet` per code.
    @param codes Security codes, 1..999999.
    @param amounts_fen One amount per code, below 2^128.
    """
    self._check_operator()
    assert len(codes) == len(amounts_fen), "params: length mismatch"
    for i: uint256 in range(len(codes), bound=MAX_LIQUIDITY_CODES):
        code: uint256 = codes[i]
        assert code > 0 and code < 1_000_000, "params: bad security code"
        assert amounts_fen[i] < 2**128, "params: amount too large"
        old: uint256 = self.liquidity_raw[code]
        if old > 0:
            old -= 1
        log LiquiditySet(code=code, old_fen=old, new_fen=amounts_fen[i])
        self.liquidity_raw[code] = amounts_fen[i] + 1


@external
def params_regime(regime: uint8):
    """
    @notice OrderBook (from `set_regime`, in the same call): the regime the haircuts follow.
    @param regime 0 normal, 1 stressed.
    """
    assert self.engine != empty(address), "params: not connected"
    assert msg.sender == staticcall IEngineBook(self.engine).orderbook(), (
        "params: caller is not order book"
    )
    self.policy = self.policy & ~convert(255, uint256) | convert(regime, uint256)


@external
def set_version(version: String[32], digest: bytes32):
    """
    @notice Operator: record the version and digest of the definition just applied.
    @param version Definition version (not empty).
    @param digest SHA-256 of the definition's canonical form.
    """
    self._check_operator()
    assert len(version) > 0, "params: empty version"
    log VersionSet(old=self.version, new=version, digest=digest)
    self.version = version
    self.digest = digest


@external
def connect(engine: address):
    """
    @notice Operator: name the MarginEngine (once) and push it every defined tier's rate.
    @param engine The MarginEngine's address (not zero).
    """
    self._check_operator()
    assert engine != empty(address), "params: zero address"
    assert self.engine == empty(address), "params: already connected"
    self.engine = engine
    log EngineConnected(engine=engine)
    for tier: uint256 in range(1, C.MAX_TIERS + 1):
        if self.tiers[tier].max_leverage > 0:
            extcall IRateSink(engine).params_rate(tier, self.tiers[tier].rate_bps)
