# pragma version ~=0.4.3
# pragma optimize gas
"""
@title OrderBook
@custom:contract-name OrderBook
@notice Orders of the margin accounts and their fills (DESIGN.md §6): borrowers request
        buys and sells here, the Liquidator emits liquidation sells here, and the broker
        settles fills (each with a one-use exchange reference) and cancels dead remainders
        here. Each fill names its order and the order's next fill number (its sequence),
        so a retried fill is refused instead of settling twice; the exchange reference
        rides in the `Filled` event. An order is one packed slot of its account (by its
        MarginEngine id): a closed order's slot is reused by the account's next order under
        a new generation, so the id (account id | slot << 32 | generation << 38) is unique
        and a new order rewrites a non-zero slot. Cash, shares, positions and T+1 lots stay
        in the MarginEngine, which this contract drives through its `ob_*` hooks (only this
        contract may call them: `MarginEngine.set_orderbook`, once).
@custom:security Buys fill only at or below the limit and within the reserved cash; sells
        fill only at or above the limit (a liquidation: today's limit-down) and never into a
        sealed limit-down. A fill or a cancel writes the order before any external call; a
        new order is written after the engine's checks (the engine gives the account id).
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


# Packed order, one slot: generation (32 bits; the order id's) | code (20 << 32)
# | flags (3 << 52) | qty (32 << 55) | limit price (31 << 87) | filled (32 << 118) | fills
# settled (16 << 150) | reserved (45 << 166) | drawn (45 << 211). Shares < 2^32 (4.3e9),
# limit price < 2^31 fen (21.4 million yuan), reserved cash < 2^45 fen (351 billion yuan),
# at most 65,535 fills per order. The fill count is the order's next fill sequence: a fill
# settles only under that number, once.
#
# Order ids: account id (32 bits, `MarginEngine.account_of`) | slot (6 << 32) | generation
# (15 << 38), below 2^53 (exact in a double, a JSON number). Each account has 64 order
# slots, the key of `packed` (account id | slot << 32); a new order takes the account's
# lowest closed slot and bumps its generation (a slot whose generation is spent, after
# 32,767 orders, is not used again). A borrower's own orders take slots 0-47 (at most 48
# open: "orderbook: too many open orders"), liquidation sells any of the 64. Ids are unique,
# not sequential: an order's id is in its event and the return value of its request.


# ---------------------------------------------------------------- storage
ENGINE: public(immutable(IMarginEngine))
REGISTRY: public(immutable(IIdentityRegistry))
ORACLE: public(immutable(IPriceOracle))
SHARES: public(immutable(IShareCertificates))

# Orders by account id | slot << 32 (packed; a closed order's word stays until the slot is
# reused).
packed: HashMap[uint256, uint256]
SLOTS: constant(uint256) = 64  # order slots per account (6 bits of the id)
BORROWER_SLOTS: constant(uint256) = 48  # of them, a borrower's own open orders
M38: constant(uint256) = 2**38 - 1
MAX_GEN: constant(uint256) = 2**15 - 1
OPEN_BIT: constant(uint256) = 2**54  # flags << 52: is_buy 1, liquidation 2, open 4

# Fills are settled exactly once by their sequence number within the order (`fill_count`,
# packed in the order's slot); no slot is written per fill reference (the reference is in
# the `Filled` event and the certificates' `Minted` / `Burned`).

# Market regime (0 normal, 1 stressed), set from the published stress indicator; in the
# stressed regime no buy may draw new financing.
regime: public(uint8)
NORMAL: constant(uint8) = 0
STRESSED: constant(uint8) = 1

M32: constant(uint256) = 2**32 - 1
MAX_BATCH: constant(uint256) = 64  # fills per `settle_fills`
M31: constant(uint256) = 2**31 - 1
M45: constant(uint256) = 2**45 - 1
M16: constant(uint256) = 2**16 - 1


# >>> policy: set_regime mirrors the regime to RiskParams (stressed haircuts, and the
# refusal of financed buys in the stressed regime, checked there with the liquidity cap)
interface IEngineParams:
    def PARAMS() -> address: view


interface IRegimeSink:
    def params_regime(regime: uint8): nonpayable
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
def _pack(o: Order, gen: uint256, fills: uint256) -> uint256:
    """
    @dev The order's word; `gen` its generation, `fills` the fills settled (< 2^16).
    """
    assert o.qty <= M32 and o.limit_price_fen <= M31 and o.reserved_fen <= M45, "orders: too large"
    flags: uint256 = convert(o.is_buy, uint256) | convert(o.liquidation, uint256) << 1 | convert(o.open, uint256) << 2
    return (
        gen | o.code << 32 | flags << 52 | o.qty << 55 | o.limit_price_fen << 87 | o.filled_qty << 118
        | fills << 150 | o.reserved_fen << 166 | o.drawn_fen << 211
    )


@internal
@view
def _word(order_id: uint256) -> uint256:
    """
    @dev The order's word, zero for an unknown id or one whose slot has been reused since.
    """
    gen: uint256 = order_id >> 38
    if gen == 0 or gen > MAX_GEN:
        return 0
    w: uint256 = self.packed[order_id & M38]
    if w & M32 != gen:
        return 0
    return w


@internal
@view
def _load(order_id: uint256, with_account: bool) -> (Order, uint256, uint256):
    """
    @dev The order (all zero if unknown), its generation and its fills settled; its account
         address only `with_account` (the engine's hooks take the account id, the order
         id's low 32 bits, and look the address up themselves: no call for it here).
    """
    w: uint256 = self._word(order_id)
    if w == 0:
        return empty(Order), 0, 0
    gen: uint256 = w & M32
    flags: uint256 = (w >> 52) & 7
    account: address = empty(address)
    if with_account:
        account = staticcall ENGINE.account_of(order_id & M32)
    return Order(
        account=account,
        code=(w >> 32) & (2**20 - 1),
        is_buy=flags & 1 != 0,
        liquidation=flags & 2 != 0,
        open=flags & 4 != 0,
        qty=(w >> 55) & M32,
        filled_qty=(w >> 118) & M32,
        limit_price_fen=(w >> 87) & M31,
        reserved_fen=(w >> 166) & M45,
        drawn_fen=w >> 211,
    ), gen, (w >> 150) & M16


@internal
def _new_order(o: Order, id: uint256, slots: uint256) -> uint256:
    """
    @dev Write a new order of account `id` into its lowest closed slot among the first
         `slots` (a new generation of it) and return its id.
    """
    for slot: uint256 in range(slots, bound=SLOTS):
        key: uint256 = id | slot << 32
        w: uint256 = self.packed[key]
        gen: uint256 = (w & M32) + 1
        if w & OPEN_BIT == 0 and gen <= MAX_GEN:
            self.packed[key] = self._pack(o, gen, 0)
            return key | gen << 38
    raise "orderbook: too many open orders"


@internal
def _close(order_id: uint256, o: Order, gen: uint256, fills: uint256):
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
    self.packed[order_id & M38] = self._pack(o, gen, fills)
    log OrderClosed(order_id=order_id, filled_qty=o.filled_qty, released_fen=released)
    extcall ENGINE.ob_close(order_id & M32, o.code, o.is_buy, o.liquidation, o.qty - o.filled_qty, released, drawn)


# ---------------------------------------------------------------- external: views
@external
@view
def orders(order_id: uint256) -> Order:
    """
    @notice An order (all fields zero for an unknown id, or one whose slot the account's
            later order reuses: closed orders stay readable until then).
    @param order_id The order id.
    @return account, code, is_buy, liquidation, open, qty, filled_qty, limit_price_fen,
            reserved_fen (buys: cash still reserved), drawn_fen (buys: financing not yet
            consumed).
    """
    o: Order = empty(Order)
    gen: uint256 = 0
    fills: uint256 = 0
    o, gen, fills = self._load(order_id, True)
    return o


@external
@view
def fill_count(order_id: uint256) -> uint256:
    """
    @notice The fills settled on an order: the sequence number its next fill must carry
            (zero for an unknown id, or one whose slot has been reused).
    @param order_id The order id.
    @return The number of fills settled.
    """
    return (self._word(order_id) >> 150) & M16


@external
@view
def open_orders(account_id: uint256) -> DynArray[uint256, SLOTS]:
    """
    @notice The ids of an account's open orders, by slot.
    @param account_id The account's MarginEngine id (`MarginEngine.account_of`).
    @return The order ids.
    """
    out: DynArray[uint256, SLOTS] = []
    for slot: uint256 in range(SLOTS):
        key: uint256 = account_id | slot << 32
        w: uint256 = self.packed[key]
        if w & OPEN_BIT != 0:
            out.append(key | (w & M32) << 38)
    return out


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
    id: uint256 = 0
    # dev: the engine refuses a buy that draws financing in the stressed regime ("stressed
    # regime: no new financing") or above the liquidity cap ("margin: above liquidity cap",
    # the platform's position in `code`, this order included, at this order's limit
    # within RiskParams.liquidity_cap_fen), both checked at RiskParams
    cost, draw, id = extcall ENGINE.ob_buy(msg.sender, code, qty, limit_price_fen)
    oid: uint256 = self._new_order(
        Order(
            account=msg.sender, code=code, is_buy=True, liquidation=False, open=True, qty=qty,
            filled_qty=0, limit_price_fen=limit_price_fen, reserved_fen=cost, drawn_fen=draw,
        ),
        id,
        BORROWER_SLOTS,
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
    id: uint256 = extcall ENGINE.ob_sell(msg.sender, code, qty, limit_price_fen, False)
    oid: uint256 = self._new_order(
        Order(
            account=msg.sender, code=code, is_buy=False, liquidation=False, open=True, qty=qty,
            filled_qty=0, limit_price_fen=limit_price_fen, reserved_fen=0, drawn_fen=0,
        ),
        id,
        BORROWER_SLOTS,
    )
    log OrderRequested(order_id=oid, account=msg.sender, code=code, is_buy=False, qty=qty, limit_price_fen=limit_price_fen)
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
    id: uint256 = extcall ENGINE.ob_sell(who, code, qty, min_price_fen, True)
    oid: uint256 = self._new_order(
        Order(
            account=who, code=code, is_buy=False, liquidation=True, open=True, qty=qty,
            filled_qty=0, limit_price_fen=min_price_fen, reserved_fen=0, drawn_fen=0,
        ),
        id,
        SLOTS,
    )
    log LiquidationOrder(order_id=oid, account=who, code=code, qty=qty, min_price_fen=min_price_fen, full=full)
    return oid


# ---------------------------------------------------------------- external: broker
@external
def settle_fill(order_id: uint256, seq: uint256, qty: uint256, price_fen: uint256, fee_fen: uint256, ref: bytes32):
    """
    @notice Broker: a (partial) fill of an order, the order's fill number `seq` (its
            `fill_count` before the fill: 0 for the first), settled once: a fill whose number
            is taken reverts "orderbook: fill already settled", one ahead of the order's
            next number "orderbook: fill out of sequence". Buys pay the broker from the
            reserved cash and credit T+1-locked shares; sells take the proceeds from the
            broker (approve the engine) and retire the shares. Liquidation proceeds repay
            the debt after the penalty to the insurance fund.
    @param order_id The order id.
    @param seq The fill's number within the order (0, 1, ...).
    @param qty Shares filled (<= unfilled).
    @param price_fen Fill price.
    @param fee_fen Broker fee (commission, stamp duty, transfer fee).
    @param ref The exchange fill reference (non-zero; logged for reconciliation).
    """
    self._check_role(IIdentityRegistry.Role.BROKER, "margin: caller is not broker")
    self._settle_fill(order_id, seq, qty, price_fen, fee_fen, ref)


@external
def settle_fills(
    order_ids: DynArray[uint256, MAX_BATCH],
    seqs: DynArray[uint256, MAX_BATCH],
    qtys: DynArray[uint256, MAX_BATCH],
    prices_fen: DynArray[uint256, MAX_BATCH],
    fees_fen: DynArray[uint256, MAX_BATCH],
    refs: DynArray[bytes32, MAX_BATCH],
) -> uint256:
    """
    @notice Broker: up to 64 fills in one call, each exactly as `settle_fill` (same checks,
            same events); any failure reverts the whole batch.
    @param order_ids The order of each fill.
    @param seqs Each fill's number within its order (two fills of one order: consecutive).
    @param qtys Shares filled.
    @param prices_fen Fill prices.
    @param fees_fen Broker fees.
    @param refs The exchange fill references (logged).
    @return The number of fills settled.
    """
    self._check_role(IIdentityRegistry.Role.BROKER, "margin: caller is not broker")
    n: uint256 = len(order_ids)
    assert len(seqs) == n and len(qtys) == n and len(prices_fen) == n and len(fees_fen) == n and len(refs) == n, (
        "margin: length mismatch"
    )
    for i: uint256 in range(n, bound=MAX_BATCH):
        self._settle_fill(order_ids[i], seqs[i], qtys[i], prices_fen[i], fees_fen[i], refs[i])
    return n


@internal
def _settle_fill(order_id: uint256, seq: uint256, qty: uint256, price_fen: uint256, fee_fen: uint256, ref: bytes32):
    o: Order = empty(Order)
    gen: uint256 = 0
    fills: uint256 = 0
    o, gen, fills = self._load(order_id, False)
    assert gen != 0, "orderbook: unknown order"
    # exactly once: the fill's number is the order's next (a retry finds it taken)
    assert seq >= fills, "orderbook: fill already settled"
    assert seq == fills, "orderbook: fill out of sequence"
    assert o.open, "margin: order not open"
    assert ref != empty(bytes32), "margin: empty fill reference"
    assert fills < M16, "orderbook: too many fills"
    fills += 1
    assert qty > 0 and o.filled_qty + qty <= o.qty, "margin: fill exceeds order"
    gross: uint256 = qty * price_fen
    o.filled_qty += qty
    closes: bool = o.filled_qty == o.qty
    cost: uint256 = gross + fee_fen
    financed: uint256 = 0  # buys: the part of the cost paid from the order's financing
    if o.is_buy:
        assert price_fen <= o.limit_price_fen, "margin: fill above limit"
        assert cost <= o.reserved_fen, "margin: fill exceeds reserved cash"
        o.reserved_fen -= cost
        # fills spend the account's own cash first: financing is the last part reserved
        financed = o.drawn_fen - min(o.drawn_fen, o.reserved_fen)
        o.drawn_fen -= financed
    else:
        low: uint256 = o.limit_price_fen
        if o.liquidation:
            # a liquidation sells at any legal price of the day it fills
            high: uint256 = 0
            low, high = staticcall ORACLE.band(o.code)
        assert price_fen >= low, "margin: fill below limit"
        assert not staticcall ORACLE.is_sealed_limit_down(o.code), "margin: sealed limit-down"
        assert gross > fee_fen, "margin: fee exceeds proceeds"
    if o.is_buy:
        # a buy fill that completes the order closes it in the same engine call
        released: uint256 = 0
        drawn: uint256 = 0
        if closes:
            released = o.reserved_fen
            drawn = o.drawn_fen
            o.open = False
            o.reserved_fen = 0
            o.drawn_fen = 0
        self.packed[order_id & M38] = self._pack(o, gen, fills)
        # the certificates first: their mint gives the trading day of the T+1 lock (the
        # oracle's, mirrored there) to the engine
        day: uint256 = extcall SHARES.mint_fill(o.code, qty, ref)
        extcall ENGINE.ob_fill_buy(order_id & M32, o.code, qty, cost, financed, msg.sender, closes, released, drawn, day)
        log Filled(order_id=order_id, ref=ref, qty=qty, price_fen=price_fen, fee_fen=fee_fen, filled_after=o.filled_qty)
        if closes:
            log OrderClosed(order_id=order_id, filled_qty=o.filled_qty, released_fen=released)
        return
    self.packed[order_id & M38] = self._pack(o, gen, fills)
    extcall ENGINE.ob_fill_sell(order_id & M32, o.code, qty, gross, fee_fen, o.liquidation, closes, msg.sender)
    extcall SHARES.burn_fill(o.code, qty, ref)
    log Filled(order_id=order_id, ref=ref, qty=qty, price_fen=price_fen, fee_fen=fee_fen, filled_after=o.filled_qty)
    if closes:
        self._close(order_id, o, gen, fills)


@external
def cancel_order(order_id: uint256):
    """
    @notice Broker: the unfilled remainder of an order is dead (expired, rejected, day end);
            release it.
    @param order_id The order id.
    """
    self._check_role(IIdentityRegistry.Role.BROKER, "margin: caller is not broker")
    o: Order = empty(Order)
    gen: uint256 = 0
    fills: uint256 = 0
    o, gen, fills = self._load(order_id, False)
    assert o.open, "margin: order not open"
    self._close(order_id, o, gen, fills)
