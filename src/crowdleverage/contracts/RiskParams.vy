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

# Storage is packed so that a buy reads four cold slots here (its security, its tier with the
# engine's address, the global word, a held security) instead of ten; getters `tiers`, `securities`, `limits`, `st_haircut_bps`,
# `regime`, `liquidity_cap_bps`, `stressed_haircuts`, `liquidity_fen`, `platform_qty`.
# Per tier, one slot: max leverage (8 bits) | initial (20 << 8) | warning (20 << 28) |
# liquidation (20 << 48) | rate (20 << 68), bps | the engine's address (160 << 96, written by
# `connect` and `set_tier`: a buy's `engine_buy` checks its caller against the tier word it
# reads anyway).
tier_w: HashMap[uint256, uint256]
# Per security, one slot: board haircut (16 bits) | ST (1 << 16) | listing day (32 << 17) |
# published 20-day average traded amount in fen plus 1 (104 << 49; 0 = never published: no
# liquidity cap; a published 0 refuses every financed buy) | the platform's shares held or
# being bought across accounts (103 << 153; kept by the MarginEngine through
# `engine_exposure`, next to the liquidity figure it is capped by).
sec_w: HashMap[uint256, uint256]
# The global word (one cold read per call): the limits at 20 bits each (max single 0, max
# exposure 20, penalty 40, hard floor 60, max fee 80, withdraw floor 100); the market regime
# (8 << 120: 0 normal, 1 stressed: the OrderBook's, pushed here by `params_regime` in
# `OrderBook.set_regime`); the liquidity cap (32 << 128: financed buys keep the platform's
# exposure to a security within this share, bps, of its liquidity figure); the stressed
# haircut scale (32 << 160) and stressed ST haircut (32 << 192); the ST haircut (32 << 224).
glob: uint256
M32: constant(uint256) = 2**32 - 1
M20: constant(uint256) = 2**20 - 1
REGIME_SHIFT: constant(uint256) = 120
CAP_SHIFT: constant(uint256) = 128
SCALE_SHIFT: constant(uint256) = 160
ST_SHIFT: constant(uint256) = 192
ST_HAIRCUT_SHIFT: constant(uint256) = 224
LIQ_SHIFT: constant(uint256) = 49
QTY_SHIFT: constant(uint256) = 153
M104: constant(uint256) = 2**104 - 1

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
    self.glob = 1_000 << CAP_SHIFT | 9_000 << SCALE_SHIFT


@internal
@view
def _check_operator():
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.OPERATOR), (
        "params: caller is not operator"
    )


# ---------------------------------------------------------------- packing
@internal
@pure
def _tier(w: uint256) -> Tier:
    return Tier(
        max_leverage=w & 255, initial_bps=w >> 8 & M20, warning_bps=w >> 28 & M20,
        liquidation_bps=w >> 48 & M20, rate_bps=w >> 68 & M20,
    )


@internal
@pure
def _security(w: uint256) -> Security:
    return Security(haircut_bps=w & 65535, st=w >> 16 & 1 != 0, listed_day=w >> 17 & M32)


@internal
@pure
def _limits(g: uint256) -> Limits:
    return Limits(
        max_single_bps=g & M20, max_exposure_bps=g >> 20 & M20, penalty_bps=g >> 40 & M20,
        hard_floor_bps=g >> 60 & M20, max_fee_bps=g >> 80 & M20, withdraw_floor_bps=g >> 100 & M20,
    )


@internal
@pure
def _stressed(g: uint256) -> Stressed:
    return Stressed(haircut_scale_bps=g >> SCALE_SHIFT & M32, st_haircut_bps=g >> ST_SHIFT & M32)


# ---------------------------------------------------------------- views
@internal
@pure
def _haircut(w: uint256, day: uint256, g: uint256) -> uint256:
    """
    @dev `w` the security's word, `g` the global word (its regime, ST and stressed haircuts).
    """
    s: Security = self._security(w)
    if s.haircut_bps == 0 or (s.listed_day != 0 and day < s.listed_day + C.NEW_LISTING_DAYS):
        return 0
    h: uint256 = s.haircut_bps
    if s.st:
        h = min(h, g >> ST_HAIRCUT_SHIFT)
    if g >> REGIME_SHIFT & 255 == convert(STRESSED, uint256):
        # the stressed haircut never counts more than the normal one (rounded down)
        h = h * (g >> SCALE_SHIFT & M32) // C.BPS
        if s.st:
            h = min(h, g >> ST_SHIFT & M32)
    return h


@external
@view
def tiers(tier: uint256) -> Tier:
    """
    @notice A leverage tier (all zero if not defined).
    @param tier The tier.
    @return max_leverage, initial_bps, warning_bps, liquidation_bps, rate_bps.
    """
    return self._tier(self.tier_w[tier])


@external
@view
def securities(code: uint256) -> Security:
    """
    @notice A security's eligibility (all zero if never set).
    @param code Security code.
    @return haircut_bps, st, listed_day.
    """
    return self._security(self.sec_w[code])


@external
@view
def limits() -> Limits:
    """
    @notice Position limits, penalty, floors and fee allowance (bps).
    @return max_single_bps, max_exposure_bps, penalty_bps, hard_floor_bps, max_fee_bps,
            withdraw_floor_bps.
    """
    return self._limits(self.glob)


@external
@view
def st_haircut_bps() -> uint256:
    """
    @notice Haircut of an ST / *ST security (0 by default: no collateral value).
    @return The haircut in bps.
    """
    return self.glob >> ST_HAIRCUT_SHIFT


@external
@view
def platform_qty(code: uint256) -> uint256:
    """
    @notice Shares of `code` held or being bought across the margin accounts (platform
            exposure; kept by the MarginEngine).
    @param code Security code.
    @return Shares.
    """
    return self.sec_w[code] >> QTY_SHIFT


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
    return self._haircut(self.sec_w[code], day, self.glob)


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
    g: uint256 = self.glob
    for i: uint256 in range(C.MAX_CODES):
        if codes[i] == 0:
            break
        out[i] = self._haircut(self.sec_w[codes[i]], day, g)
    return out


@external
@view
def buy_terms(tier: uint256, code: uint256, day: uint256) -> (uint256, uint256):
    """
    @notice What a buy is priced with, in one call.
    @param tier The account's tier (unused here; the limits are checked in `engine_buy`).
    @param code Security code.
    @param day Trading day.
    @return The haircut if the security may be bought with financing (0 if not: unlisted,
            new listing, ST / *ST) and the fee allowance (bps).
    """
    w: uint256 = self.sec_w[code]
    g: uint256 = self.glob
    h: uint256 = 0
    if w >> 16 & 1 == 0:
        h = self._haircut(w, day, g)
    return h, g >> 80 & M20


@internal
def _check_engine():
    assert msg.sender == self.engine and msg.sender != empty(address), "params: caller is not engine"


@internal
def _add_exposure(code: uint256, w: uint256, qty: uint256):
    assert qty < 2**103, "params: quantity too large"
    self.sec_w[code] = w & (2**QTY_SHIFT - 1) | qty << QTY_SHIFT


@external
def engine_buy(
    tier: uint256, code: uint256, qty: uint256, limit_price_fen: uint256, held_qty: uint256,
    cash_fen: uint256, pending_fen: uint256, debt_fen: uint256, pool_assets_fen: uint256,
    day: uint256, price_fen: uint256, halted_flags: uint256, codes: uint256[C.MAX_CODES],
    values_fen: uint256[C.MAX_CODES],
) -> (uint256, uint256):
    """
    @notice MarginEngine: a buy of `qty` shares of `code` at most at `limit_price_fen`, priced
            and checked in one call (each parameter slot read once): its cost with the fee
            allowance and the financing it draws (what the account's cash lacks), then the
            pre-trade limits; the platform's exposure grows by `qty`. Reverts "margin:
            security not financeable" (no financing haircut: unlisted, new listing, ST /
            *ST; or halted), "oracle: price unreliable" (`price_fen` 0), "margin: insufficient
            assets", "margin: ratio below initial" / "margin: leverage above tier" (with debt
            after the buy), "margin: single security above 40%", "margin: platform exposure
            above 5%"; a buy that draws financing also "stressed regime: no new financing" in
            the stressed regime and "margin: above liquidity cap" when the platform's position
            after it, at the limit price, is above `liquidity_cap_fen(code)`.
    @param tier The account's tier.
    @param code Security code.
    @param qty Shares bought.
    @param limit_price_fen The limit price.
    @param held_qty Shares of `code` the account holds or is buying before this order.
    @param cash_fen The account's free cash.
    @param pending_fen The account's cash reserved for open buys.
    @param debt_fen The account's debt before the buy.
    @param pool_assets_fen The pool's assets (the platform exposure limit's base).
    @param day Trading day.
    @param price_fen The oracle's reliable price of `code` (0: unreliable).
    @param halted_flags Bit i: codes[i] is halted; bit 255: `code` is halted.
    @param codes The securities the account holds, 0 after the last.
    @param values_fen Shares held times conservative price of each of `codes`, in fen.
    @return The cash reserved (cost with the fee allowance) and the financing drawn, in fen.
    """
    # dev: the tier word carries the engine's address (one slot read for both)
    t: uint256 = self.tier_w[tier]
    assert msg.sender == convert(convert(t >> 96, uint160), address) and msg.sender != empty(address), (
        "params: caller is not engine"
    )
    w: uint256 = self.sec_w[code]
    g: uint256 = self.glob
    h: uint256 = 0
    if w >> 16 & 1 == 0:
        h = self._haircut(w, day, g)
    assert h > 0 and halted_flags >> 255 == 0, "margin: security not financeable"
    assert price_fen > 0, "oracle: price unreliable"
    # the account's assets: cash, pending buy cash and the haircut value of its shares
    # (a halted security counts at most the halted haircut)
    assets: uint256 = cash_fen + pending_fen
    for i: uint256 in range(C.MAX_CODES):
        if codes[i] == 0:
            break
        hc: uint256 = self._haircut(self.sec_w[codes[i]], day, g)
        if hc > C.HALTED_HAIRCUT_BPS and halted_flags >> i & 1 != 0:
            hc = C.HALTED_HAIRCUT_BPS
        assets += values_fen[i] * hc // C.BPS
    gross: uint256 = qty * limit_price_fen
    cost: uint256 = gross + (gross * (g >> 80 & M20) + C.BPS - 1) // C.BPS
    draw: uint256 = 0
    if cost > cash_fen:
        draw = cost - cash_fen
    assert assets + draw >= cost, "margin: insufficient assets"
    # after the fill: cash spent (financing added), shares at min(oracle, limit) * haircut
    px: uint256 = min(price_fen, limit_price_fen)
    value_price: uint256 = px * h // C.BPS
    assets_after: uint256 = assets + draw - cost + qty * px * h // C.BPS
    debt_after: uint256 = debt_fen + draw
    if debt_after > 0:
        assert assets_after * C.BPS >= (t >> 8 & M20) * debt_after, "margin: ratio below initial"
        assert assets_after > debt_after and debt_after <= (t & 255) * (assets_after - debt_after), (
            "margin: leverage above tier"
        )
    assert (held_qty + qty) * value_price * C.BPS <= (g & M20) * assets_after, (
        "margin: single security above 40%"
    )
    total: uint256 = (w >> QTY_SHIFT) + qty
    assert total * value_price * C.BPS <= (g >> 20 & M20) * pool_assets_fen, (
        "margin: platform exposure above 5%"
    )
    # a financed buy is capped by the security's liquidity figure (and refused when stressed)
    if draw > 0:
        assert g >> REGIME_SHIFT & 255 != convert(STRESSED, uint256), "stressed regime: no new financing"
        assert total * limit_price_fen <= self._liquidity_cap(w, g), "margin: above liquidity cap"
    self._add_exposure(code, w, total)
    return cost, draw


@external
def engine_exposure(code: uint256, added: uint256, removed: uint256):
    """
    @notice MarginEngine: the platform's shares of `code` held or being bought change by
            `added - removed` (fills of sells, closed buys, bonus shares).
    @param code Security code.
    @param added Shares added.
    @param removed Shares removed.
    """
    self._check_engine()
    w: uint256 = self.sec_w[code]
    self._add_exposure(code, w, (w >> QTY_SHIFT) + added - removed)


@external
@view
def liquidity_fen(code: uint256) -> uint256:
    """
    @notice The published 20-day average traded amount of `code`, in fen (0 if never
            published; see `liquidity_published`).
    @param code Security code.
    @return The amount in fen.
    """
    raw: uint256 = self.sec_w[code] >> LIQ_SHIFT & M104
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
    return self.sec_w[code] >> LIQ_SHIFT & M104 != 0


@internal
@pure
def _liquidity_cap(w: uint256, g: uint256) -> uint256:
    raw: uint256 = w >> LIQ_SHIFT & M104
    if raw == 0:
        return max_value(uint256)
    return (raw - 1) * (g >> CAP_SHIFT & M32) // C.BPS


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
    return self._liquidity_cap(self.sec_w[code], self.glob)


@external
@view
def regime() -> uint8:
    """
    @notice The market regime the haircuts follow (0 normal, 1 stressed): the OrderBook's.
    @return The regime.
    """
    return convert(self.glob >> REGIME_SHIFT & 255, uint8)


@external
@view
def liquidity_cap_bps() -> uint256:
    """
    @notice Financed buys: the platform's exposure to a security stays within this share
            (bps) of its published liquidity figure.
    @return The share in bps.
    """
    return self.glob >> CAP_SHIFT & M32


@external
@view
def stressed_haircuts() -> Stressed:
    """
    @notice The stressed regime's haircuts: the scale of every haircut and the ST haircut.
    @return haircut_scale_bps, st_haircut_bps.
    """
    return self._stressed(self.glob)


@external
@view
def keeper_terms(tier: uint256) -> (uint256, uint256, uint256, uint256, uint256):
    """
    @notice What the keeper decides on besides the account: the tier's initial, warning and
            liquidation lines, the liquidation penalty and the hard floor (bps).
    @param tier The account's tier.
    @return initial_bps, warning_bps, liquidation_bps, penalty_bps, hard_floor_bps.
    """
    t: Tier = self._tier(self.tier_w[tier])
    g: uint256 = self.glob
    return t.initial_bps, t.warning_bps, t.liquidation_bps, g >> 40 & M20, g >> 60 & M20


@external
@view
def withdraw_line(tier: uint256) -> uint256:
    """
    @notice The ratio an account with debt must keep after a withdrawal:
            max(the tier's initial line, the withdrawal floor), in bps.
    @param tier The account's tier.
    @return The line in bps.
    """
    return max(self.tier_w[tier] >> 8 & M20, self.glob >> 100 & M20)


@external
@view
def penalty_bps() -> uint256:
    """
    @notice The liquidation penalty on sold value, in bps.
    @return The penalty in bps.
    """
    return self.glob >> 40 & M20


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
    log TierSet(tier=tier, old=self._tier(self.tier_w[tier]), new=t)
    self.tier_w[tier] = (
        t.max_leverage | t.initial_bps << 8 | t.warning_bps << 28 | t.liquidation_bps << 48 | t.rate_bps << 68
        | convert(self.engine, uint256) << 96
    )
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
    @param listed_day Trading day of listing (0: listed before the platform began), below
           2^32.
    """
    self._check_operator()
    assert code > 0 and code < 1_000_000, "params: bad security code"
    assert haircut_bps <= C.BPS, "params: haircut above 100%"
    assert listed_day <= M32, "params: day too large"
    w: uint256 = self.sec_w[code]
    log SecuritySet(code=code, old=self._security(w), new=Security(haircut_bps=haircut_bps, st=st, listed_day=listed_day))
    self.sec_w[code] = w & ~(2**LIQ_SHIFT - 1) | haircut_bps | convert(st, uint256) << 16 | listed_day << 17


@external
def set_limits(lim: Limits):
    """
    @notice Operator: position limits, penalty, floors and fee allowance (bps). Event
            `LimitsSet` with the old and the new values.
    @param lim max_single_bps and max_exposure_bps in 1..10000; penalty_bps and max_fee_bps
           below 10000; hard_floor_bps and withdraw_floor_bps above 10000 (100%) and at
           most 100000 (1000%).
    """
    self._check_operator()
    assert lim.max_single_bps <= C.BPS and lim.max_exposure_bps <= C.BPS, "params: limit above 100%"
    assert lim.max_single_bps > 0 and lim.max_exposure_bps > 0, "params: zero limit"
    assert lim.penalty_bps < C.BPS and lim.max_fee_bps < C.BPS, "params: fee above 100%"
    assert lim.hard_floor_bps > C.BPS and lim.withdraw_floor_bps > C.BPS, "params: floor not above 100%"
    assert lim.hard_floor_bps <= 10 * C.BPS and lim.withdraw_floor_bps <= 10 * C.BPS, "params: floor above 1000%"
    g: uint256 = self.glob
    log LimitsSet(old=self._limits(g), new=lim)
    self.glob = g >> 120 << 120 | (
        lim.max_single_bps | lim.max_exposure_bps << 20 | lim.penalty_bps << 40
        | lim.hard_floor_bps << 60 | lim.max_fee_bps << 80 | lim.withdraw_floor_bps << 100
    )


@external
def set_st_haircut(haircut_bps: uint256):
    """
    @notice Operator: haircut of ST / *ST securities (never above a security's board
            haircut). Event `StHaircutSet` with the old and the new values.
    @param haircut_bps At most 5000 (50%).
    """
    self._check_operator()
    assert haircut_bps <= C.BPS // 2, "params: ST haircut above 50%"
    g: uint256 = self.glob
    log StHaircutSet(old_bps=g >> ST_HAIRCUT_SHIFT, new_bps=haircut_bps)
    self.glob = g & (2**ST_HAIRCUT_SHIFT - 1) | haircut_bps << ST_HAIRCUT_SHIFT


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
    g: uint256 = self.glob
    log StressedHaircutsSet(old=self._stressed(g), new=Stressed(haircut_scale_bps=haircut_scale_bps, st_haircut_bps=st_haircut_bps))
    g = g & ~(M32 << SCALE_SHIFT | M32 << ST_SHIFT)
    self.glob = g | haircut_scale_bps << SCALE_SHIFT | st_haircut_bps << ST_SHIFT


@external
def set_liquidity_cap(cap_bps: uint256):
    """
    @notice Operator: the share of a security's liquidity figure the platform may hold after
            a financed buy. Event `LiquidityCapSet` with the old and the new values.
    @param cap_bps 1..10000 (10000: one average day's traded amount).
    """
    self._check_operator()
    assert cap_bps > 0 and cap_bps <= C.BPS, "params: liquidity cap not in 1..10000"
    g: uint256 = self.glob
    log LiquidityCapSet(old_bps=g >> CAP_SHIFT & M32, new_bps=cap_bps)
    self.glob = g & ~(M32 << CAP_SHIFT) | cap_bps << CAP_SHIFT


@external
def set_liquidity(codes: DynArray[uint256, MAX_LIQUIDITY_CODES], amounts_fen: DynArray[uint256, MAX_LIQUIDITY_CODES]):
    """
    @notice Operator (from the oracle's bars, before each session): each security's 20-day
            average traded amount (fen); the liquidity cap of financed buys and the order in
            which liquidations sell (most liquid first). Event `LiquiditySet` per code.
    @param codes Security codes, 1..999999.
    @param amounts_fen One amount per code, below 2^100.
    """
    self._check_operator()
    assert len(codes) == len(amounts_fen), "params: length mismatch"
    for i: uint256 in range(len(codes), bound=MAX_LIQUIDITY_CODES):
        code: uint256 = codes[i]
        assert code > 0 and code < 1_000_000, "params: bad security code"
        assert amounts_fen[i] < 2**100, "params: amount too large"
        w: uint256 = self.sec_w[code]
        old: uint256 = w >> LIQ_SHIFT & M104
        if old > 0:
            old -= 1
        log LiquiditySet(code=code, old_fen=old, new_fen=amounts_fen[i])
        self.sec_w[code] = w & ~(M104 << LIQ_SHIFT) | (amounts_fen[i] + 1) << LIQ_SHIFT


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
    self.glob = self.glob & ~(convert(255, uint256) << REGIME_SHIFT) | convert(regime, uint256) << REGIME_SHIFT


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
        w: uint256 = self.tier_w[tier]
        if w & 255 > 0:
            self.tier_w[tier] = w | convert(engine, uint256) << 96
            extcall IRateSink(engine).params_rate(tier, w >> 68 & M20)
