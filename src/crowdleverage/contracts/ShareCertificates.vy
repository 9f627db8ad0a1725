# pragma version ~=0.4.3
"""
@title ShareCertificates
@custom:contract-name ShareCertificates
@notice Tokenized share certificates: one balance per (holder, security code) mirroring the
        broker's custody position. The broker role mints on a buy fill and burns on a sell
        fill, each with a fill reference used once. Shares minted on trading day D are locked
        until the PriceOracle's trading-day counter exceeds D (T+1). Holders transfer only
        unlocked shares between verified identities; the operator role may force a transfer
        (liquidation), which may move locked shares and carries their lock along.
        Security codes are the six-digit code as an integer: "600000" -> 600000.
@custom:security Supply per security must equal the broker's custody position (DESIGN.md §8.8);
        every supply change carries the broker's fill reference. Forced transfers are an
        operator power for liquidation only: watch `ForcedTransfer`.
@custom:kill The operator role calls `pause()`: transfers, mints and burns revert with
        "shares: paused"; forced transfers (liquidation) still work.
"""

# ---------------------------------------------------------------- interfaces
from .interfaces import IIdentityRegistry
from .interfaces import IPriceOracle
from .interfaces import IShareCertificates

implements: IShareCertificates



# ---------------------------------------------------------------- events
event Minted:
    holder: indexed(address)
    code: indexed(uint256)
    ref: indexed(bytes32)
    qty: uint256
    day: uint256
    supply_after: uint256


event Burned:
    holder: indexed(address)
    code: indexed(uint256)
    ref: indexed(bytes32)
    qty: uint256
    supply_after: uint256


event Transferred:
    sender: indexed(address)
    receiver: indexed(address)
    code: indexed(uint256)
    qty: uint256


event Paused:
    account: address


event Unpaused:
    account: address


event CustodySet:
    holder: indexed(address)
    by: indexed(address)


event SecurityListed:
    code: indexed(uint256)
    by: indexed(address)


event ForcedTransfer:
    holder: indexed(address)
    receiver: indexed(address)
    code: indexed(uint256)
    qty: uint256
    locked_qty: uint256
    by: address


# ---------------------------------------------------------------- structs
struct Lock:
    qty: uint256  # shares minted on `day`, not movable before the next trading day
    day: uint256

# ---------------------------------------------------------------- constants
CODE_LIMIT: constant(uint256) = 1_000_000

# ---------------------------------------------------------------- storage
# Who holds the BROKER / OPERATOR roles and who is verified.
REGISTRY: public(immutable(IIdentityRegistry))

# The trading-day counter (T+1 clock) lives in the oracle, advanced at each day open.
ORACLE: public(immutable(IPriceOracle))

# Per holder and security, one slot (a mint writes one slot, not two): shares held (128
# bits) | shares minted on the lock's day (64 << 128) | that day (64 << 192). The lock counts
# only while its day is today. Read with `balance_of` and `locks`.
holding: HashMap[address, HashMap[uint256, uint256]]
M128: constant(uint256) = 2**128 - 1
M64: constant(uint256) = 2**64 - 1

# Per security, one slot: shares outstanding (80 bits; reconciled against the broker's
# custody position) | the custody holder's balance (80 << 80) | its lock: shares minted on
# the lock's day (56 << 160) and that day (39 << 216) | listed for custody (1 << 255). A
# fill's mint or burn for the custody holder (the MarginEngine, which holds every financed
# position) writes one slot. The operator lists each security once (`list_securities`, with
# the risk parameters' listing), which makes its slot non-zero: the platform's first buy of
# it rewrites a slot (2,900 gas) instead of creating one (20,000), and selling out leaves it
# (an unlisted security still mints, creating the slot). Read with `total_supply` and
# `listed` (other holders' words stay in `holding`).
supply_word: HashMap[uint256, uint256]
M80: constant(uint256) = 2**80 - 1
M56: constant(uint256) = 2**56 - 1
M39: constant(uint256) = 2**39 - 1
LISTED: constant(uint256) = 2**255
MAX_LIST: constant(uint256) = 64  # securities per `list_securities`

# The custody holder (160 bits), set once by the operator before any mint
# (`set_custody`), | whether any certificate was minted (1 << 160) | the operator's pause
# (1 << 161) | the oracle's trading day (32 << 162; 0 until the oracle names this contract
# its day sink, `PriceOracle.set_day_sink`, which then tells it every new day): a mint, burn
# or transfer reads one slot for all. The custody holder's side of a mint or a transfer
# skips the registry's receiver check (it is a platform contract checked when set). A fill's
# mint takes the day from here (no oracle call) and gives it to the OrderBook for the
# engine's T+1 lot. Getters `custody`, `paused`, `trading_day`.
custody_word: uint256
MINTED: constant(uint256) = 2**160
PAUSED: constant(uint256) = 2**161
DAY_SHIFT: constant(uint256) = 162
M32: constant(uint256) = 2**32 - 1

# Broker references already consumed by a mint or burn (corporate actions, custody
# corrections, direct fills). The OrderBook's fills for the custody holder (`mint_fill`,
# `burn_fill`) record none: the OrderBook settles each fill once by its order's fill
# sequence, and the fill reference rides in the event for reconciliation.
ref_used: public(HashMap[bytes32, bool])


# The custody holder's order book (the MarginEngine's `orderbook`), the only caller of the
# fill paths.
interface ICustodyEngine:
    def orderbook() -> address: view


@deploy
def __init__(registry: IIdentityRegistry, oracle: IPriceOracle):
    assert registry.address != empty(address), "shares: zero registry"
    assert oracle.address != empty(address), "shares: zero oracle"
    REGISTRY = registry
    ORACLE = oracle


# ---------------------------------------------------------------- internal logic: checks
@internal
@view
def _check_broker():
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.BROKER), (
        "shares: caller is not broker"
    )


@internal
@view
def _check_operator():
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.OPERATOR), (
        "shares: caller is not operator"
    )


@internal
@view
def _check_not_paused():
    assert self.custody_word & PAUSED == 0, "shares: paused"


@internal
@pure
def _check_code(code: uint256):
    assert code > 0 and code < CODE_LIMIT, "shares: bad security code"


@internal
@view
def _check_ref(ref: bytes32):
    assert ref != empty(bytes32), "shares: empty reference"
    assert not self.ref_used[ref], "shares: reference already used"


@internal
@view
def _check_receiver(account: address, custody: address):
    assert account != empty(address), "shares: zero address"
    if account != custody:
        assert staticcall REGISTRY.is_verified(account), "shares: receiver not verified"


# ---------------------------------------------------------------- internal logic: locks
@external
@view
def locks(holder: address, code: uint256) -> Lock:
    """
    @notice The last lock of `holder` in `code`: shares minted on `day` (locked while that
            day is today).
    """
    w: uint256 = self._load(holder, code, self._custody())
    return Lock(qty=w >> 128 & M64, day=w >> 192)


@external
@view
def balance_of(holder: address, code: uint256) -> uint256:
    """
    @notice Shares of `code` held by `holder`.
    """
    return self._load(holder, code, self._custody()) & M128


@external
@view
def total_supply(code: uint256) -> uint256:
    """
    @notice Shares of `code` outstanding.
    @param code Security code.
    @return The supply.
    """
    return self.supply_word[code] & M80


@external
@view
def listed(code: uint256) -> bool:
    """
    @notice Whether the operator listed `code` for custody (`list_securities`).
    @param code Security code.
    @return True when listed.
    """
    return self.supply_word[code] & LISTED != 0


@external
@view
def paused() -> bool:
    """
    @notice Whether the operator paused transfers, mints and burns.
    @return True when paused.
    """
    return self.custody_word & PAUSED != 0


@external
@view
def custody() -> address:
    """
    @notice The custody holder (the MarginEngine; zero before `set_custody`).
    @return The address.
    """
    return self._custody()


@internal
@view
def _today(cw: uint256) -> uint256:
    """
    @dev The trading day: the oracle's, mirrored in the custody word once the oracle names
         this contract its day sink (the same value: the oracle writes both in `open_day`).
    """
    day: uint256 = cw >> DAY_SHIFT
    if day == 0:
        return staticcall ORACLE.trading_day()
    return day


@external
@view
def trading_day() -> uint256:
    """
    @notice The oracle's trading day, as the fills' T+1 locks take it.
    @return The day.
    """
    return self._today(self.custody_word)


@external
def oracle_day(day: uint256):
    """
    @notice The PriceOracle (`open_day`, `set_day_sink`): the trading day is now `day`.
    @param day The oracle's trading day.
    """
    assert msg.sender == ORACLE.address, "shares: caller is not oracle"
    assert day > 0 and day <= M32, "shares: bad day"
    cw: uint256 = self.custody_word
    self.custody_word = cw & (2**DAY_SHIFT - 1) | day << DAY_SHIFT


@internal
@view
def _custody() -> address:
    return convert(convert(self.custody_word & (2**160 - 1), uint160), address)


@internal
@view
def _load(holder: address, code: uint256, custody: address) -> uint256:
    """
    @dev The holding word of `holder` in `code` (balance | lock qty << 128 | day << 192),
         from the security's slot for the custody holder.
    """
    if holder == custody:
        c: uint256 = self.supply_word[code]
        return c >> 80 & M80 | (c >> 160 & M56) << 128 | (c >> 216 & M39) << 192
    return self.holding[holder][code]


@internal
def _supply(code: uint256, supply: uint256):
    assert supply <= M80, "shares: quantity too large"
    self.supply_word[code] = self.supply_word[code] >> 80 << 80 | supply


@internal
@pure
def _locked(w: uint256, today: uint256) -> uint256:
    if w >> 192 == today:
        return w >> 128 & M64
    # dev: lock.day < today because the day counter only grows
    return 0


@internal
def _put(holder: address, code: uint256, w: uint256, bal: uint256, custody: address):
    """
    @dev Write the balance `bal` into the holding word `w` (its lock kept).
    """
    assert bal <= M128, "shares: quantity too large"
    if holder == custody:
        lq: uint256 = w >> 128 & M64
        day: uint256 = w >> 192
        assert bal <= M80 and lq <= M56 and day <= M39, "shares: quantity too large"
        c: uint256 = self.supply_word[code]
        self.supply_word[code] = c & (M80 | LISTED) | bal << 80 | lq << 160 | day << 216
    else:
        self.holding[holder][code] = w >> 128 << 128 | bal


@internal
@pure
def _with_lock(w: uint256, locked: uint256, today: uint256) -> uint256:
    # dev: the oracle's day counter stays below 2**64 (`open_day`)
    assert locked <= M64, "shares: quantity too large"
    return w & M128 | locked << 128 | today << 192


@internal
@pure
def _check_unlocked(w: uint256, qty: uint256, today: uint256):
    bal: uint256 = w & M128
    assert bal >= qty, "shares: insufficient balance"
    # dev: locked <= balance always (locks are only added with balance and carried with it)
    assert bal - self._locked(w, today) >= qty, "shares: locked until next trading day"


# ---------------------------------------------------------------- external: views
@external
@view
def unlocked_balance_of(holder: address, code: uint256) -> uint256:
    """
    @notice Shares of `code` that `holder` may move or sell today.
    """
    w: uint256 = self._load(holder, code, self._custody())
    return (w & M128) - self._locked(w, staticcall ORACLE.trading_day())


@external
@view
def locked_balance_of(holder: address, code: uint256) -> uint256:
    """
    @notice Shares of `code` bought today by `holder` (T+1 locked).
    """
    return self._locked(self._load(holder, code, self._custody()), staticcall ORACLE.trading_day())


# ---------------------------------------------------------------- external: holders
@external
def transfer(to: address, code: uint256, qty: uint256):
    """
    @notice Move `qty` unlocked shares of `code` to `to`; both must be verified.
    """
    self._check_not_paused()
    self._check_code(code)
    assert qty > 0, "shares: zero quantity"
    assert staticcall REGISTRY.is_verified(msg.sender), "shares: sender not verified"
    custody: address = self._custody()
    self._check_receiver(to, custody)
    w: uint256 = self._load(msg.sender, code, custody)
    self._check_unlocked(w, qty, staticcall ORACLE.trading_day())
    self._put(msg.sender, code, w, (w & M128) - qty, custody)
    w = self._load(to, code, custody)
    self._put(to, code, w, (w & M128) + qty, custody)
    log Transferred(sender=msg.sender, receiver=to, code=code, qty=qty)


# ---------------------------------------------------------------- external: broker
@external
def mint(holder: address, code: uint256, qty: uint256, ref: bytes32):
    """
    @notice Broker: certificates for a buy fill `ref`; locked until the next trading day.
    @param holder The verified receiver (the engine for financed positions).
    @param code Security code (1..999999).
    @param qty Shares minted, all T+1 locked today.
    @param ref The broker's fill reference, used once.
    """
    self._mint(holder, code, qty, qty, ref)


@external
def mint_adjustment(holder: address, code: uint256, qty: uint256, locked_qty: uint256, ref: bytes32):
    """
    @notice Broker: certificates added by a corporate action (送股/转增) with reference
            `ref`; `locked_qty` of them carry today's T+1 lock (the locked part of the
            holding scaled by the same factor), the rest are movable at once.
    @param holder The verified receiver (the engine for financed positions).
    @param code Security code (1..999999).
    @param qty Shares added.
    @param locked_qty Part of `qty` locked until the next trading day (<= qty).
    @param ref The broker's corporate-action reference, used once.
    """
    assert locked_qty <= qty, "shares: locked above quantity"
    self._mint(holder, code, qty, locked_qty, ref)


@internal
def _mint(holder: address, code: uint256, qty: uint256, locked_qty: uint256, ref: bytes32):
    self._check_broker()
    self._check_not_paused()
    self._check_code(code)
    assert qty > 0, "shares: zero quantity"
    self._check_ref(ref)
    cw: uint256 = self.custody_word
    custody: address = self._custody()
    self._check_receiver(holder, custody)
    self.ref_used[ref] = True
    self._mint_to(holder, code, qty, locked_qty, ref, cw, custody, self._today(cw))


@internal
@view
def _check_fill_caller() -> (uint256, address):
    """
    @dev The custody word and holder, the caller checked to be the custody holder's order
         book (a fill path: no broker role, no reference recorded).
    """
    cw: uint256 = self.custody_word
    custody: address = convert(convert(cw & (2**160 - 1), uint160), address)
    assert custody != empty(address) and msg.sender == staticcall ICustodyEngine(custody).orderbook(), (
        "shares: caller is not order book"
    )
    return cw, custody


@external
def mint_fill(code: uint256, qty: uint256, ref: bytes32) -> uint256:
    """
    @notice The custody holder's OrderBook: certificates for its buy fill `ref`, minted to
            the custody holder and T+1 locked. The OrderBook settles each fill once (by its
            order's fill sequence); `ref` is logged, not recorded.
    @param code Security code (1..999999).
    @param qty Shares minted, all locked until the next trading day.
    @param ref The broker's exchange fill reference (for reconciliation).
    @return The trading day of the lock (the OrderBook gives it to the engine's T+1 lot).
    """
    cw: uint256 = 0
    custody: address = empty(address)
    cw, custody = self._check_fill_caller()
    assert cw & PAUSED == 0, "shares: paused"
    self._check_code(code)
    assert qty > 0, "shares: zero quantity"
    today: uint256 = self._today(cw)
    self._mint_to(custody, code, qty, qty, ref, cw, custody, today)
    return today


@internal
def _mint_to(holder: address, code: uint256, qty: uint256, locked_qty: uint256, ref: bytes32, cw: uint256, custody: address, today: uint256):
    """
    @dev Credit `qty` shares (`locked_qty` of them locked `today`) after the caller's checks.
    """
    if cw & MINTED == 0:
        self.custody_word = cw | MINTED
    supply: uint256 = 0
    if holder == custody:
        # the custody holder's balance, lock and the supply: one slot read, one written
        c: uint256 = self.supply_word[code]
        supply = (c & M80) + qty
        bal: uint256 = (c >> 80 & M80) + qty
        lq: uint256 = c >> 160 & M56
        day: uint256 = c >> 216 & M39
        if locked_qty > 0:
            if day != today:
                # dev: the lock's day is before today (the day counter only grows)
                lq = 0
            lq += locked_qty
            day = today
        assert supply <= M80 and bal <= M80 and lq <= M56 and day <= M39, "shares: quantity too large"
        self.supply_word[code] = c & LISTED | supply | bal << 80 | lq << 160 | day << 216
        log Minted(holder=holder, code=code, ref=ref, qty=qty, day=today, supply_after=supply)
        return
    w: uint256 = self._load(holder, code, custody)
    if locked_qty > 0:
        w = self._with_lock(w, self._locked(w, today) + locked_qty, today)
    self._put(holder, code, w, (w & M128) + qty, custody)
    supply = (self.supply_word[code] & M80) + qty
    self._supply(code, supply)
    log Minted(holder=holder, code=code, ref=ref, qty=qty, day=today, supply_after=supply)


@external
def burn(holder: address, code: uint256, qty: uint256, ref: bytes32):
    """
    @notice Broker: retire certificates for a sell fill `ref`; only unlocked shares sell.
    """
    self._check_broker()
    self._check_not_paused()
    self._check_code(code)
    assert qty > 0, "shares: zero quantity"
    self._check_ref(ref)
    self.ref_used[ref] = True
    self._burn_from(holder, code, qty, ref, self._custody())


@external
def burn_fill(code: uint256, qty: uint256, ref: bytes32):
    """
    @notice The custody holder's OrderBook: retire the custody holder's certificates for
            its sell fill `ref` (only unlocked shares sell); `ref` is logged, not recorded.
    @param code Security code.
    @param qty Shares retired.
    @param ref The broker's exchange fill reference (for reconciliation).
    """
    cw: uint256 = 0
    custody: address = empty(address)
    cw, custody = self._check_fill_caller()
    self._check_not_paused()
    self._check_code(code)
    assert qty > 0, "shares: zero quantity"
    self._burn_from(custody, code, qty, ref, custody)


@internal
def _burn_from(holder: address, code: uint256, qty: uint256, ref: bytes32, custody: address):
    """
    @dev Retire `qty` unlocked shares after the caller's checks.
    """
    w: uint256 = self._load(holder, code, custody)
    self._check_unlocked(w, qty, staticcall ORACLE.trading_day())
    self._put(holder, code, w, (w & M128) - qty, custody)
    supply: uint256 = (self.supply_word[code] & M80) - qty
    self._supply(code, supply)
    log Burned(holder=holder, code=code, ref=ref, qty=qty, supply_after=supply)


# ---------------------------------------------------------------- external: operator
@external
def forced_transfer(holder: address, to: address, code: uint256, qty: uint256):
    """
    @notice Operator: move `qty` shares of `code` from `holder` to `to` (liquidation).
            Unlocked shares move first; locked ones keep their lock at the receiver.
    """
    self._check_operator()
    self._check_code(code)
    assert qty > 0, "shares: zero quantity"
    assert holder != to, "shares: transfer to self"
    custody: address = self._custody()
    self._check_receiver(to, custody)
    w: uint256 = self._load(holder, code, custody)
    bal: uint256 = w & M128
    assert bal >= qty, "shares: insufficient balance"
    today: uint256 = staticcall ORACLE.trading_day()
    locked: uint256 = self._locked(w, today)
    unlocked: uint256 = bal - locked
    moved_locked: uint256 = 0
    if qty > unlocked:
        moved_locked = qty - unlocked
        w = self._with_lock(w, locked - moved_locked, today)
    self._put(holder, code, w, bal - qty, custody)
    v: uint256 = self._load(to, code, custody)
    if moved_locked > 0:
        v = self._with_lock(v, self._locked(v, today) + moved_locked, today)
    self._put(to, code, v, (v & M128) + qty, custody)
    log ForcedTransfer(
        holder=holder, receiver=to, code=code, qty=qty, locked_qty=moved_locked, by=msg.sender
    )


@external
def set_custody(holder: address):
    """
    @notice Operator, once and before any certificate is minted: name the custody holder
            (the MarginEngine, a contract holding the PLATFORM role), whose holdings share
            each security's slot with the supply and whose receiving side skips the
            registry check (like a platform contract marked at CashToken).
    @param holder The custody holder.
    """
    self._check_operator()
    cw: uint256 = self.custody_word
    assert cw & (2**160 - 1) == 0, "shares: custody already set"
    assert cw & MINTED == 0, "shares: certificates already minted"
    assert holder.is_contract and staticcall REGISTRY.has_role(
        holder, IIdentityRegistry.Role.PLATFORM
    ), "shares: not a platform contract"
    self.custody_word = cw | convert(holder, uint256)
    log CustodySet(holder=holder, by=msg.sender)


@external
def list_securities(codes: DynArray[uint256, MAX_LIST]):
    """
    @notice Operator, once per security (with its listing at RiskParams): list securities
            for custody. Each one's slot is made non-zero here, so the platform's first buy
            of it rewrites a slot instead of creating one; an unlisted security still mints.
            A code already listed is skipped. Event `SecurityListed` per code listed.
    @param codes Security codes (1..999999), at most 64.
    """
    self._check_operator()
    for code: uint256 in codes:
        self._check_code(code)
        c: uint256 = self.supply_word[code]
        if c & LISTED == 0:
            self.supply_word[code] = c | LISTED
            log SecurityListed(code=code, by=msg.sender)


@external
def pause():
    """
    @notice Operator: stop transfers, mints and burns (forced transfers still work).
    """
    self._check_operator()
    assert self.custody_word & PAUSED == 0, "shares: already paused"
    self.custody_word |= PAUSED
    log Paused(account=msg.sender)


@external
def unpause():
    """
    @notice Operator: resume after a pause.
    """
    self._check_operator()
    assert self.custody_word & PAUSED != 0, "shares: not paused"
    self.custody_word &= ~PAUSED
    log Unpaused(account=msg.sender)
