# pragma version ~=0.4.3
# pragma optimize codesize
"""
@title Liquidator
@custom:contract-name Liquidator
@notice The keeper's entry points of the margin system (DESIGN.md §6-§7): margin warning
        (event only), automatic top-up (自动补仓) from the reserve, start / next round / end
        of a liquidation and the loss waterfall call. It holds no state and no assets: it
        decides on one `MarginEngine.keeper_view` and acts through the engine's `liq_*`
        hooks and liquidation sells through `OrderBook.liq_order`, which only this contract may
        call (`MarginEngine.set_liquidator`, once).
        Regime-aware (DESIGN.md §11): while the OrderBook's regime (set from the stress
        indicator published at the last close) is stressed, the liquidation line rises by
        `stressed_line_bps` of the distance from the tier's liquidation line to its initial
        ratio (the warning line with it, when lower), and a liquidation closes the account in
        full (`stressed_full_close`) or de-levers to the initial ratio +
        `stressed_target_add_bps`. A liquidation sells what can trade today first (not
        halted, not sealed at limit-down), most liquid first (`RiskParams.liquidity_fen`, the
        20-day average traded amount the operator publishes).
        NAV stop (issue 13, like an umbrella trust's stop line): the keeper records an
        account's reference (assets and equity when it first has debt, `set_reference`); once
        its equity falls below reference equity − `nav_stop_bps` × reference assets, the
        account is closed in full whatever its ratio below `nav_stop_below_bps` (an account
        above it, e.g. barely levered, is left alone). 0 disables the stop. A haircut step
        (the stressed set phasing in, the regime switching) is not a loss: the keeper moves
        the references' equity by what the step changed (`shift_references`).
@custom:security Every action re-verifies the ratio on chain at the time of the call.
        Revert strings keep the engine's "margin:" prefix (one margin system to the caller).
"""

from .interfaces import IIdentityRegistry
from .interfaces import IMarginEngine
from .interfaces import IOrderBook
from .interfaces import IPriceOracle
from . import constants as C

# ---------------------------------------------------------------- events
event MarginWarning:
    account: indexed(address)
    ratio_bps: uint256
    warning_bps: uint256


event ToppedUp:
    account: indexed(address)
    amount_fen: uint256
    ratio_before_bps: uint256
    ratio_after_bps: uint256


event LiquidationStarted:
    account: indexed(address)
    ratio_bps: uint256
    provision_fen: uint256
    full: bool


event LiquidationEnded:
    account: indexed(address)
    ratio_bps: uint256
    reserve_used_fen: uint256
    shortfall_fen: uint256
    insurance_paid_fen: uint256


event KeeperSkipped:
    account: indexed(address)
    action: uint8
    reason: String[40]


event StressedPolicySet:
    old_line_bps: uint256
    new_line_bps: uint256
    old_target_add_bps: uint256
    new_target_add_bps: uint256
    old_full_close: bool
    new_full_close: bool


# ── NAV stop (issue 13, wave2/losses) ──
event ReferenceSet:
    account: indexed(address)
    assets_fen: uint256
    equity_fen: uint256


event NavStopSet:
    old_bps: uint256
    new_bps: uint256
    old_below_bps: uint256
    new_below_bps: uint256


event ReferenceShifted:
    account: indexed(address)
    delta_fen: uint256
    up: bool
    equity_fen: uint256
# ── end NAV stop ──


interface IRegime:
    def regime() -> uint8: view


interface IEngineParams:
    def PARAMS() -> address: view


interface ILiquidity:
    def liquidity_fen(code: uint256) -> uint256: view
    def keeper_terms(tier: uint256) -> (uint256, uint256, uint256, uint256, uint256): view


# ---------------------------------------------------------------- storage
ENGINE: public(immutable(IMarginEngine))
REGISTRY: public(immutable(IIdentityRegistry))
ORACLE: public(immutable(IPriceOracle))


# A keeper's view of an account (MarginEngine.keeper_view).
struct View:
    assets: uint256
    debt: uint256
    initial_bps: uint256
    warning_bps: uint256
    liquidation_bps: uint256
    reserve_fen: uint256
    locked: bool
    open_liq: uint256
    n_codes: uint256
    penalty_bps: uint256
    hard_floor_bps: uint256
    stressed: bool
    stopped: bool  # NAV stop (wave2/losses): below the reference's stop


STRESSED: constant(uint8) = 1
MAX_TARGET_ADD_BPS: constant(uint256) = 10_000
# `keep`: accounts per call and the action codes.
MAX_KEEP: constant(uint256) = 64
WARN: constant(uint8) = 0
TOP_UP: constant(uint8) = 1
START: constant(uint8) = 2
END: constant(uint8) = 3

# Stressed regime: the liquidation line rises by this share (bps) of (initial - liquidation).
stressed_line_bps: public(uint256)
# Stressed regime, partial mode: de-lever to the initial ratio + this (bps of ratio).
stressed_target_add_bps: public(uint256)
# Stressed regime: below the line, close the account in full.
stressed_full_close: public(bool)

# ── NAV stop (issue 13, wave2/losses) ──
struct Reference:
    assets: uint256  # fen, haircut value + cash, when recorded
    equity: uint256  # assets - debt when recorded


MAX_NAV_STOP_BPS: constant(uint256) = 5_000
# A haircut step moves an account's assets by at most this share (RiskParams' lowest
# stressed haircut scale is 5000): the bound of `shift_references`.
MAX_SHIFT_BPS: constant(uint256) = 5_000
# Closed in full below reference equity - this share of reference assets (bps; 0: no stop).
nav_stop_bps: public(uint256)
# The stop applies only to an account whose ratio is below this (bps).
nav_stop_below_bps: public(uint256)
reference: public(HashMap[address, Reference])
# ── end NAV stop ──


@deploy
def __init__(engine: IMarginEngine, registry: IIdentityRegistry, oracle: IPriceOracle):
    """
    @param engine The MarginEngine whose accounts this contract liquidates.
    @param registry The IdentityRegistry (KEEPER role).
    @param oracle The PriceOracle (conservative prices and bands).
    """
    assert engine.address != empty(address) and registry.address != empty(address), (
        "liquidator: zero address"
    )
    assert oracle.address != empty(address), "liquidator: zero address"
    ENGINE = engine
    REGISTRY = registry
    ORACLE = oracle
    # defaults = domain/params.py STRESSED_* (a test checks they agree)
    self.stressed_line_bps = 9_000
    self.stressed_target_add_bps = 1_000
    self.stressed_full_close = True
    self.nav_stop_bps = 500  # domain/params.py NAV_STOP_BPS (wave2/losses)
    self.nav_stop_below_bps = 30_000  # domain/params.py NAV_STOP_BELOW_BPS


# ---------------------------------------------------------------- internal
@internal
@view
def _check_keeper():
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.KEEPER), (
        "margin: caller is not keeper"
    )


@internal
@view
def _stressed() -> bool:
    return staticcall IRegime(staticcall ENGINE.orderbook()).regime() == STRESSED


@internal
@view
def _view(who: address, stressed: bool) -> View:
    v: View = empty(View)
    tier: uint256 = 0
    v.assets, v.debt, tier, v.reserve_fen, v.locked, v.open_liq, v.n_codes = staticcall ENGINE.keeper_view(who)
    # the tier's lines, the penalty and the hard floor: RiskParams (one source)
    params: ILiquidity = ILiquidity(staticcall IEngineParams(ENGINE.address).PARAMS())
    v.initial_bps, v.warning_bps, v.liquidation_bps, v.penalty_bps, v.hard_floor_bps = staticcall params.keeper_terms(tier)
    v.stressed = stressed
    if stressed:
        v.liquidation_bps += (v.initial_bps - v.liquidation_bps) * self.stressed_line_bps // C.BPS
        v.warning_bps = max(v.warning_bps, v.liquidation_bps)
        v.initial_bps += self.stressed_target_add_bps
    # NAV stop (wave2/losses): assets - debt < ref.equity - stop * ref.assets, without signs
    r: Reference = self.reference[who]
    if self.nav_stop_bps > 0 and r.assets > 0 and v.assets * C.BPS < self.nav_stop_below_bps * v.debt:
        v.stopped = v.assets * C.BPS + self.nav_stop_bps * r.assets < (v.debt + r.equity) * C.BPS
    return v


@internal
@pure
def _ratio(assets: uint256, debt: uint256) -> uint256:
    if debt == 0:
        return C.MAX_RATIO
    return assets * C.BPS // debt


@internal
def _emit_orders(who: address, v: View) -> bool:
    """
    @dev Sell orders for the sellable lots: enough to restore the target ratio (the tier's
         initial, raised while stressed), or everything below the hard floor or while
         stressed in full-close mode. Securities that trade today (not halted, not sealed at
         limit-down) come first, the most liquid first; a partial liquidation sells whole
         positions in that order until the target is met. Returns whether it is full.
    """
    book: IOrderBook = IOrderBook(staticcall ENGINE.orderbook())
    codes: DynArray[uint256, C.MAX_CODES] = staticcall ENGINE.codes_of(who)
    avail: DynArray[uint256, C.MAX_CODES] = []
    price: DynArray[uint256, C.MAX_CODES] = []
    rank: DynArray[uint256, C.MAX_CODES] = []
    sellable_value: uint256 = 0
    # each security's liquidity figure is published at RiskParams (one source)
    params: ILiquidity = ILiquidity(staticcall IEngineParams(ENGINE.address).PARAMS())
    for code: uint256 in codes:
        q: uint256 = staticcall ENGINE.sellable(who, code)
        p: uint256 = staticcall ORACLE.conservative_price(code)
        r: uint256 = staticcall params.liquidity_fen(code) + 1
        if staticcall ORACLE.halted(code) or staticcall ORACLE.is_sealed_limit_down(code):
            r = 0
        avail.append(q)
        price.append(p)
        rank.append(r)
        sellable_value += q * p
    full: bool = True
    need: uint256 = sellable_value
    # Selling value V (haircut <= 100%, penalty p) moves the ratio to (A - V) / (D - V(1-p));
    # reaching target T needs V >= (T*D - A) / (T(1-p) - 1); a non-positive denominator, a
    # ratio under the hard floor or the stressed full-close mode means sell everything.
    den: uint256 = v.initial_bps * (C.BPS - v.penalty_bps) // C.BPS
    if (
        v.assets * C.BPS >= v.hard_floor_bps * v.debt and den > C.BPS
        and not (v.stressed and self.stressed_full_close) and not v.stopped
    ):
        full = False
        need = 0
        if v.initial_bps * v.debt > v.assets * C.BPS:
            need = (v.initial_bps * v.debt - v.assets * C.BPS + den - C.BPS - 1) // (den - C.BPS)
    for _: uint256 in range(len(codes), bound=C.MAX_CODES):
        # the next security: highest rank (trading today, then most liquid), first listed
        best: uint256 = 0
        best_rank: uint256 = 0
        found: bool = False
        for i: uint256 in range(len(codes), bound=C.MAX_CODES):
            if avail[i] > 0 and (not found or rank[i] > best_rank):
                best = i
                best_rank = rank[i]
                found = True
        if not found or (not full and need == 0):
            break
        qty: uint256 = avail[best]
        avail[best] = 0
        if not full and price[best] > 0:
            lots: uint256 = (need + price[best] * C.LOT - 1) // (price[best] * C.LOT)
            qty = min(lots * C.LOT, qty)
            need -= min(need, qty * price[best])
        low: uint256 = 0
        high: uint256 = 0
        low, high = staticcall ORACLE.band(codes[best])
        extcall book.liq_order(who, codes[best], qty, low, full)
    return full


@external
def set_stressed_policy(line_bps: uint256, target_add_bps: uint256, full_close: bool):
    """
    @notice Operator: what a liquidation does while the regime is stressed.
    @param line_bps The liquidation line rises by this share of (initial - liquidation line),
           0..10000 (10000: the initial ratio).
    @param target_add_bps Partial mode: de-lever to the initial ratio + this, 0..10000.
    @param full_close Below the line, close the account in full.
    """
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.OPERATOR), (
        "margin: caller is not operator"
    )
    assert line_bps <= C.BPS and target_add_bps <= MAX_TARGET_ADD_BPS, "margin: out of bounds"
    log StressedPolicySet(
        old_line_bps=self.stressed_line_bps, new_line_bps=line_bps,
        old_target_add_bps=self.stressed_target_add_bps, new_target_add_bps=target_add_bps,
        old_full_close=self.stressed_full_close, new_full_close=full_close,
    )
    self.stressed_line_bps = line_bps
    self.stressed_target_add_bps = target_add_bps
    self.stressed_full_close = full_close


# ── NAV stop (issue 13, wave2/losses) ──
@external
def set_nav_stop(stop_bps: uint256, below_bps: uint256):
    """
    @notice Operator: the NAV stop, as a share of an account's reference assets (0: none),
            and the ratio below which it applies.
    @param stop_bps 0..5000.
    @param below_bps Above 10000 (100%).
    """
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.OPERATOR), (
        "margin: caller is not operator"
    )
    assert stop_bps <= MAX_NAV_STOP_BPS and below_bps > C.BPS, "margin: out of bounds"
    log NavStopSet(
        old_bps=self.nav_stop_bps, new_bps=stop_bps, old_below_bps=self.nav_stop_below_bps,
        new_below_bps=below_bps,
    )
    self.nav_stop_bps = stop_bps
    self.nav_stop_below_bps = below_bps


@external
def set_reference(who: address):
    """
    @notice Keeper: record the account's assets and equity now as its NAV-stop reference
            (when it first has debt, and again after a liquidation ended).
    @param who The account holder (not in liquidation, with debt and positive equity).
    """
    self._check_keeper()
    v: View = self._view(who, self._stressed())
    assert not v.locked, "margin: in liquidation"
    assert v.debt > 0 and v.assets > v.debt, "margin: no debt or no equity"
    self.reference[who] = Reference(assets=v.assets, equity=v.assets - v.debt)
    log ReferenceSet(account=who, assets_fen=v.assets, equity_fen=v.assets - v.debt)


@external
def shift_references(
    accounts: DynArray[address, MAX_KEEP], deltas: DynArray[uint256, MAX_KEEP], up: bool
) -> uint256:
    """
    @notice Keeper: move each account's NAV-stop reference equity by the change of its assets
            that a haircut step caused (the stressed set phasing in, the regime switching), so
            that the stop counts market losses only. The reference assets (the stop's size)
            stay, so the stop's test gives what it gave before the step.
    @dev The keeper measures each account's assets (`MarginEngine.keeper_view`) just before
         and just after the operator's step, at the same prices. An account without a
         reference is left alone (not counted).
    @param accounts The account holders (at most 64).
    @param deltas Fen per account: at most half its reference assets, and (down) below its
           reference equity.
    @param up True when the haircuts rose (the equity references rise), else they fall.
    @return How many references moved.
    """
    self._check_keeper()
    assert len(accounts) == len(deltas), "margin: length mismatch"
    done: uint256 = 0
    for i: uint256 in range(len(accounts), bound=MAX_KEEP):
        who: address = accounts[i]
        d: uint256 = deltas[i]
        r: Reference = self.reference[who]
        if r.assets == 0 or d == 0:
            continue
        assert d * C.BPS <= r.assets * MAX_SHIFT_BPS, "margin: shift out of bounds"
        if up:
            r.equity += d
        else:
            assert d < r.equity, "margin: shift out of bounds"
            r.equity -= d
        self.reference[who] = r
        log ReferenceShifted(account=who, delta_fen=d, up=up, equity_fen=r.equity)
        done += 1
    return done
# ── end NAV stop ──


# ---------------------------------------------------------------- internal: keeper actions
# Each returns "" when done, else why the account is not eligible (the single entry points
# revert with it, `keep` logs it in `KeeperSkipped` and goes on).
@internal
def _warn(who: address, v: View) -> String[40]:
    ratio: uint256 = self._ratio(v.assets, v.debt)
    if ratio >= v.warning_bps:
        return "margin: above warning line"
    log MarginWarning(account=who, ratio_bps=ratio, warning_bps=v.warning_bps)
    return ""


@internal
def _top_up(who: address, v: View) -> String[40]:
    ratio: uint256 = self._ratio(v.assets, v.debt)
    if ratio >= v.warning_bps:
        return "margin: above warning line"
    if v.reserve_fen == 0:
        return "margin: no reserve"
    need: uint256 = (v.initial_bps * v.debt + C.BPS - 1) // C.BPS - v.assets
    amount: uint256 = min(need, v.reserve_fen)
    extcall ENGINE.liq_top_up(who, amount)
    log ToppedUp(
        account=who, amount_fen=amount, ratio_before_bps=ratio,
        ratio_after_bps=self._ratio(v.assets + amount, v.debt),
    )
    return ""


@internal
def _start(who: address, v: View) -> String[40]:
    ratio: uint256 = self._ratio(v.assets, v.debt)
    full: bool = False
    if not (v.locked and v.open_liq > 0):
        if not v.locked and ratio >= v.liquidation_bps and not v.stopped:
            return "margin: above liquidation line"
        full = self._emit_orders(who, v)
    provision: uint256 = extcall ENGINE.liq_mark(who, True)
    log LiquidationStarted(account=who, ratio_bps=ratio, provision_fen=provision, full=full)
    return ""


@internal
def _end(who: address, v: View) -> String[40]:
    if not v.locked:
        return "margin: not in liquidation"
    if v.open_liq != 0:
        return "margin: liquidation orders open"
    if v.n_codes > 0 and v.assets * C.BPS < v.liquidation_bps * v.debt:
        return "margin: still below liquidation line"
    reserve_used: uint256 = 0
    shortfall: uint256 = 0
    paid: uint256 = 0
    reserve_used, shortfall, paid = extcall ENGINE.liq_end(who, v.n_codes == 0)
    if v.n_codes == 0:
        self.reference[who] = empty(Reference)  # NAV stop (wave2/losses): re-marked later
    log LiquidationEnded(
        account=who, ratio_bps=self._ratio(v.assets, v.debt), reserve_used_fen=reserve_used,
        shortfall_fen=shortfall, insurance_paid_fen=paid,
    )
    return ""


@internal
def _act(who: address, action: uint8, stressed: bool) -> String[40]:
    v: View = self._view(who, stressed)
    if action == WARN:
        return self._warn(who, v)
    if action == TOP_UP:
        return self._top_up(who, v)
    if action == START:
        return self._start(who, v)
    return self._end(who, v)


@internal
def _single(who: address, action: uint8):
    self._check_keeper()
    reason: String[40] = self._act(who, action, self._stressed())
    if len(reason) > 0:
        raise reason


# ---------------------------------------------------------------- external: keeper
@external
def warn(who: address):
    """
    @notice Keeper: emit `MarginWarning` for an account below its warning line (re-verified).
    @param who The account holder.
    """
    self._single(who, WARN)


@external
def top_up(who: address):
    """
    @notice Keeper: below the warning line, move reserve into margin cash until the ratio is
            back at the tier's initial ratio (or the reserve is used up).
    @param who The account holder.
    """
    self._single(who, TOP_UP)


@external
def start_liquidation(who: address):
    """
    @notice Keeper: below the liquidation line, lock the account and emit `LiquidationOrder`s
            (from the OrderBook) for its sellable lots (partial to restore the initial ratio,
            full below the hard floor or the NAV stop). On a locked account with no open
            liquidation orders, emit the next round (e.g. lots unlocked by T+1 since); with
            orders still open (sealed limit-down), only re-mark the provisional loss the pool
            deducts before anyone exits.
    @param who The account holder.
    """
    self._single(who, START)


@external
def end_liquidation(who: address):
    """
    @notice Keeper: end a liquidation with no open liquidation orders. If shares remain the
            ratio must be back above the liquidation line; if none remain, the debt left is a
            shortfall: reserve, then the penalty and the insurance fund, then junior, then
            senior (through the pool).
    @param who The account holder.
    """
    self._single(who, END)


@external
def keep(accounts: DynArray[address, MAX_KEEP], actions: DynArray[uint8, MAX_KEEP]) -> uint256:
    """
    @notice Keeper: up to 64 actions in one call, `actions[i]` on `accounts[i]` (0 warn,
            1 top_up, 2 start_liquidation, 3 end_liquidation), each re-verified as its single
            entry point does. An account no longer eligible is skipped with `KeeperSkipped`
            (the single entry point's revert string) instead of reverting the batch; the
            others log their usual events.
    @param accounts The account holders.
    @param actions One action code per account.
    @return The number of actions done (not skipped).
    """
    self._check_keeper()
    assert len(accounts) == len(actions), "margin: length mismatch"
    stressed: bool = self._stressed()
    done: uint256 = 0
    for i: uint256 in range(len(accounts), bound=MAX_KEEP):
        assert actions[i] <= END, "margin: unknown keeper action"
        reason: String[40] = self._act(accounts[i], actions[i], stressed)
        if len(reason) == 0:
            done += 1
        else:
            log KeeperSkipped(account=accounts[i], action=actions[i], reason=reason)
    return done
