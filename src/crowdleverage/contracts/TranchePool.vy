# pragma version ~=0.4.3
"""
@title TranchePool
@custom:contract-name TranchePool
@notice The fund pool lent to margin borrowers, split into a senior (优先级) and a junior
        (劣后级) tranche, each an ERC-20 `TrancheShare`. Investors queue subscriptions (cash
        in escrow) and redemptions (shares in escrow) during an epoch; `close_epoch` then
        (1) distributes the interest received: senior target yield, insurance premium,
        platform fee, junior residual; (2) marks the engine's provisional liquidation losses
        beyond the insurance fund against junior then senior NAV; (3) executes the queues in
        the order senior redemptions, junior redemptions, junior subscriptions, senior
        subscriptions, each partially filled pro rata when the liquidity buffer or the
        minimum junior ratio binds; the rest stays queued. Payouts are pulled (`withdraw`).
        Accounting is internal: idle + principal_out = senior_claim + junior_claim +
        interest_pending (DESIGN.md §8.4); a donation of cash changes nothing.
@custom:security Shares are priced with a virtual offset (1,000 units, 1 fen) so the first
        depositor cannot inflate the share price. Only the MarginEngine draws and repays; a
        realised shortfall goes to the insurance fund first, then junior, then senior, and a
        senior loss is recorded in `senior_loss_fen` and the `SeniorLoss` event.
@custom:kill The operator pauses the MarginEngine: `close_epoch` and `subscribe` revert with
        "pool: paused" and the engine draws nothing (its buys revert with "margin: paused");
        repayments and loss absorption still work.
"""

# ---------------------------------------------------------------- interfaces
from .interfaces import ICashToken
from .interfaces import IIdentityRegistry
from .interfaces import IInsuranceFund
from .interfaces import IMarginEngine
from .interfaces import ITrancheShare

# ---------------------------------------------------------------- events
event Queued:
    investor: indexed(address)
    queue: indexed(uint256)
    amount: uint256
    queued_after: uint256


event Cancelled:
    investor: indexed(address)
    queue: indexed(uint256)
    amount: uint256


event Executed:
    investor: indexed(address)
    queue: indexed(uint256)
    epoch: indexed(uint256)
    amount_in: uint256
    amount_out: uint256


event InterestDistributed:
    epoch: indexed(uint256)
    interest_fen: uint256
    senior_fen: uint256
    insurance_fen: uint256
    platform_fee_fen: uint256
    junior_fen: uint256


event EpochClosed:
    epoch: indexed(uint256)
    senior_claim_fen: uint256
    junior_claim_fen: uint256
    senior_nav_fen: uint256
    junior_nav_fen: uint256
    idle_fen: uint256
    principal_out_fen: uint256


event Drawn:
    amount_fen: uint256
    principal_out_after_fen: uint256


event Repaid:
    principal_fen: uint256
    interest_fen: uint256
    principal_out_after_fen: uint256


event ShortfallAbsorbed:
    principal_fen: uint256
    insurance_fen: uint256
    junior_fen: uint256
    senior_fen: uint256


event SeniorLoss:
    amount_fen: uint256
    senior_loss_total_fen: uint256


event ParamsSet:
    by: indexed(address)
    min_junior_bps: uint256
    max_util_bps: uint256
    senior_apr_bps: uint256
    premium_bps: uint256
    fee_bps: uint256
    epoch_s: uint256


event Withdrawn:
    investor: indexed(address)
    amount_fen: uint256


# ---------------------------------------------------------------- constants
BPS: constant(uint256) = 10_000
YEAR_S: constant(uint256) = 365 * 86_400
VIRTUAL_SHARES: constant(uint256) = 1_000
VIRTUAL_ASSETS: constant(uint256) = 1
MAX_QUEUE: constant(uint256) = 32
# Queues in execution priority.
SENIOR_REDEEM: constant(uint256) = 0
JUNIOR_REDEEM: constant(uint256) = 1
JUNIOR_SUBSCRIBE: constant(uint256) = 2
SENIOR_SUBSCRIBE: constant(uint256) = 3

# ---------------------------------------------------------------- storage
# Platform cash (fen) and identity registry.
CASH: public(immutable(ICashToken))
REGISTRY: public(immutable(IIdentityRegistry))

# The two tranche share tokens, created from a blueprint so that this pool is their minter.
SENIOR: public(immutable(ITrancheShare))
JUNIOR: public(immutable(ITrancheShare))

# The only borrower of the pool, fixed at deployment (the deployer computes the engine's
# address from its own address and nonce: the engine is created after this pool, with its
# address), so the engine's calls (draw, settle, repay, write-off) read no slot for it.
ENGINE: immutable(address)

# Set once by the operator: the engine confirmed (`connect`: the pool is open from then on)
# and the fund that covers losses. The confirmed engine (160 bits) and the maximum
# utilisation in bps (32 << 160, set by the operator) share one slot: a draw reads it.
# Getters `engine`, `max_util_bps`.
wiring: uint256
M32: constant(uint256) = 2**32 - 1
insurance: public(IInsuranceFund)

# Receiver of the platform fee on interest.
fee_recipient: public(address)

# In one slot (a draw, a fill's settlement and a repayment touch them together): cash the
# pool owns and has not lent out (80 bits) | principal currently lent to the MarginEngine
# (80 << 80; interest is booked when paid) | interest received since the last epoch close,
# awaiting distribution (48 << 160) | the financing drawn for open buy orders that their
# fills have not paid out yet (48 << 208: lent, counted in principal out, still held here; a
# fill pays the broker from it and the order's close returns the rest). Getters `idle_fen`,
# `principal_out_fen`, `interest_pending_fen`, `undisbursed_fen`. Idle + principal out -
# interest pending is the tranches' claims (the book's identity), so a draw checks
# utilisation against this one slot.
book: uint256
M80: constant(uint256) = 2**80 - 1
M48: constant(uint256) = 2**48 - 1
M128: constant(uint256) = 2**128 - 1
# Tranche claims on the pool; they sum with interest_pending to idle + principal_out.
# In one slot (a buy's exposure check reads their sum): senior (128 bits) | junior (128 <<
# 128). Getters `senior_claim_fen`, `junior_claim_fen`.
claims: uint256
# Cash held for others: queued subscriptions and unclaimed redemption payouts.
escrow_fen: public(uint256)
# Cumulative realised losses per tranche; a senior loss is the explicit deficit record.
junior_loss_fen: public(uint256)
senior_loss_fen: public(uint256)

# Parameters in bps (public: the transparency page shows them).
min_junior_bps: public(uint256)
senior_apr_bps: public(uint256)
premium_bps: public(uint256)
fee_bps: public(uint256)
epoch_s: public(uint256)

# Epoch counter and when the current epoch began.
epoch: public(uint256)
epoch_started_at: public(uint256)

# Queues: members in arrival order, amount per member (fen for subscriptions, share units
# for redemptions) and the queue total.
queue_members: public(HashMap[uint256, DynArray[address, MAX_QUEUE]])
queued: public(HashMap[uint256, HashMap[address, uint256]])
queue_total: public(HashMap[uint256, uint256])

# Redemption proceeds waiting to be pulled by each investor.
claimable_fen: public(HashMap[address, uint256])


@deploy
def __init__(
    cash: ICashToken,
    registry: IIdentityRegistry,
    share_blueprint: address,
    fee_recipient: address,
    engine: address,
):
    """
    @param engine The MarginEngine's address, created after this pool (with its address) by
           the same deployer: computed from the deployer's address and nonce; `connect`
           confirms it.
    """
    assert engine != empty(address), "pool: zero address"
    ENGINE = engine
    CASH = cash
    REGISTRY = registry
    SENIOR = ITrancheShare(
        create_from_blueprint(share_blueprint, "CrowdLeverage Senior", "CLSR", registry.address)
    )
    JUNIOR = ITrancheShare(
        create_from_blueprint(share_blueprint, "CrowdLeverage Junior", "CLJR", registry.address)
    )
    self.fee_recipient = fee_recipient
    self.min_junior_bps = 2_000
    self.wiring = 9_000 << 160
    self.senior_apr_bps = 500
    self.premium_bps = 1_000
    self.fee_bps = 1_000
    self.epoch_s = 86_400
    self.epoch_started_at = block.timestamp


# ---------------------------------------------------------------- internal: book
@internal
@view
def _idle() -> uint256:
    return self.book & M80


@internal
@view
def _out() -> uint256:
    return self.book >> 80 & M80


@internal
@view
def _pending() -> uint256:
    return self.book >> 160 & M48


@internal
@view
def _assets() -> uint256:
    """
    @dev Senior plus junior claims, from the book: idle + principal out - interest pending.
    """
    b: uint256 = self.book
    return (b & M80) + (b >> 80 & M80) - (b >> 160 & M48)


@internal
def _move(idle_add: uint256, idle_sub: uint256, out_add: uint256, out_sub: uint256, pending_add: uint256, pending_sub: uint256):
    b: uint256 = self.book
    idle: uint256 = (b & M80) + idle_add - idle_sub
    out: uint256 = (b >> 80 & M80) + out_add - out_sub
    pending: uint256 = (b >> 160 & M48) + pending_add - pending_sub
    assert idle <= M80 and out <= M80 and pending <= M48, "pool: amount too large"
    # dev: the undisbursed financing (bits 208..255) is kept
    self.book = idle | out << 80 | pending << 160 | b >> 208 << 208


@internal
@view
def _total_claims() -> uint256:
    c: uint256 = self.claims
    return (c & M128) + (c >> 128)


@internal
def _claims(senior_add: uint256, senior_sub: uint256, junior_add: uint256, junior_sub: uint256):
    c: uint256 = self.claims
    senior: uint256 = (c & M128) + senior_add - senior_sub
    junior: uint256 = (c >> 128) + junior_add - junior_sub
    assert senior <= M128 and junior <= M128, "pool: amount too large"
    self.claims = senior | junior << 128


# ---------------------------------------------------------------- internal: checks
@internal
@view
def _check_operator():
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.OPERATOR), (
        "pool: caller is not operator"
    )


@internal
@view
def _engine() -> IMarginEngine:
    return IMarginEngine(convert(convert(self.wiring & (2**160 - 1), uint160), address))


@internal
@view
def _max_util() -> uint256:
    return self.wiring >> 160 & M32


@internal
@view
def _check_engine():
    assert msg.sender == ENGINE, "pool: caller is not engine"


@internal
@view
def _check_open():
    assert self._engine().address != empty(address), "pool: not connected"
    assert not staticcall self._engine().paused(), "pool: paused"


@internal
@view
def _share(queue: uint256) -> ITrancheShare:
    if queue == SENIOR_REDEEM or queue == SENIOR_SUBSCRIBE:
        return SENIOR
    return JUNIOR


# ---------------------------------------------------------------- internal: pricing
@internal
@pure
def _to_shares(amount_fen: uint256, supply: uint256, nav_fen: uint256) -> uint256:
    # rounds down: the subscriber gets no more than paid for
    return amount_fen * (supply + VIRTUAL_SHARES) // (nav_fen + VIRTUAL_ASSETS)


@internal
@pure
def _to_fen(shares: uint256, supply: uint256, nav_fen: uint256) -> uint256:
    # rounds down: the redeemer gets no more than the shares are worth
    return shares * (nav_fen + VIRTUAL_ASSETS) // (supply + VIRTUAL_SHARES)


@internal
@view
def _navs() -> (uint256, uint256, uint256):
    """
    @dev Tranche NAVs after marking the engine's provisional losses beyond the insurance
         fund: junior first, then senior. Returns (senior_nav, junior_nav, unmarked_excess).
    """
    provision: uint256 = staticcall self._engine().marked_loss_fen()
    cover: uint256 = staticcall self.insurance.balance_fen()
    excess: uint256 = 0
    if provision > cover:
        excess = provision - cover
    junior: uint256 = (self.claims >> 128)
    senior: uint256 = (self.claims & M128)
    j_cut: uint256 = min(excess, junior)
    s_cut: uint256 = min(excess - j_cut, senior)
    return senior - s_cut, junior - j_cut, excess


# ---------------------------------------------------------------- internal: epoch
@internal
def _distribute_interest(elapsed_s: uint256):
    interest: uint256 = self._pending()
    if interest == 0:
        return
    senior_due: uint256 = (self.claims & M128) * self.senior_apr_bps * elapsed_s // (BPS * YEAR_S)
    to_senior: uint256 = min(interest, senior_due)
    rest: uint256 = interest - to_senior
    premium: uint256 = min(rest, interest * self.premium_bps // BPS)
    rest -= premium
    fee: uint256 = min(rest, interest * self.fee_bps // BPS)
    to_junior: uint256 = rest - fee
    self._move(0, premium + fee, 0, 0, 0, interest)
    self._claims(to_senior, 0, 0, 0)
    self._claims(0, 0, to_junior, 0)
    if premium > 0:
        extcall CASH.transfer(self.insurance.address, premium)
        extcall self.insurance.credit(premium, 1)
    if fee > 0:
        extcall CASH.transfer(self.fee_recipient, fee)
    log InterestDistributed(
        epoch=self.epoch,
        interest_fen=interest,
        senior_fen=to_senior,
        insurance_fen=premium,
        platform_fee_fen=fee,
        junior_fen=to_junior,
    )


@internal
def _redeem_queue(queue: uint256, nav_fen: uint256, cap_fen: uint256) -> uint256:
    """
    @dev Pays redemptions of `queue` at `nav_fen`, pro rata when their value exceeds
         `cap_fen`. Returns the cash paid (credited to `claimable_fen`).
    """
    total: uint256 = self.queue_total[queue]
    if total == 0:
        return 0
    share: ITrancheShare = self._share(queue)
    supply: uint256 = staticcall share.totalSupply()
    value: uint256 = self._to_fen(total, supply, nav_fen)
    num: uint256 = 1
    den: uint256 = 1
    if value > cap_fen:
        num = cap_fen
        den = value
    paid: uint256 = 0
    burned: uint256 = 0
    keep: DynArray[address, MAX_QUEUE] = []
    for member: address in self.queue_members[queue]:
        amount: uint256 = self.queued[queue][member]
        take: uint256 = amount * num // den
        pay: uint256 = self._to_fen(take, supply, nav_fen)
        if take > 0:
            self.queued[queue][member] = amount - take
            self.claimable_fen[member] += pay
            burned += take
            paid += pay
            log Executed(
                investor=member, queue=queue, epoch=self.epoch, amount_in=take, amount_out=pay
            )
        if amount > take:
            keep.append(member)
    self.queue_members[queue] = keep
    self.queue_total[queue] = total - burned
    if burned > 0:
        extcall share.burn(self, burned)
    # dev: paid <= to_fen(burned) <= cap because floor sums never exceed the floor of the sum
    return paid


@internal
def _subscribe_queue(queue: uint256, nav_fen: uint256, cap_fen: uint256) -> uint256:
    total: uint256 = self.queue_total[queue]
    if total == 0:
        return 0
    share: ITrancheShare = self._share(queue)
    supply: uint256 = staticcall share.totalSupply()
    num: uint256 = 1
    den: uint256 = 1
    if total > cap_fen:
        num = cap_fen
        den = total
    taken: uint256 = 0
    keep: DynArray[address, MAX_QUEUE] = []
    for member: address in self.queue_members[queue]:
        amount: uint256 = self.queued[queue][member]
        take: uint256 = amount * num // den
        if take > 0:
            minted: uint256 = self._to_shares(take, supply, nav_fen)
            self.queued[queue][member] = amount - take
            taken += take
            extcall share.mint(member, minted)
            log Executed(
                investor=member, queue=queue, epoch=self.epoch, amount_in=take, amount_out=minted
            )
        if amount > take:
            keep.append(member)
    self.queue_members[queue] = keep
    self.queue_total[queue] = total - taken
    self.escrow_fen -= taken
    self._move(taken, 0, 0, 0, 0, 0)
    return taken


@internal
@view
def _liquidity_cap(assets_fen: uint256) -> uint256:
    """
    @dev Cash that may leave while keeping principal_out <= max_util * assets (rounded so
         the buffer is never breached) and never more than idle cash.
    """
    mu: uint256 = self._max_util()
    need: uint256 = (self._out() * BPS + mu - 1) // mu
    if assets_fen <= need:
        return 0
    return min(assets_fen - need, self._idle() - self._pending())


# ---------------------------------------------------------------- external: views
@external
@view
def senior_claim_fen() -> uint256:
    """
    @notice The senior tranche's claim on the pool.
    """
    return self.claims & M128


@external
@view
def junior_claim_fen() -> uint256:
    """
    @notice The junior tranche's claim on the pool.
    """
    return self.claims >> 128


@external
@view
def idle_fen() -> uint256:
    """
    @notice Cash the pool owns and has not lent out.
    """
    return self._idle()


@external
@view
def principal_out_fen() -> uint256:
    """
    @notice Principal currently lent to the MarginEngine (interest is booked when paid).
    """
    return self._out()


@external
@view
def interest_pending_fen() -> uint256:
    """
    @notice Interest received since the last epoch close, awaiting distribution.
    """
    return self._pending()


@external
@view
def total_assets_fen() -> uint256:
    """
    @notice Senior plus junior claims (what the pool owns, net of realised losses), read
            from the book (idle + principal out - interest pending, the same sum).
    """
    return self._assets()


@external
@view
def engine() -> IMarginEngine:
    """
    @notice The MarginEngine, the only borrower (zero before `connect`).
    """
    return self._engine()


@external
@view
def undisbursed_fen() -> uint256:
    """
    @notice Financing drawn for open buy orders and not paid out by their fills yet: lent
            (counted in principal out) and still held here.
    @return The amount in fen.
    """
    return self.book >> 208


@external
@view
def max_util_bps() -> uint256:
    """
    @notice Principal lent out may reach at most this share of pool assets, in bps.
    """
    return self._max_util()


@external
@view
def utilisation_bps() -> uint256:
    """
    @notice Principal lent out over pool assets, in bps (rounded up).
    """
    assets: uint256 = self._total_claims()
    if assets == 0:
        return 0
    return (self._out() * BPS + assets - 1) // assets


@external
@view
def navs() -> (uint256, uint256):
    """
    @notice (senior NAV, junior NAV) in fen after marking provisional liquidation losses.
    """
    s: uint256 = 0
    j: uint256 = 0
    e: uint256 = 0
    s, j, e = self._navs()
    return s, j


@external
@view
def rates() -> (uint256, uint256, uint256, uint256, uint256, uint256):
    """
    @notice (senior target APR, insurance premium, platform fee, min junior ratio, max
            utilisation, epoch seconds), rates in bps, for the transparency page.
    """
    return (
        self.senior_apr_bps,
        self.premium_bps,
        self.fee_bps,
        self.min_junior_bps,
        self._max_util(),
        self.epoch_s,
    )


# ---------------------------------------------------------------- external: investors
@external
def subscribe(senior: bool, amount_fen: uint256):
    """
    @notice Investor: queue a subscription of `amount_fen` (moved into escrow now; the caller
            must have approved the pool) to execute at an epoch close.
    """
    self._check_open()
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.INVESTOR), (
        "pool: caller is not investor"
    )
    assert amount_fen > 0, "pool: zero amount"
    queue: uint256 = JUNIOR_SUBSCRIBE
    if senior:
        queue = SENIOR_SUBSCRIBE
    self._enqueue(queue, amount_fen)
    extcall CASH.transferFrom(msg.sender, self, amount_fen)
    self.escrow_fen += amount_fen


@external
def redeem(senior: bool, shares: uint256):
    """
    @notice Investor: queue a redemption of `shares` units (moved into the pool's escrow).
            A frozen, expired or unverified identity cannot redeem (compliance holds).
    """
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.INVESTOR), (
        "pool: caller is not investor"
    )
    assert shares > 0, "pool: zero amount"
    queue: uint256 = JUNIOR_REDEEM
    if senior:
        queue = SENIOR_REDEEM
    share: ITrancheShare = self._share(queue)
    assert staticcall share.balanceOf(msg.sender) >= shares, "pool: insufficient shares"
    self._enqueue(queue, shares)
    extcall share.escrow(msg.sender, self, shares)


@internal
def _enqueue(queue: uint256, amount: uint256):
    before: uint256 = self.queued[queue][msg.sender]
    if before == 0:
        assert len(self.queue_members[queue]) < MAX_QUEUE, "pool: queue full"
        self.queue_members[queue].append(msg.sender)
    self.queued[queue][msg.sender] = before + amount
    self.queue_total[queue] += amount
    log Queued(investor=msg.sender, queue=queue, amount=amount, queued_after=before + amount)


@external
def cancel(queue: uint256):
    """
    @notice Investor: take back what is still queued in `queue` (0..3) for the caller.
    """
    assert queue <= SENIOR_SUBSCRIBE, "pool: unknown queue"
    amount: uint256 = self.queued[queue][msg.sender]
    assert amount > 0, "pool: nothing queued"
    self.queued[queue][msg.sender] = 0
    self.queue_total[queue] -= amount
    keep: DynArray[address, MAX_QUEUE] = []
    for member: address in self.queue_members[queue]:
        if member != msg.sender:
            keep.append(member)
    self.queue_members[queue] = keep
    if queue == JUNIOR_SUBSCRIBE or queue == SENIOR_SUBSCRIBE:
        self.escrow_fen -= amount
        extcall CASH.transfer(msg.sender, amount)
    else:
        extcall self._share(queue).escrow(self, msg.sender, amount)
    log Cancelled(investor=msg.sender, queue=queue, amount=amount)


@external
def withdraw():
    """
    @notice Investor: pull executed redemption proceeds.
    """
    amount: uint256 = self.claimable_fen[msg.sender]
    assert amount > 0, "pool: nothing to withdraw"
    self.claimable_fen[msg.sender] = 0
    self.escrow_fen -= amount
    extcall CASH.transfer(msg.sender, amount)
    log Withdrawn(investor=msg.sender, amount_fen=amount)


# ---------------------------------------------------------------- external: epoch
@external
def close_epoch():
    """
    @notice Anyone (the keeper): close the epoch once `epoch_s` has passed: distribute
            interest, mark losses, execute the queues by priority.
    """
    self._check_open()
    elapsed: uint256 = block.timestamp - self.epoch_started_at
    assert elapsed >= self.epoch_s, "pool: epoch not over"
    self._distribute_interest(elapsed)
    s_nav: uint256 = 0
    j_nav: uint256 = 0
    excess: uint256 = 0
    s_nav, j_nav, excess = self._navs()
    m: uint256 = self.min_junior_bps
    # 1. senior redemptions: liquidity buffer only
    paid: uint256 = self._redeem_queue(SENIOR_REDEEM, s_nav, self._liquidity_cap(s_nav + j_nav))
    self._pay_out(True, paid)
    s_nav -= paid
    # 2. junior redemptions: liquidity buffer and minimum junior ratio after the exit
    floor_j: uint256 = (m * (s_nav + j_nav) + BPS - 1) // BPS
    cap: uint256 = 0
    if j_nav > floor_j:
        cap = min((j_nav - floor_j) * BPS // (BPS - m), self._liquidity_cap(s_nav + j_nav))
    paid = self._redeem_queue(JUNIOR_REDEEM, j_nav, cap)
    self._pay_out(False, paid)
    j_nav -= paid
    # 3./4. subscriptions wait while unmarked provisional losses exceed the insurance fund
    if excess == 0:
        taken: uint256 = self._subscribe_queue(JUNIOR_SUBSCRIBE, j_nav, max_value(uint256))
        self._claims(0, 0, taken, 0)
        j_nav += taken
        room: uint256 = 0
        if m > 0 and j_nav * BPS // m > s_nav + j_nav:
            room = j_nav * BPS // m - s_nav - j_nav
        taken = self._subscribe_queue(SENIOR_SUBSCRIBE, s_nav, room)
        self._claims(taken, 0, 0, 0)
        s_nav += taken
    log EpochClosed(
        epoch=self.epoch,
        senior_claim_fen=(self.claims & M128),
        junior_claim_fen=(self.claims >> 128),
        senior_nav_fen=s_nav,
        junior_nav_fen=j_nav,
        idle_fen=self._idle(),
        principal_out_fen=self._out(),
    )
    self.epoch += 1
    self.epoch_started_at = block.timestamp


@internal
def _pay_out(senior: bool, paid_fen: uint256):
    if paid_fen == 0:
        return
    self._move(0, paid_fen, 0, 0, 0, 0)
    self.escrow_fen += paid_fen
    if senior:
        self._claims(0, paid_fen, 0, 0)
    else:
        self._claims(0, 0, 0, paid_fen)


# ---------------------------------------------------------------- external: engine
@external
def draw(amount_fen: uint256):
    """
    @notice Engine: lend `amount_fen` to a margin account for a buy order; utilisation stays
            <= max. The cash stays here until the order's fills pay the broker (`settle`).
    @param amount_fen The financing, in fen.
    """
    # dev: only the engine draws, in a buy it refuses while paused ("margin: paused")
    self._check_engine()
    b: uint256 = self.book
    idle: uint256 = b & M80
    out: uint256 = (b >> 80 & M80) + amount_fen
    pending: uint256 = b >> 160 & M48
    assert out * BPS <= self._assets() * self._max_util(), "pool: utilisation above limit"
    assert idle - pending >= amount_fen, "pool: insufficient liquidity"
    assert (b >> 208) + amount_fen <= M48 and out <= M80, "pool: amount too large"
    self.book = idle - amount_fen | out << 80 | pending << 160 | ((b >> 208) + amount_fen) << 208
    log Drawn(amount_fen=amount_fen, principal_out_after_fen=out)


@external
def settle(broker: address, pay_fen: uint256, principal_fen: uint256, interest_fen: uint256, refund_fen: uint256):
    """
    @notice Engine: out of the financing drawn for a buy order and still held here, pay
            `pay_fen` to the broker for a fill, book `principal_fen` and `interest_fen` as
            repaid by the order's close, and send `refund_fen` (the rest the account keeps)
            to the engine.
    @param broker The broker paid for the fill.
    @param pay_fen Paid to the broker, in fen.
    @param principal_fen Principal repaid, in fen.
    @param interest_fen Interest paid, in fen.
    @param refund_fen Sent back to the engine, in fen.
    """
    self._check_engine()
    used: uint256 = pay_fen + principal_fen + interest_fen + refund_fen
    b: uint256 = self.book
    assert b >> 208 >= used, "pool: above undisbursed financing"
    b -= used << 208
    if principal_fen + interest_fen > 0:
        # as `_move(principal + interest, 0, 0, principal, interest, 0)`, on the word read
        # above: one write of the book
        idle: uint256 = (b & M80) + principal_fen + interest_fen
        out: uint256 = (b >> 80 & M80) - principal_fen
        pending: uint256 = (b >> 160 & M48) + interest_fen
        assert idle <= M80 and pending <= M48, "pool: amount too large"
        self.book = idle | out << 80 | pending << 160 | b >> 208 << 208
        log Repaid(principal_fen=principal_fen, interest_fen=interest_fen, principal_out_after_fen=out)
    else:
        self.book = b
    if pay_fen > 0:
        extcall CASH.transfer(broker, pay_fen)
    if refund_fen > 0:
        extcall CASH.transfer(msg.sender, refund_fen)


@external
def repay(principal_fen: uint256, interest_fen: uint256):
    """
    @notice Engine: book principal and interest paid back; the engine transferred their sum
            to the pool just before this call (no allowance).
    @param principal_fen Principal repaid, in fen.
    @param interest_fen Interest paid, in fen.
    """
    self._check_engine()
    total: uint256 = principal_fen + interest_fen
    if total == 0:
        return
    self._move(total, 0, 0, principal_fen, interest_fen, 0)
    log Repaid(
        principal_fen=principal_fen,
        interest_fen=interest_fen,
        principal_out_after_fen=self._out(),
    )


@external
def absorb_shortfall(principal_fen: uint256, penalty_fen: uint256) -> uint256:
    """
    @notice Engine: write off `principal_fen` of unrecoverable principal. The insurance fund
            pays first (the liquidation's own penalty, then the fund), then junior, then
            senior (recorded). Returns what the insurance fund paid.
    """
    self._check_engine()
    if principal_fen == 0:
        return 0
    self._move(0, 0, 0, principal_fen, 0, 0)
    paid: uint256 = extcall self.insurance.cover(principal_fen, penalty_fen)
    self._move(paid, 0, 0, 0, 0, 0)
    loss: uint256 = principal_fen - paid
    j_cut: uint256 = min(loss, (self.claims >> 128))
    s_cut: uint256 = loss - j_cut
    # dev: s_cut <= senior_claim because claims + pending interest >= principal_out
    self._claims(0, 0, 0, j_cut)
    self._claims(0, s_cut, 0, 0)
    self.junior_loss_fen += j_cut
    if s_cut > 0:
        self.senior_loss_fen += s_cut
        log SeniorLoss(amount_fen=s_cut, senior_loss_total_fen=self.senior_loss_fen)
    log ShortfallAbsorbed(
        principal_fen=principal_fen, insurance_fen=paid, junior_fen=j_cut, senior_fen=s_cut
    )
    return paid


# ---------------------------------------------------------------- external: operator
@external
def connect(engine: IMarginEngine, insurance: IInsuranceFund):
    """
    @notice Operator: connect the MarginEngine and the InsuranceFund (once).
    """
    self._check_operator()
    assert self._engine().address == empty(address), "pool: already connected"
    assert engine.address != empty(address) and insurance.address != empty(address), (
        "pool: zero address"
    )
    assert engine.address == ENGINE, "pool: not the deployed engine"
    self.wiring = self.wiring >> 160 << 160 | convert(engine.address, uint256)
    self.insurance = insurance


@external
def set_params(
    min_junior_bps: uint256,
    max_util_bps: uint256,
    senior_apr_bps: uint256,
    premium_bps: uint256,
    fee_bps: uint256,
    epoch_s: uint256,
):
    """
    @notice Operator: pool parameters (bps; epoch length in seconds).
    """
    self._check_operator()
    assert min_junior_bps > 0 and min_junior_bps < BPS, "pool: min junior not in 1..9999 bps"
    assert max_util_bps > 0 and max_util_bps <= BPS, "pool: max utilisation not in 1..10000 bps"
    assert senior_apr_bps <= BPS, "pool: senior apr above 100%"
    assert premium_bps + fee_bps <= BPS, "pool: premium + fee above 100%"
    assert epoch_s > 0, "pool: zero epoch"
    self.min_junior_bps = min_junior_bps
    self.wiring = self.wiring & ~(M32 << 160) | max_util_bps << 160
    self.senior_apr_bps = senior_apr_bps
    self.premium_bps = premium_bps
    self.fee_bps = fee_bps
    self.epoch_s = epoch_s
    log ParamsSet(
        by=msg.sender,
        min_junior_bps=min_junior_bps,
        max_util_bps=max_util_bps,
        senior_apr_bps=senior_apr_bps,
        premium_bps=premium_bps,
        fee_bps=fee_bps,
        epoch_s=epoch_s,
    )
