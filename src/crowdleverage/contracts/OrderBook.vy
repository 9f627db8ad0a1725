# pragma version ~=0.4.3
# pragma optimize codesize
"""
@title OrderBook
@custom:contract-name OrderBook
@notice Orders of the margin accounts and their fills (DESIGN.md §6): borrowers request
        buys and sells here, the Liquidator emits liquidation sells here, and the broker
        settles fills (each with a one-use exchange reference) and cancels dead remainders
        here. Orders are kept in two packed slots (a new sell writes one). Cash, shares, positions and T+1 lots stay
        in the MarginEngine, which this contract drives through its `ob_*` hooks (only this
        contract may call them: `MarginEngine.set_orderbook`, once).
@custom:security Buys fill only at or below the limit and within the reserved cash; sells
        fill only at or above the limit (a liquidation: today's limit-down) and never into a
        sealed limit-down. The order is written before any external call.
"""

from .interfaces import IIdentityRegistry
from .interfaces import IMarginEngine
from .interfaces import IPriceOracle
from .interfaces import IShareCertificates
from . import constants as C

# ---------------------------------------------------------------- events
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


event RegimeChanged:
    old: uint8
    new: uint8
    indicator_bps: uint256


# ---------------------------------------------------------------- structs
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


# Packed order: slot a = account (160 bits) | code (20 bits << 160) | flags (3 bits << 180)
# | qty (40 bits << 183) | limit price (33 bits << 223); slot b = filled (64) | reserved
# (64 << 64) | drawn (64 << 128). A new sell's slot b is zero, so a sell order costs one new
# slot. Shares < 2^40 (1.1e12), limit price < 2^33 fen (85.9 million yuan), fen < 2^64.
struct Packed:
    a: uint256
    b: uint256


# ---------------------------------------------------------------- storage
ENGINE: public(immutable(IMarginEngine))
REGISTRY: public(immutable(IIdentityRegistry))
ORACLE: public(immutable(IPriceOracle))
SHARES: public(immutable(IShareCertificates))

# Orders by id (packed) and the id counter.
packed: HashMap[uint256, Packed]
order_count: public(uint256)

# Broker fill references: ShareCertificates records each one in the fill's mint or burn
# (`ref_used`, one namespace with the broker's other certificate references); read here
# with `fill_ref_used`, not stored twice.

# Market regime (0 normal, 1 stressed), set from the published stress indicator; in the
# stressed regime no buy may draw new financing.
regime: public(uint8)
NORMAL: constant(uint8) = 0
STRESSED: constant(uint8) = 1

M64: constant(uint256) = 2**64 - 1
M40: constant(uint256) = 2**40 - 1
M33: constant(uint256) = 2**33 - 1


# >>> policy: set_regime mirrors the regime to RiskParams (stressed haircuts); request_buy
# checks the liquidity cap of financed buys there
interface IEngineParams:
    def PARAMS() -> address: view


interface IRegimeSink:
    def params_regime(regime: uint8): nonpayable


interface IExposure:
    def platform_qty(code: uint256) -> uint256: view


interface ILiquidityCap:
    def check_liquidity(code: uint256, exposure_fen: uint256) -> bool: view
# <<< policy


@deploy
def __init__(
    engine: IMarginEngine,
    registry: IIdentityRegistry,
    oracle: IPriceOracle,
    shares: IShareCertificates,
):
    """
    @param engine The MarginEngine holding the accounts.
    @param registry The IdentityRegistry (BORROWER and BROKER roles).
    @param oracle The PriceOracle (bands and seals).
    @param shares The ShareCertificates: fills mint and burn the engine's certificates (this
           contract holds the BROKER role for that).
    """
    assert engine.address != empty(address) and registry.address != empty(address), (
        "orders: zero address"
    )
    assert oracle.address != empty(address) and shares.address != empty(address), (
        "orders: zero address"
    )
    ENGINE = engine
    REGISTRY = registry
    ORACLE = oracle
    SHARES = shares


# ---------------------------------------------------------------- internal
@internal
@view
def _check_role(role: IIdentityRegistry.Role, reason: String[40]):
    assert staticcall REGISTRY.has_role(msg.sender, role), reason


@internal
@pure
def _pack(o: Order) -> Packed:
    assert o.qty <= M40 and o.limit_price_fen <= M33 and o.reserved_fen <= M64, "orders: too large"
    flags: uint256 = convert(o.is_buy, uint256) | convert(o.liquidation, uint256) << 1 | convert(o.open, uint256) << 2
    return Packed(
        a=convert(o.account, uint256) | o.code << 160 | flags << 180 | o.qty << 183 | o.limit_price_fen << 223,
        b=o.filled_qty | o.reserved_fen << 64 | o.drawn_fen << 128,
    )


@internal
@view
def _load(order_id: uint256) -> Order:
    p: Packed = self.packed[order_id]
    flags: uint256 = (p.a >> 180) & 7
    return Order(
        account=convert(convert(p.a & (2**160 - 1), uint160), address),
        code=(p.a >> 160) & (2**20 - 1),
        is_buy=flags & 1 != 0,
        liquidation=flags & 2 != 0,
        open=flags & 4 != 0,
        qty=(p.a >> 183) & M40,
        filled_qty=p.b & M64,
        limit_price_fen=p.a >> 223,
        reserved_fen=(p.b >> 64) & M64,
        drawn_fen=p.b >> 128,
    )


@internal
def _new_order(o: Order) -> uint256:
    oid: uint256 = self.order_count + 1
    self.order_count = oid
    p: Packed = self._pack(o)
    self.packed[oid].a = p.a
    if p.b != 0:
        # dev: a new sell's second slot stays zero (no write)
        self.packed[oid].b = p.b
    return oid


@internal
def _close(order_id: uint256, o: Order):
    """
    @dev Close an order (written first), then release its unfilled part at the engine.
    """
    released: uint256 = 0
    if o.is_buy:
        released = o.reserved_fen
    drawn: uint256 = o.drawn_fen
    o.open = False
    o.reserved_fen = 0
    o.drawn_fen = 0
    self.packed[order_id] = self._pack(o)
    log OrderClosed(order_id=order_id, filled_qty=o.filled_qty, released_fen=released)
    extcall ENGINE.ob_close(o.account, o.code, o.is_buy, o.liquidation, o.qty - o.filled_qty, released, drawn)


# ---------------------------------------------------------------- external: views
@external
@view
def orders(order_id: uint256) -> Order:
    """
    @notice An order (all fields zero for an unknown id).
    @param order_id The order id.
    @return account, code, is_buy, liquidation, open, qty, filled_qty, limit_price_fen,
            reserved_fen (buys: cash still reserved), drawn_fen (buys: financing not yet
            consumed).
    """
    return self._load(order_id)


@external
@view
def fill_ref_used(ref: bytes32) -> bool:
    """
    @notice Whether a fill reference was used (by a fill, or by another certificate mint or
            burn of the broker: one namespace at ShareCertificates).
    @param ref The reference.
    """
    return staticcall SHARES.ref_used(ref)


# ---------------------------------------------------------------- external: borrower
@external
def request_buy(code: uint256, qty: uint256, limit_price_fen: uint256) -> uint256:
    """
    @notice Borrower: buy `qty` shares (whole lots) at most at `limit_price_fen`. The engine
            runs the pre-trade checks and reserves cash (drawing financing from the pool for
            what the account lacks); the broker executes on `OrderRequested`.
    @param code Security code.
    @param qty Shares (whole lots).
    @param limit_price_fen Limit price in fen.
    @return The order id.
    """
    self._check_role(IIdentityRegistry.Role.BORROWER, "margin: caller is not borrower")
    cost: uint256 = 0
    draw: uint256 = 0
    cost, draw = extcall ENGINE.ob_buy(msg.sender, code, qty, limit_price_fen)
    # dev: a refusal here reverts the engine's reservation with it
    assert draw == 0 or self.regime != STRESSED, "stressed regime: no new financing"
    # >>> policy (liquidity cap, issue 12.6 / 13.3): a buy that draws financing keeps the
    # platform's position in `code` (held and being bought, this order included, valued at
    # this order's limit) within RiskParams.liquidity_cap_fen ("margin: above liquidity cap")
    if draw > 0:
        assert staticcall ILiquidityCap(staticcall IEngineParams(ENGINE.address).PARAMS()).check_liquidity(
            code, staticcall IExposure(ENGINE.address).platform_qty(code) * limit_price_fen
        )
    # <<< policy
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
            at `limit_price_fen`.
    @param code Security code.
    @param qty Shares.
    @param limit_price_fen Limit price in fen.
    @return The order id.
    """
    self._check_role(IIdentityRegistry.Role.BORROWER, "margin: caller is not borrower")
    oid: uint256 = self._new_order(
        Order(
            account=msg.sender, code=code, is_buy=False, liquidation=False, open=True, qty=qty,
            filled_qty=0, limit_price_fen=limit_price_fen, reserved_fen=0, drawn_fen=0,
        )
    )
    log OrderRequested(order_id=oid, account=msg.sender, code=code, is_buy=False, qty=qty, limit_price_fen=limit_price_fen)
    extcall ENGINE.ob_sell(msg.sender, code, qty, limit_price_fen, False)
    return oid


# ---------------------------------------------------------------- external: risk
@external
def set_regime(regime: uint8, indicator_bps: uint256):
    """
    @notice Operator (the role that holds risk settings; there is no separate risk role):
            set the market regime from the published stress indicator. In the stressed
            regime a buy that would draw financing is refused; buys from own cash, sells,
            fills and liquidations go on; the haircuts at RiskParams (which this call
            updates) take their stressed values.
    @param regime 0 normal, 1 stressed.
    @param indicator_bps The stress indicator the decision rests on (logged).
    """
    self._check_role(IIdentityRegistry.Role.OPERATOR, "margin: caller is not operator")
    assert regime <= STRESSED, "margin: unknown regime"
    old: uint8 = self.regime
    self.regime = regime
    log RegimeChanged(old=old, new=regime, indicator_bps=indicator_bps)
    # >>> policy (stressed haircuts)
    extcall IRegimeSink(staticcall IEngineParams(ENGINE.address).PARAMS()).params_regime(regime)
    # <<< policy


# ---------------------------------------------------------------- external: liquidator
@external
def liq_order(who: address, code: uint256, qty: uint256, min_price_fen: uint256, full: bool) -> uint256:
    """
    @notice Liquidator: a liquidation sell of `qty` sellable shares at any legal price of the
            day it fills (>= `min_price_fen`, today's limit-down).
    @param who The account holder.
    @param code Security code.
    @param qty Shares.
    @param min_price_fen Today's limit-down.
    @param full Whether the liquidation sells everything.
    @return The order id.
    """
    assert msg.sender == staticcall ENGINE.liquidator(), "margin: caller is not liquidator"
    oid: uint256 = self._new_order(
        Order(
            account=who, code=code, is_buy=False, liquidation=True, open=True, qty=qty,
            filled_qty=0, limit_price_fen=min_price_fen, reserved_fen=0, drawn_fen=0,
        )
    )
    log LiquidationOrder(order_id=oid, account=who, code=code, qty=qty, min_price_fen=min_price_fen, full=full)
    extcall ENGINE.ob_sell(who, code, qty, min_price_fen, True)
    return oid


# ---------------------------------------------------------------- external: broker
@external
def settle_fill(order_id: uint256, qty: uint256, price_fen: uint256, fee_fen: uint256, ref: bytes32):
    """
    @notice Broker: a (partial) fill of an order with its exchange reference (used once).
            Buys pay the broker from the reserved cash and credit T+1-locked shares; sells
            take the proceeds from the broker (approve the engine) and retire the shares.
            Liquidation proceeds repay the debt after the penalty to the insurance fund.
    @param order_id The order id.
    @param qty Shares filled (<= unfilled).
    @param price_fen Fill price.
    @param fee_fen Broker fee (commission, stamp duty, transfer fee).
    @param ref The exchange fill reference, used once.
    """
    self._check_role(IIdentityRegistry.Role.BROKER, "margin: caller is not broker")
    o: Order = self._load(order_id)
    assert o.open, "margin: order not open"
    assert ref != empty(bytes32) and not staticcall SHARES.ref_used(ref), "margin: fill reference used"
    assert qty > 0 and o.filled_qty + qty <= o.qty, "margin: fill exceeds order"
    gross: uint256 = qty * price_fen
    o.filled_qty += qty
    closes: bool = o.filled_qty == o.qty
    cost: uint256 = gross + fee_fen
    if o.is_buy:
        assert price_fen <= o.limit_price_fen, "margin: fill above limit"
        assert cost <= o.reserved_fen, "margin: fill exceeds reserved cash"
        o.reserved_fen -= cost
        # fills spend the account's own cash first: financing is the last part reserved
        o.drawn_fen = min(o.drawn_fen, o.reserved_fen)
    else:
        low: uint256 = o.limit_price_fen
        if o.liquidation:
            # a liquidation sells at any legal price of the day it fills
            high: uint256 = 0
            low, high = staticcall ORACLE.band(o.code)
        assert price_fen >= low, "margin: fill below limit"
        assert not staticcall ORACLE.is_sealed_limit_down(o.code), "margin: sealed limit-down"
        assert gross > fee_fen, "margin: fee exceeds proceeds"
    self.packed[order_id] = self._pack(o)
    if o.is_buy:
        extcall ENGINE.ob_fill_buy(o.account, o.code, qty, cost, msg.sender, ref)
        extcall SHARES.mint(ENGINE.address, o.code, qty, ref)
    else:
        extcall ENGINE.ob_fill_sell(o.account, o.code, qty, gross, fee_fen, o.liquidation, closes, msg.sender, ref)
        extcall SHARES.burn(ENGINE.address, o.code, qty, ref)
    log Filled(order_id=order_id, ref=ref, qty=qty, price_fen=price_fen, fee_fen=fee_fen, filled_after=o.filled_qty)
    if closes:
        self._close(order_id, o)


@external
def cancel_order(order_id: uint256):
    """
    @notice Broker: the unfilled remainder of an order is dead (expired, rejected, day end);
            release it.
    @param order_id The order id.
    """
    self._check_role(IIdentityRegistry.Role.BROKER, "margin: caller is not broker")
    o: Order = self._load(order_id)
    assert o.open, "margin: order not open"
    self._close(order_id, o)
