"""A-share trading rules, date-aware: price-limit bands, tick, lots, T+1, fees.

Sources of the dates: STAR market opened 2019-07-22 (±20%, no limit for the first 5 days);
ChiNext moved from ±10% to ±20% with the registration reform on 2020-08-24 (no limit for the
first 5 days from then); the main board adopted the same first-5-days rule on 2023-04-10
(before it, a new main-board listing's first day was capped at +44% / −36% of the issue
price); BSE ±30% (first day unlimited); ST stocks on the main board ±5%.
Stamp duty: 0.3% both sides until 2008-04-23, 0.1% both sides until 2008-09-18, 0.1% on sells
only until 2023-08-27, 0.05% on sells from 2023-08-28. Transfer fee (过户费): SSE 0.6‰ of
face value (¥1/share) until 2015-07-31, none at SZSE; from 2015-08-01 0.02‰ of the amount at
both; 0.01‰ from 2022-04-29.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from crowdleverage.domain.errors import InvalidInput, RuleViolation
from crowdleverage.domain.money import div_round_half_up
from crowdleverage.domain.security import Board, Exchange, Security

BPS = 10_000
TICK_FEN = 1
LOT = 100

STAR_LAUNCH = dt.date(2019, 7, 22)
CHINEXT_REFORM = dt.date(2020, 8, 24)
MAIN_BOARD_REGISTRATION = dt.date(2023, 4, 10)
BSE_LAUNCH = dt.date(2021, 11, 15)
UNLIMITED_FIRST_DAYS = 5


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


@dataclass(frozen=True, slots=True)
class PriceBand:
    """The day's legal prices, in fen. `None` limits mean no limit that day."""

    limit_down_fen: int | None
    limit_up_fen: int | None
    limit_bps: int | None

    def contains(self, price_fen: int) -> bool:
        if self.limit_down_fen is not None and price_fen < self.limit_down_fen:
            return False
        return not (self.limit_up_fen is not None and price_fen > self.limit_up_fen)


def limit_bps(
    security: Security,
    day: dt.date,
    *,
    st: bool = False,
    listing_day_index: int | None = None,
) -> int | None:
    """The daily price-limit in bps for `security` on `day`, or None when unlimited.

    `listing_day_index` is 1 on the first trading day after listing, 2 on the second, …
    (None when unknown or long listed).
    """
    board = security.board
    if board is Board.STAR and day < STAR_LAUNCH:
        raise InvalidInput(f"{security.code} is a STAR code but STAR opened on {STAR_LAUNCH}")
    if board is Board.BSE and day < BSE_LAUNCH and security.code.startswith("920"):
        raise InvalidInput(f"{security.code} is a BSE code before the BSE opened on {BSE_LAUNCH}")
    new = listing_day_index is not None and listing_day_index <= UNLIMITED_FIRST_DAYS
    if board is Board.STAR:
        return None if new else 2_000
    if board is Board.CHINEXT:
        if day >= CHINEXT_REFORM:
            return None if new else 2_000
        return 1_000 if not st else 500
    if board is Board.BSE:
        return None if listing_day_index == 1 else 3_000
    # main board
    if new and day >= MAIN_BOARD_REGISTRATION:
        return None
    return 500 if st else 1_000


def band_from_bps(prev_close_fen: int, bps: int | None) -> PriceBand:
    """prev close × (1 ± limit), rounded half-up to the fen."""
    if prev_close_fen <= 0:
        raise InvalidInput(f"previous close must be positive, got {prev_close_fen} fen")
    if bps is None:
        return PriceBand(None, None, None)
    up = div_round_half_up(prev_close_fen * (BPS + bps), BPS)
    down = div_round_half_up(prev_close_fen * (BPS - bps), BPS)
    return PriceBand(max(down, TICK_FEN), up, bps)


def price_band(
    security: Security,
    day: dt.date,
    prev_close_fen: int,
    *,
    st: bool = False,
    listing_day_index: int | None = None,
) -> PriceBand:
    """The legal price band of `security` on `day` given the previous close."""
    bps = limit_bps(security, day, st=st, listing_day_index=listing_day_index)
    if (
        security.board is Board.MAIN
        and listing_day_index == 1
        and day < MAIN_BOARD_REGISTRATION
        and not st
    ):
        # first day of a pre-2023 main-board listing: +44% / −36% of the issue price
        if prev_close_fen <= 0:
            raise InvalidInput("issue price must be positive")
        return PriceBand(
            div_round_half_up(prev_close_fen * 6_400, BPS),
            div_round_half_up(prev_close_fen * 14_400, BPS),
            None,
        )
    return band_from_bps(prev_close_fen, bps)


# ── orders: tick, lots, T+1 ───────────────────────────────────────────────────────────────


def check_order(
    side: Side, quantity: int, price_fen: int, band: PriceBand, *, holding: int = 0
) -> None:
    """Raise RuleViolation unless the order is legal: positive price on the tick, inside the
    band, quantity in whole lots (a sell may have an odd lot only when it sells the whole
    holding)."""
    if price_fen <= 0:
        raise RuleViolation(f"price must be positive, got {price_fen} fen", rule="price_positive")
    if not band.contains(price_fen):
        raise RuleViolation(
            f"price {price_fen} fen is outside the day's band "
            f"[{band.limit_down_fen}, {band.limit_up_fen}] fen",
            rule="price_band", price_fen=price_fen, limit_down_fen=band.limit_down_fen,
            limit_up_fen=band.limit_up_fen,
        )  # fmt: skip
    if quantity <= 0:
        raise RuleViolation(f"quantity must be positive, got {quantity}", rule="quantity_positive")
    if side is Side.BUY and quantity % LOT:
        raise RuleViolation(f"buy quantity {quantity} is not a multiple of the {LOT}-share lot",
                            rule="lot", quantity=quantity, lot=LOT)  # fmt: skip
    if side is Side.SELL:
        if quantity > holding:
            raise RuleViolation(f"sell quantity {quantity} exceeds the sellable {holding}",
                                rule="sellable", quantity=quantity, sellable=holding)  # fmt: skip
        if quantity % LOT and quantity != holding:
            raise RuleViolation(
                f"sell quantity {quantity} has an odd lot; odd lots only sell a whole holding",
                rule="odd_lot", quantity=quantity,
            )  # fmt: skip


def sellable_quantity(lots: list[tuple[dt.date, int]], today: dt.date) -> int:
    """T+1: shares bought on day D can be sold from the next trading day on. `lots` are
    (trade day, quantity) of the holding; anything bought before `today` is sellable."""
    return sum(q for d, q in lots if d < today)


def round_to_lot(quantity: int) -> int:
    """Whole lots, rounded down."""
    return quantity - quantity % LOT


# ── fees ─────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Broker commission (negotiated): rate on the amount with a minimum per order."""

    commission_bps_x100: int = 250  # 0.025% = 2.5 bps, stored ×100 to stay integer
    commission_min_fen: int = 500  # ¥5


@dataclass(frozen=True, slots=True)
class Fees:
    commission_fen: int
    stamp_duty_fen: int
    transfer_fee_fen: int

    @property
    def total_fen(self) -> int:
        return self.commission_fen + self.stamp_duty_fen + self.transfer_fee_fen


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def stamp_duty_rate_ppm(side: Side, day: dt.date) -> int:
    """Stamp duty in parts per million of the amount, for `side` on `day`."""
    if day < dt.date(2008, 4, 24):
        return 3_000
    if day < dt.date(2008, 9, 19):
        return 1_000
    if side is Side.BUY:
        return 0
    return 1_000 if day < dt.date(2023, 8, 28) else 500


def transfer_fee_fen(security: Security, day: dt.date, quantity: int, amount_fen: int) -> int:
    if security.exchange is Exchange.BSE:
        return 0
    if day < dt.date(2015, 8, 1):
        if security.exchange is not Exchange.SSE:
            return 0
        # 0.6‰ of face value (¥1 = 100 fen per share), minimum ¥1
        return max(100, _ceil_div(quantity * 100 * 6, 10_000))
    ppm_x10 = 200 if day < dt.date(2022, 4, 29) else 100  # 0.02‰ / 0.01‰, in 0.1 ppm
    return _ceil_div(amount_fen * ppm_x10, 10_000_000)


def trading_fees(
    security: Security,
    side: Side,
    day: dt.date,
    quantity: int,
    price_fen: int,
    schedule: FeeSchedule | None = None,
) -> Fees:
    """Fees of one fill, each rounded up to the fen (they are charged to the account)."""
    if quantity <= 0 or price_fen <= 0:
        raise InvalidInput("fees need a positive quantity and price")
    sched = schedule or FeeSchedule()
    amount = quantity * price_fen
    commission = max(
        sched.commission_min_fen, _ceil_div(amount * sched.commission_bps_x100, BPS * 100)
    )
    stamp = _ceil_div(amount * stamp_duty_rate_ppm(side, day), 1_000_000)
    return Fees(commission, stamp, transfer_fee_fen(security, day, quantity, amount))
