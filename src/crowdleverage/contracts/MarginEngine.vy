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
from .interfaces import IRiskParams
from .interfaces import ITranchePool
from . import constants as C

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


event PenaltyCharged:
    account: indexed(address)
    amount_fen: uint256


event CashCredited:
    who: indexed(address)
    amount_fen: uint256
    ref: indexed(bytes32)


event PositionAdjusted:
    who: indexed(address)
    code: indexed(uint256)
    old_qty: uint256
    new_qty: uint256
    ref: indexed(bytes32)


event Connected:
    liquidator: address
    orderbook: address


event Paused:
    by: indexed(address)
    paused: bool


# ---------------------------------------------------------------- structs
struct Index:
    value_ray: uint256  # cumulative interest factor, never decreases
    updated_at: uint256
    rate_bps: uint256  # APR, pushed by RiskParams (`params_rate`)


struct Account:
    tier: uint256  # 0 = no account
    cash_fen: uint256  # free cash
    reserve_fen: uint256  # top-up reserve, outside the ratio
    pending_fen: uint256  # cash reserved for open buy orders
    principal_fen: uint256  # principal owed to the pool
    scaled_debt: uint256  # debt / tier index (C.RAY)
    locked: bool  # in liquidation: no buys, sells or withdrawals by the borrower
    open_liq: uint256  # open liquidation orders
    penalty_fen: uint256  # penalties paid to insurance in the current liquidation
    provision_fen: uint256  # provisional loss marked at liquidation start


struct Lot:
    day: uint256
    qty: uint256


# An account's holding of one security (memory form of one packed slot, see `_pos`).
struct Pos:
    qty: uint256  # shares held
    selling: uint256  # committed to open sells
    buying: uint256  # pending in open buys
    lot_qty: uint256  # bought on trading day `lot_day` (T+1 locked that day)
    lot_day: uint256


# An account in two slots, the first all that a buy, a fill or a repayment reads: a = cash
# (52 bits) | pending (52 << 52) | principal (52 << 104) | scaled debt (52 << 156) | tier (4
# << 208) | locked (1 << 212) | open liquidation orders (8 << 213) | account id (32 << 224,
# given at opening; the OrderBook stores it in an order instead of the address); c =
# reserve (96) | penalty (80 << 96) | provision (80 << 176). 2^52 fen is 45 trillion yuan.
struct Slots:
    a: uint256
    c: uint256


# ---------------------------------------------------------------- storage
# Collaborators, fixed at deployment.
CASH: immutable(ICashToken)
REGISTRY: immutable(IIdentityRegistry)
ORACLE: public(immutable(IPriceOracle))
POOL: public(immutable(ITranchePool))
INSURANCE: immutable(IInsuranceFund)
# Tiers, haircuts, limits: the one source of risk parameters.
PARAMS: public(immutable(IRiskParams))

# Platform-wide kill switch (fail closed), held by the operator.

# The OrderBook (orders and fills), the only caller of the ob_ hooks: its address is fixed
# at deployment (the deployer computes it from its own address and nonce: the OrderBook is
# created after the engine, with the engine's address), so no hook reads a slot for it.
ORDERBOOK: immutable(address)

# The Liquidator (keeper logic), set once by the operator (`connect`, which also confirms
# the OrderBook); the only caller of the liq_ hooks.
liquidator: public(address)

# The pause flag (1 << 160) and the cash the engine holds for accounts (95 << 161: their
# cash + reserve + pending less the open buys' financing still at the pool, i.e. the
# engine's CashToken balance; a buy, whose financing stays at the pool, does not change it)
# in one slot (bit 0 set at deployment, so the first deposit rewrites a non-zero slot
# instead of creating one; bits 1..159 unused: the previous release kept the OrderBook's
# address there). Getters `paused`, `held_fen` (which adds the pool's undisbursed financing).
wiring: uint256

# Interest index of each leverage tier (the tier's lines are at RiskParams), in one slot:
# value (160 bits) | updated_at (64 << 160) | rate (32 << 224). Read with `indices`.
ix_slot: HashMap[uint256, uint256]

# Margin accounts (packed, see `Slots`; read with `accounts`).
acct: HashMap[address, Slots]

# Per account and security, one slot: shares held for the account (custody in the engine's
# name) (56 bits), committed to open sells (56 << 56), pending in open buys (56 << 112),
# bought on the lot's day (T+1 lock) (56 << 168) and that day (32 << 224). Read with
# `positions`, `selling`, `buying`, `lots`.
pos: HashMap[address, HashMap[uint256, uint256]]

# Securities with a position or an open buy, per account (<= 10), in one slot: the count
# (4 bits), then 20 bits per code.
code_set: HashMap[address, uint256]

# Accounts by id (the OrderBook's orders name the account by its id).
account_of: public(HashMap[uint256, address])
account_count: public(uint256)

# Corporate-action references already used (credit_cash, adjust_position).
action_ref_used: public(HashMap[bytes32, bool])

# Provisional losses of accounts in liquidation. (The principal owed in total is the pool's
# principal out: every borrow, repayment and write-off moves both in the same call.)
marked_loss_fen: public(uint256)

# Repayments owed to the pool within the current call (checks-effects-interactions: the
# account is stored first, `_pay_pool` then makes the one external call).
due_principal: transient(uint256)
due_interest: transient(uint256)


@deploy
def __init__(
    cash: ICashToken,
    registry: IIdentityRegistry,
    oracle: IPriceOracle,
    pool: ITranchePool,
    insurance: IInsuranceFund,
    params: IRiskParams,
    orderbook: address,
):
    """
    @param orderbook The OrderBook's address, created after this engine (with its address)
           by the same deployer: computed from the deployer's address and nonce.
    """
    assert orderbook != empty(address), "margin: zero address"
    ORDERBOOK = orderbook
    self.wiring = 1
    CASH = cash
    REGISTRY = registry
    ORACLE = oracle
    POOL = pool
    INSURANCE = insurance
    PARAMS = params


# ---------------------------------------------------------------- internal: roles
@internal
@view
def _check_role(role: IIdentityRegistry.Role, reason: String[40]):
    assert staticcall REGISTRY.has_role(msg.sender, role), reason


@internal
@view
def _check_operator():
    self._check_role(IIdentityRegistry.Role.OPERATOR, "margin: caller is not operator")


@internal
@pure
def _check_amount(amount_fen: uint256):
    assert amount_fen > 0, "margin: zero amount"


@internal
@view
def _check_not_paused():
    assert (self.wiring >> 160) & 1 == 0, "margin: paused"


M96: constant(uint256) = 2**96 - 1
M52: constant(uint256) = 2**52 - 1
M80: constant(uint256) = 2**80 - 1
M56: constant(uint256) = 2**56 - 1
M32: constant(uint256) = 2**32 - 1
M20: constant(uint256) = 2**20 - 1


@internal
@view
def _get(who: address, full: bool) -> Account:
    """
    @dev Without `full` slot c is not read: reserve, penalty and provision read as 0 and
         must be stored back with `_put(who, a, False)`, which leaves slot c alone.
    """
    s: Slots = empty(Slots)
    s.a = self.acct[who].a
    if full:
        s.c = self.acct[who].c
    return Account(
        tier=(s.a >> 208) & 15,
        cash_fen=s.a & M52,
        reserve_fen=s.c & M96,
        pending_fen=(s.a >> 52) & M52,
        principal_fen=(s.a >> 104) & M52,
        scaled_debt=(s.a >> 156) & M52,
        locked=(s.a >> 212) & 1 != 0,
        open_liq=(s.a >> 213) & 255,
        penalty_fen=(s.c >> 96) & M80,
        provision_fen=s.c >> 176,
    )


@internal
def _put(who: address, a: Account, full: bool):
    assert (
        a.cash_fen | a.pending_fen | a.principal_fen | a.scaled_debt <= M52 and a.reserve_fen <= M96
        and a.penalty_fen | a.provision_fen <= M80 and a.open_liq < 256 and a.tier < 16
    ), "margin: amount too large"
    # dev: the account id (bits 224..255) is kept
    self.acct[who].a = (
        a.cash_fen | a.pending_fen << 52 | a.principal_fen << 104 | a.scaled_debt << 156 | a.tier << 208
        | convert(a.locked, uint256) << 212 | a.open_liq << 213 | self.acct[who].a >> 224 << 224
    )
    if full:
        self.acct[who].c = a.reserve_fen | a.penalty_fen << 96 | a.provision_fen << 176


@internal
@view
def _check_account(who: address):
    assert (self.acct[who].a >> 208) & 15 != 0, "margin: no account"


@internal
@view
def _pos(who: address, code: uint256) -> Pos:
    w: uint256 = self.pos[who][code]
    return Pos(qty=w & M56, selling=(w >> 56) & M56, buying=(w >> 112) & M56, lot_qty=(w >> 168) & M56, lot_day=w >> 224)


@internal
def _put_pos(who: address, code: uint256, p: Pos):
    assert p.qty | p.selling | p.buying | p.lot_qty <= M56 and p.lot_day <= M32, "margin: quantity too large"
    self.pos[who][code] = p.qty | p.selling << 56 | p.buying << 112 | p.lot_qty << 168 | p.lot_day << 224


@internal
@view
def _codes(who: address) -> DynArray[uint256, C.MAX_CODES]:
    w: uint256 = self.code_set[who]
    out: DynArray[uint256, C.MAX_CODES] = []
    for i: uint256 in range(w & 15, bound=C.MAX_CODES):
        out.append((w >> (4 + 20 * i)) & M20)
    return out


@internal
def _set_codes(who: address, codes: DynArray[uint256, C.MAX_CODES]):
    w: uint256 = len(codes)
    for i: uint256 in range(len(codes), bound=C.MAX_CODES):
        w |= codes[i] << (4 + 20 * i)
    self.code_set[who] = w


@internal
@view
def _account(who: address, full: bool) -> Account:
    a: Account = self._get(who, full)
    assert a.tier != 0, "margin: no account"
    return a


@internal
def _held(add: uint256, sub: uint256):
    w: uint256 = self.wiring
    held: uint256 = (w >> 161) + add - sub
    assert held < 2**95, "margin: amount too large"
    self.wiring = w & (2**161 - 1) | held << 161


@internal
def _pay(to: address, amount_fen: uint256):
    extcall CASH.transfer(to, amount_fen)


@internal
def _pull(owner: address, amount_fen: uint256):
    """
    @dev Take `amount_fen` from `owner`, who approved the engine.
    """
    extcall CASH.transferFrom(owner, self, amount_fen)


@internal
def _credit(who: address, amount_fen: uint256, to_reserve: bool):
    """
    @dev Credit `amount_fen` pulled from the caller (approved) to the cash or reserve of `who`.
    """
    a: Account = self._account(who, True)
    self._check_amount(amount_fen)
    if to_reserve:
        a.reserve_fen += amount_fen
    else:
        a.cash_fen += amount_fen
    self._put(who, a, True)
    self._held(amount_fen, 0)
    self._pull(msg.sender, amount_fen)


# ---------------------------------------------------------------- internal: interest
@internal
@view
def _index(tier: uint256) -> uint256:
    ix: Index = self._ix(tier)
    dt: uint256 = block.timestamp - ix.updated_at
    if dt == 0:
        return ix.value_ray
    growth: uint256 = ix.value_ray * ix.rate_bps * dt
    den: uint256 = C.BPS * C.YEAR_S
    # rounds up: interest favours the platform
    return ix.value_ray + (growth + den - 1) // den


@internal
def _accrue(tier: uint256) -> uint256:
    value: uint256 = self._index(tier)
    self._put_ix(tier, value, self.ix_slot[tier] >> 224)
    return value


@internal
@view
def _ix(tier: uint256) -> Index:
    w: uint256 = self.ix_slot[tier]
    return Index(value_ray=w & (2**160 - 1), updated_at=(w >> 160) & (2**64 - 1), rate_bps=w >> 224)


@internal
def _put_ix(tier: uint256, value_ray: uint256, rate_bps: uint256):
    assert value_ray >> 160 == 0, "margin: index too large"
    self.ix_slot[tier] = value_ray | block.timestamp << 160 | rate_bps << 224


@internal
@pure
def _debt(scaled: uint256, index: uint256) -> uint256:
    # rounds up: debt never understated
    return (scaled * index + C.RAY - 1) // C.RAY


# ---------------------------------------------------------------- internal: valuation
@internal
@view
def _quote(who: address, code: uint256) -> (uint256[C.MAX_CODES], uint256[C.MAX_CODES], uint256, uint256, uint256):
    """
    @dev One oracle call: the securities the account holds (not those only being bought),
         0 after the last), their market values (shares x conservative price), the trading
         day, the reliable
         price of `code` (0: unreliable or `code` 0) and the halted flags (bit i: held[i],
         bit 255: `code`).
    """
    w: uint256 = self.code_set[who]
    held: uint256[C.MAX_CODES] = empty(uint256[C.MAX_CODES])
    qtys: uint256[C.MAX_CODES] = empty(uint256[C.MAX_CODES])
    n: uint256 = 0
    for i: uint256 in range(w & 15, bound=C.MAX_CODES):
        c: uint256 = (w >> (4 + 20 * i)) & M20
        q: uint256 = self.pos[who][c] & M56
        if q > 0:
            held[n] = c
            qtys[n] = q
            n += 1
    day: uint256 = 0
    price: uint256 = 0
    values: uint256[C.MAX_CODES] = empty(uint256[C.MAX_CODES])
    flags: uint256 = 0
    day, price, values, flags = staticcall ORACLE.quotes(code, held)
    for i: uint256 in range(n, bound=C.MAX_CODES):
        values[i] *= qtys[i]
    return held, values, day, price, flags


@internal
@view
def _collateral(who: address) -> (uint256, uint256):
    """
    @dev (haircut value, market value) of the account's shares at conservative prices,
         rounded down; a halted security counts at most the halted haircut.
    """
    hv: uint256 = 0
    mv: uint256 = 0
    if self.code_set[who] & 15 == 0:
        return hv, mv
    held: uint256[C.MAX_CODES] = empty(uint256[C.MAX_CODES])
    values: uint256[C.MAX_CODES] = empty(uint256[C.MAX_CODES])
    day: uint256 = 0
    price: uint256 = 0
    flags: uint256 = 0
    held, values, day, price, flags = self._quote(who, 0)
    if held[0] == 0:
        return hv, mv
    hs: uint256[C.MAX_CODES] = staticcall PARAMS.haircuts(held, day)
    for i: uint256 in range(C.MAX_CODES):
        if held[i] == 0:
            break
        h: uint256 = hs[i]
        if h > C.HALTED_HAIRCUT_BPS and flags >> i & 1 != 0:
            h = C.HALTED_HAIRCUT_BPS
        mv += values[i]
        hv += values[i] * h // C.BPS
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
        return C.MAX_RATIO
    return assets * C.BPS // debt


# ---------------------------------------------------------------- internal: debt
@internal
def _borrow(who: address, a: Account, amount: uint256) -> Account:
    if amount == 0:
        return a
    index: uint256 = self._accrue(a.tier)
    a.scaled_debt += (amount * C.RAY + index - 1) // index
    a.principal_fen += amount
    # dev: the caller stores the account, then draws from the pool
    log Borrowed(account=who, amount_fen=amount, debt_after_fen=self._debt(a.scaled_debt, index))
    return a


@internal
def _repay(who: address, a: Account, amount: uint256, book: bool) -> (Account, uint256, uint256):
    """
    @dev Repay up to `amount` from the account's free cash: interest first, then principal.
         Returns the account and the principal and interest repaid; with `book` they are
         also booked for `_pay_pool` in this call (an order's close hands them to `_settle`
         itself).
    """
    index: uint256 = self._accrue(a.tier)
    debt: uint256 = self._debt(a.scaled_debt, index)
    pay: uint256 = min(min(amount, debt), a.cash_fen)
    if pay == 0:
        return a, 0, 0
    interest_owed: uint256 = debt - a.principal_fen
    interest: uint256 = min(pay, interest_owed)
    principal: uint256 = pay - interest
    if pay == debt:
        a.scaled_debt = 0
    else:
        # rounds down: the borrower's scaled debt shrinks by no more than paid for
        a.scaled_debt -= pay * C.RAY // index
    a.principal_fen -= principal
    a.cash_fen -= pay
    if book:
        self.due_principal += principal
        self.due_interest += interest
    log Repaid(
        account=who,
        principal_fen=principal,
        interest_fen=interest,
        debt_after_fen=self._debt(a.scaled_debt, index),
    )
    return a, principal, interest


@internal
def _pay_pool():
    """
    @dev The interaction after the effects: pay the pool what `_repay` booked in this call
         (the cash first, then the pool books it: no allowance).
    """
    principal: uint256 = self.due_principal
    interest: uint256 = self.due_interest
    if principal + interest == 0:
        return
    self.due_principal = 0
    self.due_interest = 0
    self._held(0, principal + interest)
    self._pay(POOL.address, principal + interest)
    extcall POOL.repay(principal, interest)


@internal
def _settle(broker: address, pay_fen: uint256, back_fen: uint256, principal: uint256, interest: uint256):
    """
    @dev A buy order's financing, held by the pool since the draw: pay `pay_fen` of it to
         the broker, and return `back_fen` at the order's close: `principal` and `interest`
         (what the close's `_repay_parts` repaid) are repaid there (no transfer), the rest
         comes back to the engine (the account's cash, which the repayment could not use).
    """
    if pay_fen + back_fen == 0:
        return
    refund: uint256 = back_fen - principal - interest
    if refund > 0:
        self._held(refund, 0)
    extcall POOL.settle(broker, pay_fen, principal, interest, refund)


# ---------------------------------------------------------------- internal: positions
@internal
@pure
def _locked_qty(p: Pos, day: uint256) -> uint256:
    if p.lot_day == day:
        return p.lot_qty
    return 0


@internal
@pure
def _sellable(p: Pos, day: uint256) -> uint256:
    # dev: locked + selling <= positions (locks are added with positions, sells reserve them)
    return p.qty - self._locked_qty(p, day) - p.selling


@internal
def _drop_code(who: address, code: uint256, p: Pos):
    if p.qty != 0 or p.buying != 0:
        return
    keep: DynArray[uint256, C.MAX_CODES] = []
    codes: DynArray[uint256, C.MAX_CODES] = self._codes(who)
    for c: uint256 in codes:
        if c != code:
            keep.append(c)
    self._set_codes(who, keep)


# ---------------------------------------------------------------- internal: liquidation
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
    a: Account = self._get(who, True)
    return self._debt(a.scaled_debt, self._index(a.tier))


@external
@view
def account_state(who: address) -> (uint256, uint256, uint256):
    """
    @notice (assets, debt, ratio in bps; max uint256 without debt) of an account.
    """
    assets: uint256 = 0
    debt: uint256 = 0
    assets, debt = self._state(who, self._get(who, True))
    return assets, debt, self._ratio(assets, debt)


@external
@view
def held_fen() -> uint256:
    """
    @notice Cash held for accounts (cash + reserve + pending), in fen: the engine's (its
            CashToken balance) and the open buys' financing still at the pool.
    """
    return (self.wiring >> 161) + staticcall POOL.undisbursed_fen()


@external
@view
def total_principal_fen() -> uint256:
    """
    @notice Principal owed to the pool, in fen: the pool's principal out (each borrow,
            repayment and write-off of the engine moves it in the same call).
    """
    return staticcall POOL.principal_out_fen()


@external
@view
def platform_qty(code: uint256) -> uint256:
    """
    @notice Shares of `code` held or being bought across accounts (platform exposure, kept
            at RiskParams next to the liquidity figure that caps it).
    """
    return staticcall PARAMS.platform_qty(code)


@external
@view
def sellable(who: address, code: uint256) -> uint256:
    """
    @notice Shares of `code` the account can sell today (not T+1 locked, not in a sell).
    """
    return self._sellable(self._pos(who, code), staticcall ORACLE.trading_day())


@external
@view
def codes_of(who: address) -> DynArray[uint256, C.MAX_CODES]:
    """
    @notice Securities the account holds or is buying.
    """
    return self._codes(who)


@external
@view
def indices(tier: uint256) -> Index:
    """
    @notice A tier's interest index: value (RAY, never decreases), last update, APR (bps).
    """
    return self._ix(tier)


@external
@view
def accounts(who: address) -> Account:
    """
    @notice An account (all fields zero without one).
    """
    return self._get(who, True)


@external
@view
def positions(who: address, code: uint256) -> uint256:
    """
    @notice Shares of `code` held for the account.
    """
    return self._pos(who, code).qty


@external
@view
def selling(who: address, code: uint256) -> uint256:
    """
    @notice Shares of `code` committed to the account's open sells.
    """
    return self._pos(who, code).selling


@external
@view
def buying(who: address, code: uint256) -> uint256:
    """
    @notice Shares of `code` pending in the account's open buys.
    """
    return self._pos(who, code).buying


@external
@view
def lots(who: address, code: uint256) -> Lot:
    """
    @notice The account's last buy lot of `code`: its trading day and the shares bought
            that day (T+1 locked while that day is today).
    """
    p: Pos = self._pos(who, code)
    return Lot(day=p.lot_day, qty=p.lot_qty)


# ---------------------------------------------------------------- external: borrower cash
@external
@nonreentrant
def deposit(amount_fen: uint256, to_reserve: bool):
    """
    @notice Borrower: deposit margin (or top-up reserve) from the caller's CashToken balance
            (approve the engine first).
    """
    self._credit(msg.sender, amount_fen, to_reserve)
    log Deposited(account=msg.sender, amount_fen=amount_fen, to_reserve=to_reserve)


@external
@nonreentrant
def withdraw(amount_fen: uint256, from_reserve: bool):
    """
    @notice Borrower: withdraw free cash or reserve. With debt, only while the ratio after
            stays above max(initial, withdraw floor) and the platform is not paused; without
            debt, always.
    """
    a: Account = self._account(msg.sender, True)
    self._check_amount(amount_fen)
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
        line: uint256 = staticcall PARAMS.withdraw_line(a.tier)
        assert assets * C.BPS >= line * debt, "margin: ratio below withdrawal line"
    self._put(msg.sender, a, True)
    self._held(0, amount_fen)
    self._pay(msg.sender, amount_fen)
    log Withdrawn(account=msg.sender, amount_fen=amount_fen, from_reserve=from_reserve)


@external
@nonreentrant
def repay(amount_fen: uint256, from_wallet: bool):
    """
    @notice Anyone holding an account: repay up to `amount_fen` of its debt (interest
            first), from the caller's wallet (approve first) or from the account's free cash.
            Works while paused and while in liquidation.
    """
    a: Account = self._account(msg.sender, False)
    self._check_amount(amount_fen)
    debt: uint256 = self._debt(a.scaled_debt, self._index(a.tier))
    assert debt > 0, "margin: no debt"
    pay: uint256 = min(amount_fen, debt)
    if from_wallet:
        a.cash_fen += pay
    else:
        assert a.cash_fen >= pay, "margin: insufficient cash"
    principal: uint256 = 0
    interest: uint256 = 0
    a, principal, interest = self._repay(msg.sender, a, pay, not from_wallet)
    self._put(msg.sender, a, False)
    if from_wallet:
        # dev: `_repay` repaid all of `pay` (cash >= pay <= debt): the wallet pays the pool
        # directly on the engine's allowance, then the pool books it
        extcall CASH.transferFrom(msg.sender, POOL.address, pay)
        extcall POOL.repay(principal, interest)
    else:
        self._pay_pool()


# ---------------------------------------------------------------- external: order book hooks
@external
@view
def orderbook() -> address:
    """
    @notice The OrderBook, the only caller of the `ob_` hooks (fixed at deployment).
    """
    return ORDERBOOK


@external
@view
def paused() -> bool:
    """
    @notice Whether the operator paused the platform (fail closed).
    """
    return (self.wiring >> 160) & 1 != 0


@internal
@view
def _check_orderbook():
    assert msg.sender == ORDERBOOK, "margin: caller is not order book"


@external
@nonreentrant
def ob_buy(who: address, code: uint256, qty: uint256, limit_price_fen: uint256) -> (uint256, uint256, uint256):
    """
    @notice OrderBook: pre-trade checks of a buy of `qty` shares (whole lots) at most at
            `limit_price_fen` by `who`; reserves the cost with the fee allowance, drawing
            financing from the pool for what the account's cash lacks.
    @param who The borrower (the OrderBook checked the role).
    @param code Security code.
    @param qty Shares (whole lots).
    @param limit_price_fen Limit price.
    @return The cash reserved and the financing drawn, in fen, and the account id.
    """
    self._check_orderbook()
    self._check_not_paused()
    a: Account = self._account(who, False)
    assert not a.locked, "margin: account in liquidation"
    assert qty > 0 and qty % C.LOT == 0, "margin: quantity not whole lots"
    assert limit_price_fen > 0, "margin: zero price"
    p: Pos = self._pos(who, code)
    if p.qty == 0 and p.buying == 0:
        codes: DynArray[uint256, C.MAX_CODES] = self._codes(who)
        assert len(codes) < C.MAX_CODES, "margin: too many securities"
        codes.append(code)
        self._set_codes(who, codes)
    held: uint256[C.MAX_CODES] = empty(uint256[C.MAX_CODES])
    values: uint256[C.MAX_CODES] = empty(uint256[C.MAX_CODES])
    day: uint256 = 0
    price: uint256 = 0
    flags: uint256 = 0
    held, values, day, price, flags = self._quote(who, code)
    # the cost with the fee allowance, the financing drawn for what the cash lacks and the
    # pre-trade checks (financeable, reliable price, assets, initial line, leverage, single
    # security, platform exposure, liquidity cap) are at RiskParams, in one call, with the
    # platform's exposure updated there
    cost: uint256 = 0
    draw: uint256 = 0
    cost, draw = extcall PARAMS.engine_buy(
        a.tier, code, qty, limit_price_fen, p.qty + p.buying, a.cash_fen, a.pending_fen,
        self._debt(a.scaled_debt, self._index(a.tier)), staticcall POOL.total_assets_fen(), day,
        price, flags, held, values,
    )
    a.cash_fen = a.cash_fen + draw - cost
    a.pending_fen += cost
    p.buying += qty
    self._put_pos(who, code, p)
    a = self._borrow(who, a, draw)
    self._put(who, a, False)
    if draw > 0:
        extcall POOL.draw(draw)
    return cost, draw, self.acct[who].a >> 224


@external
def ob_sell(who: address, code: uint256, qty: uint256, limit_price_fen: uint256, liquidation: bool) -> uint256:
    """
    @notice OrderBook: commit `qty` sellable shares of `code` to a sell. A borrower's sell
            needs an unlocked account, whole lots (or the whole sellable holding) and a
            price; a liquidation sell (the Liquidator's) counts as an open liquidation order.
    @param who The account holder.
    @param code Security code.
    @param qty Shares.
    @param limit_price_fen Limit price (a liquidation: today's limit-down).
    @param liquidation Whether the Liquidator ordered the sell.
    @return The account id.
    """
    self._check_orderbook()
    a: Account = self._account(who, True)
    if liquidation:
        a.open_liq += 1
        self._put(who, a, True)
    else:
        assert not a.locked, "margin: account in liquidation"
        assert limit_price_fen > 0, "margin: zero price"
    p: Pos = self._pos(who, code)
    avail: uint256 = self._sellable(p, staticcall ORACLE.trading_day())
    assert qty > 0 and qty <= avail, "margin: not enough sellable shares"
    assert liquidation or qty % C.LOT == 0 or qty == avail, "margin: quantity not whole lots"
    p.selling += qty
    self._put_pos(who, code, p)
    return self.acct[who].a >> 224


@external
@nonreentrant
def ob_fill_buy(account_id: uint256, code: uint256, qty: uint256, cost: uint256, financed: uint256, broker: address, closes: bool, released_fen: uint256, drawn_fen: uint256, day: uint256):
    """
    @notice OrderBook: a buy fill: pay the broker `cost` from the reserved cash and credit
            `qty` T+1-locked shares (the OrderBook mints the certificates to the engine).
            A fill that completes the order also closes it here (as `ob_close` would): the
            cash still reserved is released, the financing drawn and not consumed goes back
            to the pool.
    @param account_id The account's id (the order's; `account_of`).
    @param code Security code.
    @param qty Shares filled.
    @param cost Gross plus fee, in fen (within the order's reserved cash).
    @param financed The part of `cost` paid from the order's financing, which the pool
           still holds and pays to the broker; the engine pays the rest.
    @param broker The broker paid.
    @param closes Whether the fill completes the order.
    @param released_fen Cash still reserved after the fill (closes only).
    @param drawn_fen Financing drawn and not consumed after the fill (closes only).
    @param day The trading day of the T+1 lot: the oracle's, as the certificates' mint for
           this fill took it (`ShareCertificates.mint_fill`, the engine's custody).
    """
    self._check_orderbook()
    who: address = self.account_of[account_id]
    a: Account = self._get(who, False)
    a.pending_fen -= cost
    if cost > financed:
        self._held(0, cost - financed)
    p: Pos = self._pos(who, code)
    p.lot_qty = self._locked_qty(p, day) + qty
    p.lot_day = day
    p.qty += qty
    p.buying -= qty
    self._put_pos(who, code, p)
    back: uint256 = 0
    principal: uint256 = 0
    interest: uint256 = 0
    if closes:
        # dev: drawn <= released (the OrderBook spends own cash first)
        back = drawn_fen
        a.pending_fen -= released_fen
        a.cash_fen += released_fen
        a, principal, interest = self._repay(who, a, back, False)
    self._put(who, a, False)
    # interactions last: the broker's own-cash part, then the pool pays the financed part
    # and books what the close repaid
    if cost > financed:
        self._pay(broker, cost - financed)
    self._settle(broker, financed, back, principal, interest)


@external
@nonreentrant
def ob_fill_sell(account_id: uint256, code: uint256, qty: uint256, gross: uint256, fee_fen: uint256, liquidation: bool, closes: bool, broker: address):
    """
    @notice OrderBook: a sell fill: take the proceeds from the broker (who approved the
            engine), retire the shares (the OrderBook burns the certificates); a liquidation pays the penalty to the insurance fund
            (never lowering the ratio) and repays the debt with the rest.
    @param account_id The account's id (the order's; `account_of`).
    @param code Security code.
    @param qty Shares filled.
    @param gross Quantity times price, in fen (> fee).
    @param fee_fen Broker fee, in fen.
    @param liquidation Whether it is a liquidation sell.
    @param closes Whether the fill completes the order (the OrderBook then closes it).
    @param broker The broker paying the proceeds.
    """
    self._check_orderbook()
    who: address = self.account_of[account_id]
    a: Account = self._get(who, True)
    proceeds: uint256 = gross - fee_fen
    penalty: uint256 = 0
    if liquidation:
        # the penalty never lowers the ratio: at most gross * (A - D) / A
        assets: uint256 = 0
        debt: uint256 = 0
        assets, debt = self._state(who, a)
        pen: uint256 = (gross * staticcall PARAMS.penalty_bps() + C.BPS - 1) // C.BPS
        if assets > debt:
            penalty = min(pen, gross * (assets - debt) // assets)
        penalty = min(penalty, proceeds)
    p: Pos = self._pos(who, code)
    p.qty -= qty
    p.selling -= qty
    self._put_pos(who, code, p)
    a.cash_fen += proceeds - penalty
    a.penalty_fen += penalty
    self._held(proceeds - penalty, 0)
    if liquidation:
        repaid: uint256 = 0
        a, repaid, repaid = self._repay(who, a, proceeds - penalty, True)
        if not closes:
            a = self._mark(who, a)
    self._put(who, a, True)
    self._drop_code(who, code, p)
    # interactions last: exposure, proceeds in, penalty to insurance, repayment to the pool
    extcall PARAMS.engine_exposure(code, 0, qty)
    self._pull(broker, proceeds)
    if penalty > 0:
        self._pay(INSURANCE.address, penalty)
        extcall INSURANCE.credit(penalty, 2)
        log PenaltyCharged(account=who, amount_fen=penalty)
    self._pay_pool()


@external
@nonreentrant
def ob_close(account_id: uint256, code: uint256, is_buy: bool, liquidation: bool, rest: uint256, released_fen: uint256, drawn_fen: uint256):
    """
    @notice OrderBook: an order is closed: release its unfilled shares or cash; financing
            drawn for the unfilled part goes back to the pool.
    @param account_id The account's id (the order's; `account_of`).
    @param code Security code.
    @param is_buy Buy or sell.
    @param liquidation Whether it is a liquidation sell.
    @param rest Unfilled shares.
    @param released_fen Cash still reserved (buys).
    @param drawn_fen Financing drawn and not consumed (buys).
    """
    self._check_orderbook()
    who: address = self.account_of[account_id]
    a: Account = self._get(who, liquidation)
    p: Pos = self._pos(who, code)
    principal: uint256 = 0
    interest: uint256 = 0
    if is_buy:
        a.pending_fen -= released_fen
        a.cash_fen += released_fen
        p.buying -= rest
        # dev: drawn <= released (the OrderBook spends own cash first)
        a, principal, interest = self._repay(who, a, drawn_fen, False)
    else:
        p.selling -= rest
    self._put_pos(who, code, p)
    if liquidation:
        a.open_liq -= 1
        a = self._mark(who, a)
    self._put(who, a, liquidation)
    self._drop_code(who, code, p)
    if is_buy:
        if rest > 0:
            extcall PARAMS.engine_exposure(code, 0, rest)
        self._settle(empty(address), 0, drawn_fen, principal, interest)
    else:
        self._pay_pool()


# ---------------------------------------------------------------- external: corporate actions
@internal
def _use_ref(ref: bytes32):
    self._check_role(IIdentityRegistry.Role.BROKER, "margin: caller is not broker")
    assert ref != empty(bytes32) and not self.action_ref_used[ref], "margin: reference used"
    self.action_ref_used[ref] = True


@external
@nonreentrant
def credit_cash(who: address, amount_fen: uint256, ref: bytes32):
    """
    @notice Broker: credit a cash dividend (派息, already net of dividend tax) to the margin
            cash of `who`; the CashToken moves from the broker (approve the engine first).
    @param who The account holder.
    @param amount_fen Net dividend in fen (> 0).
    @param ref The corporate-action reference, used once .
    """
    self._use_ref(ref)
    self._credit(who, amount_fen, False)
    log CashCredited(who=who, amount_fen=amount_fen, ref=ref)


@external
def adjust_position(who: address, code: uint256, new_qty: uint256, ref: bytes32):
    """
    @notice Broker: bonus or transfer shares (送股/转增) raise a held position to `new_qty`;
            today's T+1-locked part is scaled by the same factor (rounded down) so locks
            carry over; platform exposure grows by the added shares. The broker mints the
            added certificates to the engine with `ShareCertificates.mint_adjustment`.
    @param who The account holder.
    @param code Security code held by the account.
    @param new_qty Position after the action (> the current position).
    @param ref The corporate-action reference, used once .
    """
    self._use_ref(ref)
    p: Pos = self._pos(who, code)
    old_qty: uint256 = p.qty
    assert old_qty > 0, "margin: no position"
    assert new_qty > old_qty, "margin: adjustment must increase position"
    if p.lot_qty > 0 and p.lot_day == staticcall ORACLE.trading_day():
        p.lot_qty = p.lot_qty * new_qty // old_qty
    p.qty = new_qty
    self._put_pos(who, code, p)
    log PositionAdjusted(who=who, code=code, old_qty=old_qty, new_qty=new_qty, ref=ref)
    extcall PARAMS.engine_exposure(code, new_qty - old_qty, 0)


# ---------------------------------------------------------------- external: liquidator hooks
@internal
@view
def _check_liquidator():
    assert msg.sender == self.liquidator and msg.sender != empty(address), (
        "margin: caller is not liquidator"
    )


@external
@view
def keeper_view(who: address) -> (uint256, uint256, uint256, uint256, bool, uint256, uint256):
    """
    @notice What the Liquidator decides on from the account, in one call (the tier's lines,
            penalty and hard floor are at `RiskParams.keeper_terms`).
    @param who The account holder (reverts "margin: no account" without an account).
    @return assets, debt (fen), tier, reserve (fen), locked, open liquidation orders,
            securities held or being bought.
    """
    a: Account = self._account(who, True)
    assets: uint256 = 0
    debt: uint256 = 0
    assets, debt = self._state(who, a)
    return assets, debt, a.tier, a.reserve_fen, a.locked, a.open_liq, self.code_set[who] & 15


@external
def liq_top_up(who: address, amount_fen: uint256):
    """
    @notice Liquidator: move `amount_fen` of reserve into margin cash (automatic top-up).
    @param who The account holder.
    @param amount_fen Amount moved (<= reserve).
    """
    self._check_liquidator()
    a: Account = self._get(who, True)
    a.reserve_fen -= amount_fen
    a.cash_fen += amount_fen
    self._put(who, a, True)


@external
def liq_mark(who: address, lock: bool) -> uint256:
    """
    @notice Liquidator: lock the account if `lock`, then re-mark its provisional loss.
    @param who The account holder.
    @param lock Lock the account (in liquidation: no buys, sells or withdrawals).
    @return The provisional loss in fen.
    """
    self._check_liquidator()
    a: Account = self._get(who, True)
    if lock:
        a.locked = True
    a = self._mark(who, a)
    self._put(who, a, True)
    return a.provision_fen


@external
@nonreentrant
def liq_end(who: address, waterfall: bool) -> (uint256, uint256, uint256):
    """
    @notice Liquidator: unlock the account; with `waterfall` (no shares left) repay from
            cash, then reserve, and pass the unrecoverable principal to the pool's waterfall
            (penalty and insurance, then junior, then senior).
    @param who The account holder.
    @param waterfall Settle the remaining debt (only when no securities remain).
    @return reserve used, shortfall and insurance paid, in fen.
    """
    self._check_liquidator()
    a: Account = self._get(who, True)
    reserve_used: uint256 = 0
    shortfall: uint256 = 0
    paid: uint256 = 0
    if waterfall:
        repaid: uint256 = 0
        a, repaid, repaid = self._repay(who, a, a.cash_fen, True)
        index: uint256 = self._accrue(a.tier)
        if a.scaled_debt > 0:
            reserve_used = min(a.reserve_fen, self._debt(a.scaled_debt, index))
            a.reserve_fen -= reserve_used
            a.cash_fen += reserve_used
            a, repaid, repaid = self._repay(who, a, reserve_used, True)
        if a.scaled_debt > 0:
            # the rest is unrecoverable: interest is forgiven, principal is a pool loss
            shortfall = a.principal_fen
            a.scaled_debt = 0
            a.principal_fen = 0
    pen: uint256 = a.penalty_fen
    a.locked = False
    a.penalty_fen = 0
    self.marked_loss_fen -= a.provision_fen
    a.provision_fen = 0
    self._put(who, a, True)
    self._pay_pool()
    if shortfall > 0:
        paid = extcall POOL.absorb_shortfall(shortfall, pen)
    return reserve_used, shortfall, paid


# ---------------------------------------------------------------- external: operator
@external
def params_rate(tier: uint256, rate_bps: uint256):
    """
    @notice RiskParams: a tier's rate was set; interest accrues at the old rate up to now.
    @param tier The tier (its index starts at 1.0 when first defined).
    @param rate_bps The new APR in bps.
    """
    assert msg.sender == PARAMS.address, "margin: caller is not params"
    v: uint256 = C.RAY
    if self.ix_slot[tier] != 0:
        v = self._index(tier)
    self._put_ix(tier, v, rate_bps)


@external
def connect(liquidator: address, orderbook: address):
    """
    @notice Operator: name the Liquidator, the only caller of the `liq_` hooks, and confirm
            the OrderBook (fixed at deployment: the only caller of the `ob_` hooks); once.
    @param liquidator The Liquidator's address (not zero).
    @param orderbook The OrderBook's address (not zero; the one fixed at deployment).
    """
    self._check_operator()
    assert liquidator != empty(address) and orderbook != empty(address), "margin: zero address"
    assert self.liquidator == empty(address), "margin: already connected"
    assert orderbook == ORDERBOOK, "margin: not the deployed order book"
    self.liquidator = liquidator
    log Connected(liquidator=liquidator, orderbook=orderbook)


@external
def pause():
    """
    @notice Operator: fail closed (reconciliation break).
    """
    self._set_paused(True)


@external
def unpause():
    """
    @notice Operator: resume after a pause.
    """
    self._set_paused(False)


@internal
def _set_paused(on: bool):
    self._check_operator()
    if on:
        assert (self.wiring >> 160) & 1 == 0, "margin: already paused"
    else:
        assert (self.wiring >> 160) & 1 != 0, "margin: not paused"
    self.wiring = self.wiring & ~convert(1 << 160, uint256) | convert(on, uint256) << 160
    log Paused(by=msg.sender, paused=on)


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
    assert self.ix_slot[tier] != 0, "margin: unknown tier"
    a: Account = self._get(who, True)
    assert a.scaled_debt == 0, "margin: repay before changing tier"
    log AccountOpened(account=who, tier_before=a.tier, tier_after=tier, by=msg.sender)
    a.tier = tier
    self._put(who, a, True)
    if self.acct[who].a >> 224 == 0:
        n: uint256 = self.account_count + 1
        assert n <= M32, "margin: too many accounts"
        self.account_count = n
        self.account_of[n] = who
        self.acct[who].a |= n << 224
