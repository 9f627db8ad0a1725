"""Liquidation planner: what to sell, how much, at what limit — under A-share rules.

Given an account (cash, debt with accrued interest, holdings with their trade-day lots) and the
market now (price, band, seal, halt), the planner proposes sell orders that:

- sell only T+1-sellable shares (bought before today) and never more than is not already in an
  open liquidation order;
- never sell into a sealed limit-down, nor a halted security — those shares wait (`blocked`)
  and the planner is simply called again after fills and at the next session;
- are whole lots, except a sale of the whole holding, which may carry the odd tail;
- take the most liquid securities first;
- in PARTIAL mode sell just enough to bring the ratio back to the target (valued at the order's
  limit price, net of fees and the liquidation penalty, proceeds repaying debt); in FULL mode,
  below the hard floor, sell everything that can be sold.

Money is integer fen; ratios in bps rounded down, valuations rounded down, costs rounded up —
every estimate errs against the account, so a plan that "reaches the target" does so when its
orders fill at their limits. The planner is pure: no state, no I/O.

The hard floor defaults to 111%: below it one more sealed limit-down day on the main board
(−10%) can leave the account insolvent (DESIGN.md §7: R > (1 − limit)^−k), so waiting for a
partial fix is no longer prudent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.domain.money import mul_div_down, mul_div_up
from crowdleverage.domain.params import LIQUIDATION_PENALTY_BPS
from crowdleverage.domain.security import Security
from crowdleverage.market.rules import (
    BPS,
    LOT,
    FeeSchedule,
    Side,
    round_to_lot,
    sellable_quantity,
    trading_fees,
)

NO_DEBT_RATIO_BPS = 10**12  # the ratio of an account without debt: above every line
HARD_FLOOR_BPS = 11_100


class PlanMode(StrEnum):
    NONE = "NONE"  # at or above the target: nothing to sell
    PARTIAL = "PARTIAL"  # sell enough to restore the target ratio
    FULL = "FULL"  # below the hard floor: sell everything sellable


class BlockReason(StrEnum):
    SEALED_LIMIT_DOWN = "sealed_limit_down"
    HALTED = "halted"
    T1_LOCKED = "t1_locked"


@dataclass(frozen=True, slots=True)
class Holding:
    """One security in the account, with the market's state for it now."""

    code: str
    lots: tuple[tuple[dt.date, int], ...]  # (trade day, shares): T+1 from these
    price_fen: int  # mark price
    haircut_bps: int
    liquidity_fen: int  # traded amount (e.g. the day's or a recent average): ordering only
    limit_down_fen: int | None = None
    sealed_down: bool = False  # sitting on a sealed limit-down now
    halted: bool = False
    pending_sell: int = 0  # shares already in open liquidation orders

    @property
    def quantity(self) -> int:
        return sum(q for _, q in self.lots)


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    account: str
    cash_fen: int
    debt_fen: int  # principal plus accrued interest, rounded up
    holdings: tuple[Holding, ...]


@dataclass(frozen=True, slots=True)
class PlannerConfig:
    target_ratio_bps: int  # PARTIAL restores this (e.g. the tier's initial ratio)
    hard_floor_bps: int = HARD_FLOOR_BPS
    slippage_bps: int = 200  # limit price = mark − slippage (never at or below limit-down)
    penalty_bps: int = LIQUIDATION_PENALTY_BPS
    fees: FeeSchedule = field(default_factory=FeeSchedule)

    def __post_init__(self) -> None:
        if self.target_ratio_bps <= BPS:
            raise InvalidInput("the target ratio must be above 100%")
        if not 0 <= self.slippage_bps < BPS:
            raise InvalidInput("slippage_bps must be in [0, 10000)")


@dataclass(frozen=True, slots=True)
class PlannedSale:
    code: str
    quantity: int
    limit_price_fen: int
    expected_net_fen: int  # quantity × limit − fees − penalty: what repays debt at worst
    whole_holding: bool


@dataclass(frozen=True, slots=True)
class Blocked:
    code: str
    quantity: int
    reason: BlockReason


@dataclass(frozen=True, slots=True)
class LiquidationPlan:
    account: str
    mode: PlanMode
    ratio_before_bps: int
    ratio_after_bps: int  # expected, if every sale fills at its limit
    sales: tuple[PlannedSale, ...]
    blocked: tuple[Blocked, ...]
    reaches_target: bool

    @property
    def waiting_behind_seals(self) -> int:
        return sum(b.quantity for b in self.blocked if b.reason is BlockReason.SEALED_LIMIT_DOWN)


# ── arithmetic ──────────────────────────────────────────────────────────────────────────


def collateral_fen(cash_fen: int, holdings: tuple[Holding, ...] | list[Holding]) -> int:
    """cash + Σ haircut × market value, each term rounded down."""
    return cash_fen + sum(
        mul_div_down(h.quantity * h.price_fen, h.haircut_bps, BPS) for h in holdings
    )


def ratio_bps(collateral: int, debt_fen: int) -> int:
    """Margin ratio in bps, rounded down; an account without debt is above every line."""
    if debt_fen <= 0:
        return NO_DEBT_RATIO_BPS
    return max(collateral, 0) * BPS // debt_fen


def sell_limit_price(h: Holding, slippage_bps: int) -> int:
    """Mark less slippage, rounded up to the fen, kept one tick above limit-down."""
    limit = mul_div_up(h.price_fen, BPS - slippage_bps, BPS)
    if h.limit_down_fen is not None:
        limit = max(limit, h.limit_down_fen + 1)
    return limit


def net_proceeds_fen(
    code: str, day: dt.date, quantity: int, price_fen: int, cfg: PlannerConfig
) -> int:
    """What a sale repays at worst: amount − fees − penalty (both rounded up)."""
    amount = quantity * price_fen
    fees = trading_fees(Security.parse(code), Side.SELL, day, quantity, price_fen, cfg.fees)
    return amount - fees.total_fen - mul_div_up(amount, cfg.penalty_bps, BPS)


@dataclass(slots=True)
class _State:
    collateral: int
    debt: int

    def ratio(self) -> int:
        return ratio_bps(self.collateral, self.debt)

    def after(self, h: Holding, qty: int, net: int) -> _State:
        """Selling `qty` of `h` for `net`: its haircut value leaves the collateral, the net
        repays debt, any surplus stays as cash."""
        drop = mul_div_down(qty * h.price_fen, h.haircut_bps, BPS)
        repay = min(net, self.debt)
        return _State(self.collateral - drop + (net - repay), self.debt - repay)


# ── planning ────────────────────────────────────────────────────────────────────────────


def _max_sellable(h: Holding, today: dt.date) -> int:
    """T+1-sellable shares not already in an order; whole lots unless the whole holding."""
    free = sellable_quantity(list(h.lots), today) - h.pending_sell
    if free <= 0:
        return 0
    if h.pending_sell == 0 and free == h.quantity:
        return free  # the whole holding: the odd tail may go with it
    return round_to_lot(free)


def _classify(
    snapshot: AccountSnapshot, today: dt.date
) -> tuple[list[tuple[Holding, int]], list[Blocked]]:
    candidates: list[tuple[Holding, int]] = []
    blocked: list[Blocked] = []
    for h in snapshot.holdings:
        free = _max_sellable(h, today)
        locked = h.quantity - sellable_quantity(list(h.lots), today)
        if locked > 0:
            blocked.append(Blocked(h.code, locked, BlockReason.T1_LOCKED))
        if free <= 0:
            continue
        if h.halted:
            blocked.append(Blocked(h.code, free, BlockReason.HALTED))
        elif h.sealed_down or (h.limit_down_fen is not None and h.price_fen <= h.limit_down_fen):
            blocked.append(Blocked(h.code, free, BlockReason.SEALED_LIMIT_DOWN))
        else:
            candidates.append((h, free))
    candidates.sort(key=lambda hc: (-hc[0].liquidity_fen, hc[0].code))
    return candidates, blocked


def _quantity_for_target(
    h: Holding, cap: int, limit: int, state: _State, today: dt.date, cfg: PlannerConfig
) -> int:
    """Smallest quantity (whole lots, or `cap`) that lifts the ratio to the target; `cap` when
    none does. The ratio rises monotonically with the quantity sold while a sale helps at all,
    so a bisection over lots with the exact fees finds it."""
    target = cfg.target_ratio_bps

    def enough(qty: int) -> bool:
        net = net_proceeds_fen(h.code, today, qty, limit, cfg)
        return state.after(h, qty, net).ratio() >= target

    if not enough(cap):
        return cap
    lo, hi = 0, -(-cap // LOT)  # in lots; `hi` lots (capped at `cap` shares) is enough
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if enough(mid * LOT):
            hi = mid
        else:
            lo = mid
    return min(cap, hi * LOT)


def plan_liquidation(
    snapshot: AccountSnapshot, today: dt.date, cfg: PlannerConfig, *, force_full: bool = False
) -> LiquidationPlan:
    """The sales that restore `cfg.target_ratio_bps`, or sell everything below the hard floor
    (or when `force_full`). Call again after fills and at each new session."""
    if snapshot.debt_fen < 0 or snapshot.cash_fen < 0:
        raise InvalidInput("cash and debt must not be negative", account=snapshot.account)
    state = _State(collateral_fen(snapshot.cash_fen, snapshot.holdings), snapshot.debt_fen)
    before = state.ratio()
    candidates, blocked = _classify(snapshot, today)
    # open orders count as if they filled at their planned limit
    for h in snapshot.holdings:
        if h.pending_sell > 0:
            limit = sell_limit_price(h, cfg.slippage_bps)
            state = state.after(
                h, h.pending_sell, net_proceeds_fen(h.code, today, h.pending_sell, limit, cfg)
            )
    full = force_full or before < cfg.hard_floor_bps
    mode = PlanMode.FULL if full else PlanMode.PARTIAL
    if snapshot.debt_fen == 0 or (not full and state.ratio() >= cfg.target_ratio_bps):
        return LiquidationPlan(
            snapshot.account, PlanMode.NONE, before, state.ratio(), (), tuple(blocked), True
        )
    sales: list[PlannedSale] = []
    for h, cap in candidates:
        if not full and state.ratio() >= cfg.target_ratio_bps:
            break
        limit = sell_limit_price(h, cfg.slippage_bps)
        qty = cap if full else _quantity_for_target(h, cap, limit, state, today, cfg)
        net = net_proceeds_fen(h.code, today, qty, limit, cfg)
        state = state.after(h, qty, net)
        sales.append(PlannedSale(h.code, qty, limit, net, qty == h.quantity))
    after = state.ratio()
    reaches = after >= cfg.target_ratio_bps if not full else state.debt == 0
    return LiquidationPlan(
        snapshot.account, mode, before, after, tuple(sales), tuple(blocked), reaches
    )
