# pragma version ~=0.4.3
# pragma optimize codesize
"""
@title MarginEngine
@custom:contract-name MarginEngine
@notice Margin accounts of vetted borrowers (被配资人): leverage tiers set by compliance,
        margin and reserve (补仓准备金) deposits, pre-trade checks on buys, financing drawn
        from the TranchePool, fills settled by the broker, interest per second through a
        per-tier index, keeper entry points for warning, automatic top-up (自动补仓) and
        liquidation, and the loss waterfall at the end of a liquidation:
        reserve -> penalty -> insurance -> junior -> senior (DESIGN.md §5-§8).
        Shares are held in the engine's name at ShareCertificates (one custody position per
        security = the broker's) and attributed to accounts here; T+1 locks are per account.
        Margin ratio = (cash + pending buy cash + sum(haircut * qty * conservative price)) /
        debt, in bps; the reserve is not in the ratio until topped up.
@custom:security Every keeper action re-verifies the ratio on chain. Debt rounds up, assets
        and share values round down. Sells fill only at or above the limit and never into a
        sealed limit-down; T+1-locked shares are never sold. The broker, keeper, operator
        and compliance roles come from the IdentityRegistry.
@custom:kill The operator calls `pause()`: no new buys, no draws, no withdrawals from
        accounts with debt, no pool epochs. Repayment, deposits, sells, fills and keeper
        actions (risk reduction) keep working.
"""

# ---------------------------------------------------------------- interfaces
from .interfaces import ICashToken
from .interfaces import IIdentityRegistry
from .interfaces import IInsuranceFund
from .interfaces import IPriceOracle
from .interfaces import IShareCertificates
from .interfaces import ITranchePool

# ---------------------------------------------------------------- events
event AccountOpened:
    account: indexed(address)
    tier_before: uint256
    tier_after: uint256
    by: indexed(address)


event Deposited:
    account: indexed(address)
    amount_fen: uint256
    to_reserve: bool


event Withdrawn:
    account: indexed(address)
    amount_fen: uint256
    from_reserve: bool


event Borrowed:
    account: indexed(address)
    amount_fen: uint256
    debt_after_fen: uint256


event Repaid:
    account: indexed(address)
    principal_fen: uint256
    interest_fen: uint256
    debt_after_fen: uint256


event OrderRequested:
    order_id: indexed(uint256)
    account: indexed(address)
    code: indexed(uint256)
    is_buy: bool
    qty: uint256
    limit_price_fen: uint256


event LiquidationOrder:
    order_id: indexed(uint256)
    account: indexed(address)
    code: indexed(uint256)
    qty: uint256
    min_price_fen: uint256
    full: bool


event Filled:
    order_id: indexed(uint256)
    ref: indexed(bytes32)
    qty: uint256
    price_fen: uint256
    fee_fen: uint256
    filled_after: uint256


event OrderClosed:
    order_id: indexed(uint256)
    filled_qty: uint256
    released_fen: uint256


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


event PenaltyCharged:
    account: indexed(address)
    amount_fen: uint256


event Paused:
    by: indexed(address)
    paused: bool


event TierSet:
    tier: indexed(uint256)
    max_leverage: uint256
    initial_bps: uint256
    warning_bps: uint256
    liquidation_bps: uint256
    rate_bps: uint256


event SecuritySet:
    code: indexed(uint256)
    haircut_bps: uint256
    st: bool
    listed_day: uint256


# ---------------------------------------------------------------- structs
struct Tier:
    max_leverage: uint256  # financing : equity, e.g. 3 for 1:3
    initial_bps: uint256  # ratio required after a buy
    warning_bps: uint256  # MarginWarning below this
    liquidation_bps: uint256  # liquidation below this
    rate_bps: uint256  # APR


struct Index:
    value_ray: uint256  # cumulative interest factor, never decreases
    updated_at: uint256


struct Security:
    haircut_bps: uint256  # board haircut (main 10000, STAR/ChiNext 8000); 0 = not financeable
    st: bool  # ST / delisting risk: not financeable
    listed_day: uint256  # trading day of listing (0: before the platform began); 5 days unfinanceable


struct Account:
    tier: uint256  # 0 = no account
    cash_fen: uint256  # free cash
    reserve_fen: uint256  # top-up reserve, outside the ratio
    pending_fen: uint256  # cash reserved for open buy orders
    principal_fen: uint256  # principal owed to the pool
    scaled_debt: uint256  # debt / tier index (RAY)
    locked: bool  # in liquidation: no buys, sells or withdrawals by the borrower
    open_liq: uint256  # open liquidation orders
    penalty_fen: uint256  # penalties paid to insurance in the current liquidation
    provision_fen: uint256  # provisional loss marked at liquidation start


struct Order:
    account: address
    code: uint256
    is_buy: bool
    liquidation: bool
    open: bool
    qty: uint256
    filled_qty: uint256
    limit_price_fen: uint256
    reserved_fen: uint256  # buy: cash still reserved for this order
    drawn_fen: uint256  # buy: financing drawn for this order not yet consumed


struct Lot:
    day: uint256
    qty: uint256


struct Limits:
    max_single_bps: uint256  # one security <= this share of account assets
    max_exposure_bps: uint256  # platform exposure per security <= this share of pool assets
    penalty_bps: uint256  # liquidation penalty on sold value, to insurance
    hard_floor_bps: uint256  # below this ratio liquidation is full, not partial
    max_fee_bps: uint256  # fee allowance reserved on buys
    withdraw_floor_bps: uint256  # withdrawals with debt only above max(initial, this)


# ---------------------------------------------------------------- constants
BPS: constant(uint256) = 10_000
RAY: constant(uint256) = 10**27
YEAR_S: constant(uint256) = 365 * 86_400
MAX_CODES: constant(uint256) = 10
MAX_TIERS: constant(uint256) = 8
LOT: constant(uint256) = 100
NEW_LISTING_DAYS: constant(uint256) = 5
HALTED_HAIRCUT_BPS: constant(uint256) = 5_000
MAX_RATIO: constant(uint256) = max_value(uint256)

# ---------------------------------------------------------------- storage
# Collaborators, fixed at deployment.
CASH: public(immutable(ICashToken))
REGISTRY: public(immutable(IIdentityRegistry))
ORACLE: public(immutable(IPriceOracle))
SHARES: public(immutable(IShareCertificates))
POOL: public(immutable(ITranchePool))
INSURANCE: public(immutable(IInsuranceFund))

# Platform-wide kill switch (fail closed), held by the operator.
paused: public(bool)

# Leverage tiers and their interest indices.
tiers: public(HashMap[uint256, Tier])
indices: public(HashMap[uint256, Index])

# Eligibility and haircut per security code.
securities: public(HashMap[uint256, Security])

# Position limits, penalty and floors (bps).
limits: public(Limits)

# Margin accounts.
accounts: public(HashMap[address, Account])

# Shares held for each account (custody in the engine's name), committed to open sells,
# pending in open buys, and bought today (T+1 lock).
positions: public(HashMap[address, HashMap[uint256, uint256]])
selling: public(HashMap[address, HashMap[uint256, uint256]])
buying: public(HashMap[address, HashMap[uint256, uint256]])
lots: public(HashMap[address, HashMap[uint256, Lot]])

# Securities with a position or an open buy, per account (<= 10).
codes: public(HashMap[address, DynArray[uint256, MAX_CODES]])

# Shares held or being bought per security across accounts (platform exposure).
platform_qty: public(HashMap[uint256, uint256])

# Orders by id and the id counter.
orders: public(HashMap[uint256, Order])
order_count: public(uint256)

# Broker fill references already used.
fill_ref_used: public(HashMap[bytes32, bool])

# Totals for reconciliation: principal owed to the pool; cash held for accounts
# (cash + reserve + pending); provisional losses of accounts in liquidation.
total_principal_fen: public(uint256)
held_fen: public(uint256)
marked_loss_fen: public(uint256)


@deploy
def __init__(
    cash: ICashToken,
    registry: IIdentityRegistry,
    oracle: IPriceOracle,
    shares: IShareCertificates,
    pool: ITranchePool,
    insurance: IInsuranceFund,
):
    CASH = cash
    REGISTRY = registry
    ORACLE = oracle
    SHARES = shares
    POOL = pool
    INSURANCE = insurance
    self.limits = Limits(
        max_single_bps=4_000,
        max_exposure_bps=500,
        penalty_bps=100,
        hard_floor_bps=10_500,
        max_fee_bps=30,
        withdraw_floor_bps=30_000,
    )
    self._set_tier(1, Tier(max_leverage=1, initial_bps=20_000, warning_bps=15_000, liquidation_bps=13_000, rate_bps=800))
    self._set_tier(2, Tier(max_leverage=2, initial_bps=15_000, warning_bps=13_500, liquidation_bps=12_000, rate_bps=900))
    self._set_tier(3, Tier(max_leverage=3, initial_bps=13_300, warning_bps=12_500, liquidation_bps=11_500, rate_bps=1_000))
    # the pool pulls repayments from the engine
    extcall cash.approve(pool.address, max_value(uint256))


# ---------------------------------------------------------------- internal: roles
@internal
@view
def _check_role(role: IIdentityRegistry.Role, reason: String[40]):
    assert staticcall REGISTRY.has_role(msg.sender, role), reason


@internal
@view
def _check_not_paused():
    assert not self.paused, "margin: paused"


@internal
@view
def _account(who: address) -> Account:
    a: Account = self.accounts[who]
    assert a.tier != 0, "margin: no account"
    return a


# ---------------------------------------------------------------- internal: interest
@internal
@view
def _index(tier: uint256) -> uint256:
    ix: Index = self.indices[tier]
    dt: uint256 = block.timestamp - ix.updated_at
    if dt == 0:
        return ix.value_ray
    growth: uint256 = ix.value_ray * self.tiers[tier].rate_bps * dt
    den: uint256 = BPS * YEAR_S
    # rounds up: interest favours the platform
    return ix.value_ray + (growth + den - 1) // den


@internal
def _accrue(tier: uint256) -> uint256:
    value: uint256 = self._index(tier)
    self.indices[tier] = Index(value_ray=value, updated_at=block.timestamp)
    return value


@internal
@pure
def _debt(scaled: uint256, index: uint256) -> uint256:
    # rounds up: debt never understated
    return (scaled * index + RAY - 1) // RAY


# ---------------------------------------------------------------- internal: valuation
@internal
@view
def _haircut(code: uint256, day: uint256) -> uint256:
    s: Security = self.securities[code]
    if s.st or s.haircut_bps == 0 or (s.listed_day != 0 and day < s.listed_day + NEW_LISTING_DAYS):
        return 0
    if staticcall ORACLE.halted(code):
        return min(s.haircut_bps, HALTED_HAIRCUT_BPS)
    return s.haircut_bps


@internal
@view
def _collateral(who: address) -> (uint256, uint256):
    """
    @dev (haircut value, market value) of the account's shares at conservative prices,
         rounded down.
    """
    day: uint256 = staticcall ORACLE.trading_day()
    hv: uint256 = 0
    mv: uint256 = 0
    for code: uint256 in self.codes[who]:
        qty: uint256 = self.positions[who][code]
        if qty == 0:
            continue
        v: uint256 = qty * staticcall ORACLE.conservative_price(code)
        mv += v
        hv += v * self._haircut(code, day) // BPS
    return hv, mv


@internal
@view
def _state(who: address, a: Account) -> (uint256, uint256):
    """
    @dev (assets, debt) in fen: assets = cash + pending + haircut collateral.
    """
    hv: uint256 = 0
    mv: uint256 = 0
    hv, mv = self._collateral(who)
    return a.cash_fen + a.pending_fen + hv, self._debt(a.scaled_debt, self._index(a.tier))


@internal
@pure
def _ratio(assets: uint256, debt: uint256) -> uint256:
    if debt == 0:
        return MAX_RATIO
    return assets * BPS // debt


# ---------------------------------------------------------------- internal: debt
@internal
def _borrow(who: address, a: Account, amount: uint256) -> Account:
    if amount == 0:
        return a
    index: uint256 = self._accrue(a.tier)
    a.scaled_debt += (amount * RAY + index - 1) // index
    a.principal_fen += amount
    self.total_principal_fen += amount
    extcall POOL.draw(amount)
    log Borrowed(account=who, amount_fen=amount, debt_after_fen=self._debt(a.scaled_debt, index))
    return a


@internal
def _repay(who: address, a: Account, amount: uint256) -> Account:
    """
    @dev Repay up to `amount` from the account's free cash: interest first, then principal.
    """
    index: uint256 = self._accrue(a.tier)
    debt: uint256 = self._debt(a.scaled_debt, index)
    pay: uint256 = min(min(amount, debt), a.cash_fen)
    if pay == 0:
        return a
    interest_owed: uint256 = debt - a.principal_fen
    interest: uint256 = min(pay, interest_owed)
    principal: uint256 = pay - interest
    if pay == debt:
        a.scaled_debt = 0
    else:
        # rounds down: the borrower's scaled debt shrinks by no more than paid for
        a.scaled_debt -= pay * RAY // index
    a.principal_fen -= principal
    a.cash_fen -= pay
    self.total_principal_fen -= principal
    self.held_fen -= pay
    extcall POOL.repay(principal, interest)
    log Repaid(
        account=who,
        principal_fen=principal,
        interest_fen=interest,
        debt_after_fen=self._debt(a.scaled_debt, index),
    )
    return a


# ---------------------------------------------------------------- internal: positions
@internal
@view
def _locked_qty(who: address, code: uint256, day: uint256) -> uint256:
    lot: Lot = self.lots[who][code]
    if lot.day == day:
        return lot.qty
    return 0


@internal
@view
def _sellable(who: address, code: uint256, day: uint256) -> uint256:
    # dev: locked + selling <= positions (locks are added with positions, sells reserve them)
    return self.positions[who][code] - self._locked_qty(who, code, day) - self.selling[who][code]


@internal
def _drop_code(who: address, code: uint256):
    if self.positions[who][code] != 0 or self.buying[who][code] != 0:
        return
    keep: DynArray[uint256, MAX_CODES] = []
    for c: uint256 in self.codes[who]:
        if c != code:
            keep.append(c)
    self.codes[who] = keep


@internal
def _new_order(o: Order) -> uint256:
    oid: uint256 = self.order_count + 1
    self.order_count = oid
    self.orders[oid] = o
    return oid


# ---------------------------------------------------------------- internal: pre-trade
@internal
@view
def _check_buy(who: address, a: Account, code: uint256, qty: uint256, price: uint256, assets_after: uint256, debt_after: uint256):
    t: Tier = self.tiers[a.tier]
    lim: Limits = self.limits
    if debt_after > 0:
        assert assets_after * BPS >= t.initial_bps * debt_after, "margin: ratio below initial"
        assert assets_after > debt_after and debt_after <= t.max_leverage * (assets_after - debt_after), (
            "margin: leverage above tier"
        )
    held: uint256 = (self.positions[who][code] + self.buying[who][code] + qty) * price
    assert held * BPS <= lim.max_single_bps * assets_after, "margin: single security above 40%"
    exposure: uint256 = (self.platform_qty[code] + qty) * price
    assert exposure * BPS <= lim.max_exposure_bps * staticcall POOL.total_assets_fen(), (
        "margin: platform exposure above 5%"
    )


# ---------------------------------------------------------------- internal: liquidation
@internal
def _emit_liquidation(who: address, a: Account, assets: uint256, debt: uint256) -> (Account, bool):
    """
    @dev Lock the account and emit sell orders for its sellable lots: enough to restore the
         tier's initial ratio, or everything below the hard floor.
    """
    t: Tier = self.tiers[a.tier]
    lim: Limits = self.limits
    day: uint256 = staticcall ORACLE.trading_day()
    sellable_value: uint256 = 0
    for code: uint256 in self.codes[who]:
        sellable_value += self._sellable(who, code, day) * staticcall ORACLE.conservative_price(code)
    full: bool = True
    need: uint256 = sellable_value
    # Selling value V (haircut <= 100%, penalty p) moves the ratio to (A - V) / (D - V(1-p));
    # reaching target T needs V >= (T*D - A) / (T(1-p) - 1); a non-positive denominator or a
    # ratio under the hard floor means sell everything.
    den: uint256 = t.initial_bps * (BPS - lim.penalty_bps) // BPS
    if assets * BPS >= lim.hard_floor_bps * debt and den > BPS:
        full = False
        need = (t.initial_bps * debt - assets * BPS + (den - BPS) - 1) // (den - BPS)
    for code: uint256 in self.codes[who]:
        avail: uint256 = self._sellable(who, code, day)
        if avail == 0:
            continue
        qty: uint256 = avail
        if not full and need < sellable_value:
            qty = (avail * need + sellable_value - 1) // sellable_value
            qty = (qty + LOT - 1) // LOT * LOT
            qty = min(qty, avail)
        low: uint256 = 0
        high: uint256 = 0
        low, high = staticcall ORACLE.band(code)
        self.selling[who][code] += qty
        oid: uint256 = self._new_order(
            Order(
                account=who, code=code, is_buy=False, liquidation=True, open=True, qty=qty,
                filled_qty=0, limit_price_fen=low, reserved_fen=0, drawn_fen=0,
            )
        )
        a.open_liq += 1
        log LiquidationOrder(order_id=oid, account=who, code=code, qty=qty, min_price_fen=low, full=full)
    return a, full


@internal
def _mark(who: address, a: Account) -> Account:
    """
    @dev Provisional loss of an account in liquidation: principal not covered by cash,
         reserve, pending cash and shares at conservative market value.
    """
    hv: uint256 = 0
    mv: uint256 = 0
    hv, mv = self._collateral(who)
    cover: uint256 = a.cash_fen + a.reserve_fen + a.pending_fen + mv
    provision: uint256 = 0
    if a.principal_fen > cover:
        provision = a.principal_fen - cover
    self.marked_loss_fen = self.marked_loss_fen + provision - a.provision_fen
    a.provision_fen = provision
    return a


# ---------------------------------------------------------------- external: views
@external
@view
def debt_of(who: address) -> uint256:
    """
    @notice Debt in fen including accrued interest (rounded up).
    """
    a: Account = self.accounts[who]
    return self._debt(a.scaled_debt, self._index(a.tier))


@external
@view
def account_state(who: address) -> (uint256, uint256, uint256):
    """
    @notice (assets, debt, ratio in bps; max uint256 without debt) of an account.
    """
    assets: uint256 = 0
    debt: uint256 = 0
    assets, debt = self._state(who, self.accounts[who])
    return assets, debt, self._ratio(assets, debt)


@external
@view
def sellable(who: address, code: uint256) -> uint256:
    """
    @notice Shares of `code` the account can sell today (not T+1 locked, not in a sell).
    """
    return self._sellable(who, code, staticcall ORACLE.trading_day())


@external
@view
def codes_of(who: address) -> DynArray[uint256, MAX_CODES]:
    """
    @notice Securities the account holds or is buying.
    """
    return self.codes[who]


# ---------------------------------------------------------------- external: borrower cash
@external
def deposit(amount_fen: uint256, to_reserve: bool):
    """
    @notice Borrower: deposit margin (or top-up reserve) from the caller's CashToken balance
            (approve the engine first).
    """
    # dev: field-wise access: reading the whole Account would cost 10 cold SLOADs
    assert self.accounts[msg.sender].tier != 0, "margin: no account"
    assert amount_fen > 0, "margin: zero amount"
    if to_reserve:
        self.accounts[msg.sender].reserve_fen += amount_fen
    else:
        self.accounts[msg.sender].cash_fen += amount_fen
    self.held_fen += amount_fen
    extcall CASH.transferFrom(msg.sender, self, amount_fen)
    log Deposited(account=msg.sender, amount_fen=amount_fen, to_reserve=to_reserve)


@external
def withdraw(amount_fen: uint256, from_reserve: bool):
    """
    @notice Borrower: withdraw free cash or reserve. With debt, only while the ratio after
            stays above max(initial, withdraw floor) and the platform is not paused; without
            debt, always.
    """
    a: Account = self._account(msg.sender)
    assert amount_fen > 0, "margin: zero amount"
    assert not a.locked, "margin: account in liquidation"
    if from_reserve:
        assert a.reserve_fen >= amount_fen, "margin: insufficient reserve"
        a.reserve_fen -= amount_fen
    else:
        assert a.cash_fen >= amount_fen, "margin: insufficient cash"
        a.cash_fen -= amount_fen
    if a.scaled_debt > 0:
        self._check_not_paused()
        assets: uint256 = 0
        debt: uint256 = 0
        assets, debt = self._state(msg.sender, a)
        line: uint256 = max(self.tiers[a.tier].initial_bps, self.limits.withdraw_floor_bps)
        assert assets * BPS >= line * debt, "margin: ratio below withdrawal line"
    self.accounts[msg.sender] = a
    self.held_fen -= amount_fen
    extcall CASH.transfer(msg.sender, amount_fen)
    log Withdrawn(account=msg.sender, amount_fen=amount_fen, from_reserve=from_reserve)


@external
def repay(amount_fen: uint256, from_wallet: bool):
    """
    @notice Anyone holding an account: repay up to `amount_fen` of its debt (interest
            first), from the caller's wallet (approve first) or from the account's free cash.
            Works while paused and while in liquidation.
    """
    a: Account = self._account(msg.sender)
    assert amount_fen > 0, "margin: zero amount"
    debt: uint256 = self._debt(a.scaled_debt, self._index(a.tier))
    assert debt > 0, "margin: no debt"
    pay: uint256 = min(amount_fen, debt)
    if from_wallet:
        a.cash_fen += pay
        self.held_fen += pay
        extcall CASH.transferFrom(msg.sender, self, pay)
    else:
        assert a.cash_fen >= pay, "margin: insufficient cash"
    a = self._repay(msg.sender, a, pay)
    self.accounts[msg.sender] = a


# ---------------------------------------------------------------- external: trading
@external
def request_buy(code: uint256, qty: uint256, limit_price_fen: uint256) -> uint256:
    """
    @notice Borrower: buy `qty` shares (whole lots) at most at `limit_price_fen`. Reserves
            cash (drawing financing from the pool for what the account lacks) after the
            pre-trade checks; the broker executes on `OrderRequested`. Returns the order id.
    """
    self._check_not_paused()
    self._check_role(IIdentityRegistry.Role.BORROWER, "margin: caller is not borrower")
    a: Account = self._account(msg.sender)
    assert not a.locked, "margin: account in liquidation"
    assert qty > 0 and qty % LOT == 0, "margin: quantity not whole lots"
    assert limit_price_fen > 0, "margin: zero price"
    day: uint256 = staticcall ORACLE.trading_day()
    h: uint256 = self._haircut(code, day)
    assert h > 0 and not staticcall ORACLE.halted(code), "margin: security not financeable"
    # reverts "oracle: price unreliable" without a fresh quorum of in-band reports
    price: uint256 = staticcall ORACLE.price(code)
    if self.positions[msg.sender][code] == 0 and self.buying[msg.sender][code] == 0:
        assert len(self.codes[msg.sender]) < MAX_CODES, "margin: too many securities"
        self.codes[msg.sender].append(code)
    gross: uint256 = qty * limit_price_fen
    cost: uint256 = gross + (gross * self.limits.max_fee_bps + BPS - 1) // BPS
    assets: uint256 = 0
    debt: uint256 = 0
    assets, debt = self._state(msg.sender, a)
    draw: uint256 = 0
    if cost > a.cash_fen:
        draw = cost - a.cash_fen
    # after the fill: cash spent (financing added), shares at min(oracle, limit) * haircut
    value: uint256 = qty * min(price, limit_price_fen) * h // BPS
    assert assets + draw >= cost, "margin: insufficient assets"
    self._check_buy(msg.sender, a, code, qty, min(price, limit_price_fen) * h // BPS, assets + draw - cost + value, debt + draw)
    a.cash_fen = a.cash_fen + draw - cost
    a.pending_fen += cost
    a = self._borrow(msg.sender, a, draw)
    self.accounts[msg.sender] = a
    self.held_fen += draw
    self.buying[msg.sender][code] += qty
    self.platform_qty[code] += qty
    oid: uint256 = self._new_order(
        Order(
            account=msg.sender, code=code, is_buy=True, liquidation=False, open=True, qty=qty,
            filled_qty=0, limit_price_fen=limit_price_fen, reserved_fen=cost, drawn_fen=draw,
        )
    )
    log OrderRequested(order_id=oid, account=msg.sender, code=code, is_buy=True, qty=qty, limit_price_fen=limit_price_fen)
    return oid


@external
def request_sell(code: uint256, qty: uint256, limit_price_fen: uint256) -> uint256:
    """
    @notice Borrower: sell `qty` unlocked shares (whole lots, or the whole holding) at least
            at `limit_price_fen`. Returns the order id.
    """
    self._check_role(IIdentityRegistry.Role.BORROWER, "margin: caller is not borrower")
    a: Account = self._account(msg.sender)
    assert not a.locked, "margin: account in liquidation"
    assert limit_price_fen > 0, "margin: zero price"
    avail: uint256 = self._sellable(msg.sender, code, staticcall ORACLE.trading_day())
    assert qty > 0 and qty <= avail, "margin: not enough sellable shares"
    assert qty % LOT == 0 or qty == avail, "margin: quantity not whole lots"
    self.selling[msg.sender][code] += qty
    oid: uint256 = self._new_order(
        Order(
            account=msg.sender, code=code, is_buy=False, liquidation=False, open=True, qty=qty,
            filled_qty=0, limit_price_fen=limit_price_fen, reserved_fen=0, drawn_fen=0,
        )
    )
    log OrderRequested(order_id=oid, account=msg.sender, code=code, is_buy=False, qty=qty, limit_price_fen=limit_price_fen)
    return oid


# ---------------------------------------------------------------- external: broker
@external
def settle_fill(order_id: uint256, qty: uint256, price_fen: uint256, fee_fen: uint256, ref: bytes32):
    """
    @notice Broker: a (partial) fill of an order with its exchange reference (used once).
            Buys pay the broker from the reserved cash and credit T+1-locked shares; sells
            take the proceeds from the broker (approve the engine) and retire the shares.
            Liquidation proceeds repay the debt after the penalty to the insurance fund.
    """
    self._check_role(IIdentityRegistry.Role.BROKER, "margin: caller is not broker")
    o: Order = self.orders[order_id]
    assert o.open, "margin: order not open"
    assert ref != empty(bytes32) and not self.fill_ref_used[ref], "margin: fill reference used"
    assert qty > 0 and o.filled_qty + qty <= o.qty, "margin: fill exceeds order"
    self.fill_ref_used[ref] = True
    who: address = o.account
    a: Account = self.accounts[who]
    gross: uint256 = qty * price_fen
    high: uint256 = 0
    o.filled_qty += qty
    if o.is_buy:
        assert price_fen <= o.limit_price_fen, "margin: fill above limit"
        cost: uint256 = gross + fee_fen
        assert cost <= o.reserved_fen, "margin: fill exceeds reserved cash"
        o.reserved_fen -= cost
        # fills spend the account's own cash first: financing is the last part reserved
        o.drawn_fen = min(o.drawn_fen, o.reserved_fen)
        a.pending_fen -= cost
        self.held_fen -= cost
        day: uint256 = staticcall ORACLE.trading_day()
        self.lots[who][o.code] = Lot(day=day, qty=self._locked_qty(who, o.code, day) + qty)
        self.positions[who][o.code] += qty
        self.buying[who][o.code] -= qty
        extcall CASH.transfer(msg.sender, cost)
        extcall SHARES.mint(self, o.code, qty, ref)
    else:
        low: uint256 = o.limit_price_fen
        if o.liquidation:
            # a liquidation sells at any legal price of the day it fills
            low, high = staticcall ORACLE.band(o.code)
        assert price_fen >= low, "margin: fill below limit"
        assert not staticcall ORACLE.is_sealed_limit_down(o.code), "margin: sealed limit-down"
        assert gross > fee_fen, "margin: fee exceeds proceeds"
        proceeds: uint256 = gross - fee_fen
        penalty: uint256 = 0
        if o.liquidation:
            # the penalty never lowers the ratio: at most gross * (A - D) / A
            assets: uint256 = 0
            debt: uint256 = 0
            assets, debt = self._state(who, a)
            pen: uint256 = (gross * self.limits.penalty_bps + BPS - 1) // BPS
            if assets > debt:
                penalty = min(pen, gross * (assets - debt) // assets)
            proceeds -= min(penalty, proceeds)
        self.positions[who][o.code] -= qty
        self.selling[who][o.code] -= qty
        self.platform_qty[o.code] -= qty
        a.cash_fen += proceeds
        self.held_fen += proceeds
        extcall CASH.transferFrom(msg.sender, self, gross - fee_fen)
        extcall SHARES.burn(self, o.code, qty, ref)
        if penalty > 0:
            a.penalty_fen += penalty
            extcall CASH.transfer(INSURANCE.address, penalty)
            extcall INSURANCE.credit(penalty, 2)
            log PenaltyCharged(account=who, amount_fen=penalty)
        if o.liquidation:
            a = self._repay(who, a, proceeds)
    log Filled(order_id=order_id, ref=ref, qty=qty, price_fen=price_fen, fee_fen=fee_fen, filled_after=o.filled_qty)
    self.orders[order_id] = o
    if o.filled_qty == o.qty:
        a = self._close(order_id, o, a)
    elif o.liquidation:
        a = self._mark(who, a)
    self.accounts[who] = a
    self._drop_code(who, o.code)


@internal
def _close(order_id: uint256, o: Order, a: Account) -> Account:
    """
    @dev Close an order: release unfilled shares or cash; financing drawn for the unfilled
         part goes back to the pool.
    """
    who: address = o.account
    released: uint256 = 0
    rest: uint256 = o.qty - o.filled_qty
    if o.is_buy:
        released = o.reserved_fen
        a.pending_fen -= released
        a.cash_fen += released
        self.buying[who][o.code] -= rest
        self.platform_qty[o.code] -= o.qty - o.filled_qty
        a = self._repay(who, a, min(released, o.drawn_fen))
    else:
        self.selling[who][o.code] -= rest
    if o.liquidation:
        a.open_liq -= 1
        a = self._mark(who, a)
    self.orders[order_id].open = False
    self.orders[order_id].reserved_fen = 0
    self.orders[order_id].drawn_fen = 0
    log OrderClosed(order_id=order_id, filled_qty=o.filled_qty, released_fen=released)
    return a


@external
def cancel_order(order_id: uint256):
    """
    @notice Broker: the unfilled remainder of an order is dead (expired, rejected, day end);
            release it.
    """
    self._check_role(IIdentityRegistry.Role.BROKER, "margin: caller is not broker")
    o: Order = self.orders[order_id]
    assert o.open, "margin: order not open"
    a: Account = self._close(order_id, o, self.accounts[o.account])
    self.accounts[o.account] = a
    self._drop_code(o.account, o.code)


# ---------------------------------------------------------------- external: keeper
@external
def warn(who: address):
    """
    @notice Keeper: emit `MarginWarning` for an account below its warning line (re-verified).
    """
    self._check_role(IIdentityRegistry.Role.KEEPER, "margin: caller is not keeper")
    a: Account = self._account(who)
    assets: uint256 = 0
    debt: uint256 = 0
    assets, debt = self._state(who, a)
    ratio: uint256 = self._ratio(assets, debt)
    w: uint256 = self.tiers[a.tier].warning_bps
    assert ratio < w, "margin: above warning line"
    log MarginWarning(account=who, ratio_bps=ratio, warning_bps=w)


@external
def top_up(who: address):
    """
    @notice Keeper: below the warning line, move reserve into margin cash until the ratio is
            back at the tier's initial ratio (or the reserve is used up).
    """
    self._check_role(IIdentityRegistry.Role.KEEPER, "margin: caller is not keeper")
    a: Account = self._account(who)
    assets: uint256 = 0
    debt: uint256 = 0
    assets, debt = self._state(who, a)
    t: Tier = self.tiers[a.tier]
    ratio: uint256 = self._ratio(assets, debt)
    assert ratio < t.warning_bps, "margin: above warning line"
    assert a.reserve_fen > 0, "margin: no reserve"
    need: uint256 = (t.initial_bps * debt + BPS - 1) // BPS - assets
    amount: uint256 = min(need, a.reserve_fen)
    a.reserve_fen -= amount
    a.cash_fen += amount
    self.accounts[who] = a
    log ToppedUp(account=who, amount_fen=amount, ratio_before_bps=ratio, ratio_after_bps=self._ratio(assets + amount, debt))


@external
def start_liquidation(who: address):
    """
    @notice Keeper: below the liquidation line, lock the account and emit `LiquidationOrder`s
            for its sellable lots (partial to restore the initial ratio, full below the hard
            floor). On a locked account with no open liquidation orders, emit the next round
            (e.g. lots unlocked by T+1 since); with orders still open (sealed limit-down),
            only re-mark the provisional loss the pool deducts before anyone exits.
    """
    self._check_role(IIdentityRegistry.Role.KEEPER, "margin: caller is not keeper")
    a: Account = self._account(who)
    assets: uint256 = 0
    debt: uint256 = 0
    assets, debt = self._state(who, a)
    ratio: uint256 = self._ratio(assets, debt)
    if a.locked and a.open_liq > 0:
        # orders still open (e.g. sealed limit-down): only re-mark the provisional loss
        a = self._mark(who, a)
        self.accounts[who] = a
        log LiquidationStarted(account=who, ratio_bps=ratio, provision_fen=a.provision_fen, full=False)
        return
    if not a.locked:
        assert ratio < self.tiers[a.tier].liquidation_bps, "margin: above liquidation line"
        a.locked = True
    full: bool = False
    a, full = self._emit_liquidation(who, a, assets, debt)
    a = self._mark(who, a)
    self.accounts[who] = a
    log LiquidationStarted(account=who, ratio_bps=ratio, provision_fen=a.provision_fen, full=full)


@external
def end_liquidation(who: address):
    """
    @notice Keeper: end a liquidation with no open liquidation orders. If shares remain the
            ratio must be back above the liquidation line; if none remain, the debt left is a
            shortfall: reserve, then the penalty and the insurance fund, then junior, then
            senior (through the pool).
    """
    self._check_role(IIdentityRegistry.Role.KEEPER, "margin: caller is not keeper")
    a: Account = self._account(who)
    assert a.locked, "margin: not in liquidation"
    assert a.open_liq == 0, "margin: liquidation orders open"
    assets: uint256 = 0
    debt: uint256 = 0
    assets, debt = self._state(who, a)
    reserve_used: uint256 = 0
    shortfall: uint256 = 0
    paid: uint256 = 0
    if len(self.codes[who]) > 0:
        assert assets * BPS >= self.tiers[a.tier].liquidation_bps * debt, (
            "margin: still below liquidation line"
        )
    else:
        a = self._repay(who, a, a.cash_fen)
        index: uint256 = self._accrue(a.tier)
        if a.scaled_debt > 0:
            reserve_used = min(a.reserve_fen, self._debt(a.scaled_debt, index))
            a.reserve_fen -= reserve_used
            a.cash_fen += reserve_used
            a = self._repay(who, a, reserve_used)
        if a.scaled_debt > 0:
            # the rest is unrecoverable: interest is forgiven, principal is a pool loss
            shortfall = a.principal_fen
            self.total_principal_fen -= shortfall
            a.scaled_debt = 0
            a.principal_fen = 0
            paid = extcall POOL.absorb_shortfall(shortfall, a.penalty_fen)
    a.locked = False
    a.penalty_fen = 0
    self.marked_loss_fen -= a.provision_fen
    a.provision_fen = 0
    self.accounts[who] = a
    log LiquidationEnded(account=who, ratio_bps=self._ratio(assets, debt), reserve_used_fen=reserve_used, shortfall_fen=shortfall, insurance_paid_fen=paid)


# ---------------------------------------------------------------- external: operator
@internal
def _set_tier(tier: uint256, t: Tier):
    assert tier >= 1 and tier <= MAX_TIERS, "margin: tier not in 1..8"
    assert t.max_leverage >= 1, "margin: zero leverage"
    assert t.liquidation_bps > BPS and t.liquidation_bps < t.warning_bps and t.warning_bps < t.initial_bps, (
        "margin: lines not ordered"
    )
    if self.indices[tier].value_ray == 0:
        self.indices[tier] = Index(value_ray=RAY, updated_at=block.timestamp)
    else:
        self._accrue(tier)
    self.tiers[tier] = t
    log TierSet(tier=tier, max_leverage=t.max_leverage, initial_bps=t.initial_bps, warning_bps=t.warning_bps, liquidation_bps=t.liquidation_bps, rate_bps=t.rate_bps)


@external
def set_tier(tier: uint256, t: Tier):
    """
    @notice Operator: define or change a leverage tier (interest accrues at the old rate
            up to now).
    """
    self._check_role(IIdentityRegistry.Role.OPERATOR, "margin: caller is not operator")
    self._set_tier(tier, t)


@external
def set_security(code: uint256, haircut_bps: uint256, st: bool, listed_day: uint256):
    """
    @notice Operator: board haircut, ST flag and listing day of a security.
    """
    self._check_role(IIdentityRegistry.Role.OPERATOR, "margin: caller is not operator")
    assert code > 0 and code < 1_000_000, "margin: bad security code"
    assert haircut_bps <= BPS, "margin: haircut above 100%"
    self.securities[code] = Security(haircut_bps=haircut_bps, st=st, listed_day=listed_day)
    log SecuritySet(code=code, haircut_bps=haircut_bps, st=st, listed_day=listed_day)


@external
def set_limits(lim: Limits):
    """
    @notice Operator: position limits, penalty and floors (bps).
    """
    self._check_role(IIdentityRegistry.Role.OPERATOR, "margin: caller is not operator")
    assert lim.max_single_bps <= BPS and lim.max_exposure_bps <= BPS, "margin: limit above 100%"
    assert lim.penalty_bps < BPS and lim.max_fee_bps < BPS, "margin: fee above 100%"
    self.limits = lim


@external
def pause():
    """
    @notice Operator: fail closed (reconciliation break).
    """
    self._check_role(IIdentityRegistry.Role.OPERATOR, "margin: caller is not operator")
    assert not self.paused, "margin: already paused"
    self.paused = True
    log Paused(by=msg.sender, paused=True)


@external
def unpause():
    """
    @notice Operator: resume after a pause.
    """
    self._check_role(IIdentityRegistry.Role.OPERATOR, "margin: caller is not operator")
    assert self.paused, "margin: not paused"
    self.paused = False
    log Paused(by=msg.sender, paused=False)


# ---------------------------------------------------------------- external: compliance
@external
def open_account(who: address, tier: uint256):
    """
    @notice Compliance: open a margin account for a verified borrower, or change its tier
            (only without debt).
    """
    self._check_role(IIdentityRegistry.Role.COMPLIANCE, "margin: caller is not compliance")
    assert staticcall REGISTRY.has_role(who, IIdentityRegistry.Role.BORROWER), (
        "margin: account is not a borrower"
    )
    assert self.tiers[tier].max_leverage > 0, "margin: unknown tier"
    a: Account = self.accounts[who]
    assert a.scaled_debt == 0, "margin: repay before changing tier"
    log AccountOpened(account=who, tier_before=a.tier, tier_after=tier, by=msg.sender)
    a.tier = tier
    self.accounts[who] = a
