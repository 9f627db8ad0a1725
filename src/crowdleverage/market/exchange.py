"""Simulated A-share exchange: limit orders matched against replayed bars and their ticks.

The rules it enforces (market/rules.py gives the numbers):

- an order's limit price lies inside the day's price band and on the fen tick; buys are whole
  lots; a sell may carry an odd lot only when it sells the seller's whole holding;
- nothing fills while a security is halted (a halted bar, or an intraday `halt`);
- participation cap: at each tick the orders of one side take at most `participation_bps` of
  that tick's volume, so over a day at most that share of the bar's volume;
- a sealed limit: at a tick priced at limit-down on a day that closed sealed at limit-down,
  sells take at most `sealed_fill_bps` of the (already capped) capacity — 0 by default, the
  2015 lesson: a stop-loss does not get out through a seal. Likewise buys at a sealed limit-up;
- day orders: whatever has not filled by the close expires (`close_day`);
- fees by date (`trading_fees`), each fill charged on its own, rounded up to the fen.

Matching is price-taking: a buy with limit L fills at a tick price p ≤ L at p, a sell with
limit L at p ≥ L at p; orders of one side and security fill in time priority.

The exchange is a matching engine, not a custodian: the broker tells it the seller's holding
(`holding`) so that the odd-lot rule can be checked; T+1 is the broker's and planner's job.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from crowdleverage.domain.errors import Conflict, InvalidInput, NotFound
from crowdleverage.domain.security import Security
from crowdleverage.market.bars import Bar
from crowdleverage.market.replay import Tick, TradingDay, intraday_ticks
from crowdleverage.market.rules import (
    BPS,
    LOT,
    Fees,
    FeeSchedule,
    PriceBand,
    Side,
    check_order,
    round_to_lot,
    trading_fees,
)


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    participation_bps: int = 1_000  # ≤ 10% of each tick's (so each bar's) volume
    sealed_fill_bps: int = 0  # share of the capacity that fills into a sealed limit
    fees: FeeSchedule = field(default_factory=FeeSchedule)

    def __post_init__(self) -> None:
        if not 0 < self.participation_bps <= BPS:
            raise InvalidInput(f"participation_bps must be in (0, {BPS}]")
        if not 0 <= self.sealed_fill_bps <= BPS:
            raise InvalidInput(f"sealed_fill_bps must be in [0, {BPS}]")


class OrderStatus(StrEnum):
    OPEN = "OPEN"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


@dataclass(slots=True)
class Order:
    order_id: str
    account: str
    code: str
    side: Side
    quantity: int
    limit_price_fen: int
    day: dt.date
    seq: int
    filled: int = 0
    status: OrderStatus = OrderStatus.OPEN

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled


@dataclass(frozen=True, slots=True)
class Fill:
    fill_ref: str  # unique: "<order id>#<n>", the n-th fill of that order
    order_id: str
    account: str
    code: str
    side: Side
    quantity: int
    price_fen: int
    fees: Fees
    at: dt.datetime
    at_limit: bool  # filled at the band's limit price (into a seal or the edge of the band)

    @property
    def amount_fen(self) -> int:
        return self.quantity * self.price_fen


@dataclass(slots=True)
class _Book:
    bar: Bar
    halted: bool
    orders: list[Order] = field(default_factory=list)  # open orders, time priority


class SimulatedExchange:
    """One trading day at a time: `open_day`, then `submit`/`cancel` and `on_ticks`, then
    `close_day`. Fills are returned by `on_ticks` and kept in `fills`."""

    def __init__(self, config: ExchangeConfig | None = None) -> None:
        self.config = config or ExchangeConfig()
        self.day: dt.date | None = None
        self._books: dict[str, _Book] = {}
        self._orders: dict[str, Order] = {}
        self._fill_counts: dict[str, int] = {}
        self._seq = 0
        self.fills: list[Fill] = []

    # ── session ─────────────────────────────────────────────────────────────────────────

    def open_day(self, day: TradingDay) -> None:
        """Start a session: the day's bars give bands, halts and the volume to trade against."""
        if self.day is not None:
            raise Conflict(f"session {self.day} is still open; close it first")
        if self._orders_open():
            raise Conflict("open orders remain from a previous session")
        self.day = day.date
        self._books = {b.code: _Book(b, b.halted) for b in day.bars.values() if not b.is_index}

    def close_day(self) -> list[Order]:
        """End the session: unfilled day orders expire. Returns the expired orders."""
        self._require_session()
        expired: list[Order] = []
        for book in self._books.values():
            for o in book.orders:
                o.status = OrderStatus.EXPIRED
                expired.append(o)
            book.orders = []
        self.day = None
        return expired

    def halt(self, code: str, halted: bool = True) -> None:
        """Intraday suspension (or its end): no fills while halted."""
        self._book(code).halted = halted

    def band(self, code: str) -> PriceBand:
        band = self._book(code).bar.band
        assert band is not None, "dev: equity bars carry a band"
        return band

    def bar(self, code: str) -> Bar:
        return self._book(code).bar

    def is_halted(self, code: str) -> bool:
        return self._book(code).halted

    # ── orders ──────────────────────────────────────────────────────────────────────────

    def submit(
        self,
        order_id: str,
        account: str,
        code: str,
        side: Side,
        quantity: int,
        limit_price_fen: int,
        *,
        holding: int = 0,
        fills_before: int = 0,
    ) -> Order:
        """Accept a day order, or raise RuleViolation (band, tick, lot) / Conflict (id reused)
        without changing anything. `holding` is the seller's whole holding (odd-lot rule).
        `fills_before`: the fills this order id already had today in a session that ended
        early (a broker's restart): its fill references continue after them, stay unique."""
        self._require_session()
        if order_id in self._orders:
            raise Conflict(f"order id {order_id} was already used", order_id=order_id)
        book = self._book(code)
        check_order(side, quantity, limit_price_fen, self.band(code), holding=holding)
        self._seq += 1
        assert self.day is not None
        order = Order(order_id, account, code, side, quantity, limit_price_fen, self.day, self._seq)
        self._orders[order_id] = order
        if fills_before:
            self._fill_counts[order_id] = fills_before
        book.orders.append(order)
        return order

    def cancel(self, order_id: str) -> Order:
        """Cancel the unfilled remainder. Cancelling a finished order is a Conflict."""
        order = self.order(order_id)
        if order.status is not OrderStatus.OPEN:
            raise Conflict(f"order {order_id} is {order.status}, not open", order_id=order_id)
        order.status = OrderStatus.CANCELLED
        self._books[order.code].orders.remove(order)
        return order

    def order(self, order_id: str) -> Order:
        try:
            return self._orders[order_id]
        except KeyError:
            raise NotFound(f"no order {order_id}", order_id=order_id) from None

    def open_orders(self, code: str | None = None) -> list[Order]:
        books = [self._book(code)] if code else list(self._books.values())
        return [o for b in books for o in b.orders]

    # ── matching ────────────────────────────────────────────────────────────────────────

    def on_ticks(self, ticks: Iterable[Tick]) -> list[Fill]:
        """Match open orders against one time step of ticks."""
        self._require_session()
        out: list[Fill] = []
        for tick in ticks:
            book = self._books.get(tick.code)
            if book is None or book.halted or not book.orders:
                continue
            for side in (Side.SELL, Side.BUY):
                out.extend(self._match_side(book, tick, side))
        self.fills.extend(out)
        return out

    def run_day(self, ticks_per_day: int = 16) -> list[Fill]:
        """Match every tick of the open day (for callers that do not interleave orders)."""
        self._require_session()
        series = [
            intraday_ticks(b.bar, ticks_per_day) for b in self._books.values() if not b.halted
        ]
        fills: list[Fill] = []
        for step in range(ticks_per_day):
            fills.extend(self.on_ticks(s[step] for s in series if s))
        return fills

    def capacity(self, tick: Tick, side: Side) -> int:
        """Shares one side may take at this tick: the participation cap, cut to the sealed
        fraction when the tick sits on a seal against that side."""
        book = self._book(tick.code)
        cap = tick.volume * self.config.participation_bps // BPS
        if self._sealed_against(book, tick.price_fen, side):
            cap = cap * self.config.sealed_fill_bps // BPS
        return cap

    def _sealed_against(self, book: _Book, price_fen: int, side: Side) -> bool:
        band = book.bar.band
        if band is None:
            return False
        if side is Side.SELL:
            return book.bar.sealed_down and price_fen == band.limit_down_fen
        return book.bar.sealed_up and price_fen == band.limit_up_fen

    def _match_side(self, book: _Book, tick: Tick, side: Side) -> list[Fill]:
        crossing = [
            o
            for o in book.orders
            if o.side is side
            and (
                tick.price_fen <= o.limit_price_fen
                if side is Side.BUY
                else tick.price_fen >= o.limit_price_fen
            )
        ]
        if not crossing:
            return []
        left = self.capacity(tick, side)
        fills: list[Fill] = []
        for order in sorted(crossing, key=lambda o: o.seq):
            if left <= 0:
                break
            qty = min(order.remaining, left)
            if qty < order.remaining:
                qty = round_to_lot(qty)  # a partial fill leaves whole lots (or the odd tail)
            if qty <= 0:
                continue
            fills.append(self._fill(book, order, qty, tick))
            left -= qty
        book.orders = [o for o in book.orders if o.status is OrderStatus.OPEN]
        return fills

    def _fill(self, book: _Book, order: Order, qty: int, tick: Tick) -> Fill:
        assert self.day is not None
        n = self._fill_counts.get(order.order_id, 0) + 1
        self._fill_counts[order.order_id] = n
        order.filled += qty
        if order.remaining == 0:
            order.status = OrderStatus.FILLED
        band = book.bar.band
        at_limit = band is not None and tick.price_fen in (band.limit_down_fen, band.limit_up_fen)
        fees = trading_fees(
            Security.parse(order.code),
            order.side,
            self.day,
            qty,
            tick.price_fen,
            self.config.fees,
        )
        return Fill(
            f"{order.order_id}#{n}",
            order.order_id,
            order.account,
            order.code,
            order.side,
            qty,
            tick.price_fen,
            fees,
            tick.at,
            at_limit,
        )

    # ── helpers ─────────────────────────────────────────────────────────────────────────

    def _require_session(self) -> None:
        if self.day is None:
            raise Conflict("no trading session is open")

    def _book(self, code: str) -> _Book:
        self._require_session()
        try:
            return self._books[code]
        except KeyError:
            raise NotFound(f"{code} does not trade on {self.day}", code=code) from None

    def _orders_open(self) -> bool:
        return any(b.orders for b in self._books.values())


def fill_obeys_rules(fill: Fill, bar: Bar, order: Order, config: ExchangeConfig) -> list[str]:
    """Audit one fill against the day's bar and its order: the reasons it broke a market
    rule (empty when it broke none). Used by tests and the replay's end-of-run check."""
    problems: list[str] = []
    band = bar.band
    if bar.halted:
        problems.append("filled on a halted day")
    if band is not None and not band.contains(fill.price_fen):
        problems.append(f"price {fill.price_fen} outside band")
    if not (bar.low <= fill.price_fen <= bar.high):
        problems.append(f"price {fill.price_fen} outside the day's range")
    if fill.side is Side.SELL and fill.price_fen < order.limit_price_fen:
        problems.append("sold below the limit")
    if fill.side is Side.BUY and fill.price_fen > order.limit_price_fen:
        problems.append("bought above the limit")
    if fill.quantity % LOT and fill.side is Side.BUY:
        problems.append("odd-lot buy")
    sealed = (
        fill.side is Side.SELL
        and bar.sealed_down
        and band is not None
        and fill.price_fen == band.limit_down_fen
    ) or (
        fill.side is Side.BUY
        and bar.sealed_up
        and band is not None
        and fill.price_fen == band.limit_up_fen
    )
    if sealed and config.sealed_fill_bps == 0:
        problems.append("filled into a sealed limit")
    return problems
