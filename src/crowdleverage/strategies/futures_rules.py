"""CFFEX stock-index futures rules by date (IF: CSI 300, IH: SSE 50), explicit and tested.

Each rule is a step function of the trading day: the value in force is the one of the latest
step on or before the day. "From settlement on D" (margins) means the rate applies to the
positions held at D's close, which is where the backtest charges margin, so a margin step is
keyed on D itself.

Sources (CFFEX notices as reported by brokers and the press; see data/strategies/README.md):
- 2015-08-25 notice: non-hedge margin 10% → 12% from settlement 2015-08-26, 15% from
  2015-08-27, 20% from 2015-08-28; opening more than 600 lots a day in one product is abnormal
  trading from 2015-08-26; close-today fee 0.0115% of turnover from 2015-08-26.
- 2015-09-02 notice: from 2015-09-07 non-hedge margin 40% ("from the current 30%": the 30%
  step is modelled from settlement 2015-08-31, the first settlement after the 20% step that the
  notice could call current); more than 10 lots opened a day in one product is abnormal
  trading; close-today fee 0.23% (from 0.0115%). Hedge positions are exempt from the lot cap
  and pay 20%; strategy accounts are modelled as non-hedge (the conservative choice).
- 2017-02-17: margin 20% (IF, IH), 20 lots a day, close-today fee 0.092%.
- 2017-09-18: margin 15% (IF, IH); close-today fee 0.069%.
- 2018-12-03: margin 10% (IF, IH); 50 lots a day per contract; close-today fee 0.046%.
- 2019-04-22: 500 lots a day per contract; close-today fee 0.0345%.
The ordinary transaction fee (opening, closing an old position) is 0.0023% of turnover
throughout. The daily limit is ±10% of the previous settlement price; the data carry closes,
not settlement prices, so the backtest uses the previous close (the 2015-08-25 limit-down close
2821.6 is 9.92% below the 2015-08-24 close). Earlier opening limits before 2015-08-26 (the July
2015 rules that started with CSI 500) are not modelled: no cap applies before 2015-08-26.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from dataclasses import dataclass

from crowdleverage.domain.errors import InvalidInput, RuleViolation

BPS = 10_000
PPM = 1_000_000
TICK_DECI_POINTS = 2  # 0.2 index points, prices held in tenths of a point
MULTIPLIER_YUAN: dict[str, int] = {"IF": 300, "IH": 300}
LISTED: dict[str, dt.date] = {"IF": dt.date(2010, 4, 16), "IH": dt.date(2015, 4, 16)}
LIMIT_BPS = 1_000  # ±10% of the previous settlement (close in the backtest)
FEE_PPM = 23  # 0.0023% of turnover, open and close
NO_CAP = 10**9

_D = dt.date
# (first day, non-hedge margin in bps)
MARGIN_STEPS: list[tuple[dt.date, int]] = [
    (_D(2010, 4, 16), 1_000),
    (_D(2015, 8, 26), 1_200),
    (_D(2015, 8, 27), 1_500),
    (_D(2015, 8, 28), 2_000),
    (_D(2015, 8, 31), 3_000),
    (_D(2015, 9, 7), 4_000),
    (_D(2017, 2, 17), 2_000),
    (_D(2017, 9, 18), 1_500),
    (_D(2018, 12, 3), 1_000),
]
# Announcement dates of the margin steps (the notice came out after that day's close, so the
# market knew it from the next trading day). The 2015-08-31 step's notice date is not in the
# sources; it is taken as 2015-08-28, the last trading day before it.
MARGIN_ANNOUNCED: dict[dt.date, dt.date] = {
    _D(2015, 8, 26): _D(2015, 8, 25),
    _D(2015, 8, 27): _D(2015, 8, 25),
    _D(2015, 8, 28): _D(2015, 8, 25),
    _D(2015, 8, 31): _D(2015, 8, 28),
    _D(2015, 9, 7): _D(2015, 9, 2),
    _D(2017, 2, 17): _D(2017, 2, 16),
    _D(2017, 9, 18): _D(2017, 9, 15),
    _D(2018, 12, 3): _D(2018, 11, 30),
}
# (first day, lots one client may open a day in one product/contract before it is abnormal)
OPEN_CAP_STEPS: list[tuple[dt.date, int]] = [
    (_D(2010, 4, 16), NO_CAP),
    (_D(2015, 8, 26), 600),
    (_D(2015, 9, 7), 10),
    (_D(2017, 2, 17), 20),
    (_D(2018, 12, 3), 50),
    (_D(2019, 4, 22), 500),
]
# (first day, close-today fee in parts per million of turnover)
CLOSE_TODAY_STEPS: list[tuple[dt.date, int]] = [
    (_D(2010, 4, 16), FEE_PPM),
    (_D(2015, 8, 26), 115),
    (_D(2015, 9, 7), 2_300),
    (_D(2017, 2, 17), 920),
    (_D(2017, 9, 18), 690),
    (_D(2018, 12, 3), 460),
    (_D(2019, 4, 22), 345),
]


def _step(steps: list[tuple[dt.date, int]], day: dt.date) -> int:
    i = bisect.bisect_right(steps, (day, NO_CAP + 1)) - 1
    if i < 0:
        raise InvalidInput(f"no CFFEX index-futures rule before {steps[0][0]} (asked {day})")
    return steps[i][1]


@dataclass(frozen=True, slots=True)
class FuturesRules:
    """The rules in force for `product` on `day`."""

    product: str
    day: dt.date
    multiplier_yuan: int
    margin_bps: int
    limit_bps: int
    open_cap_lots: int
    fee_ppm: int
    close_today_fee_ppm: int


@functools.lru_cache(maxsize=8_192)
def rules_on(product: str, day: dt.date) -> FuturesRules:
    if product not in MULTIPLIER_YUAN:
        raise InvalidInput(f"unknown futures product {product!r} (known: IF, IH)")
    if day < LISTED[product]:
        raise InvalidInput(f"{product} was listed on {LISTED[product]}, not trading on {day}")
    return FuturesRules(
        product=product,
        day=day,
        multiplier_yuan=MULTIPLIER_YUAN[product],
        margin_bps=_step(MARGIN_STEPS, day),
        limit_bps=LIMIT_BPS,
        open_cap_lots=_step(OPEN_CAP_STEPS, day),
        fee_ppm=FEE_PPM,
        close_today_fee_ppm=_step(CLOSE_TODAY_STEPS, day),
    )


def known_margin_step(day: dt.date, horizon_days: int = 10) -> float:
    """The largest margin announced (before `day`) to apply within `horizon_days` after it,
    over the margin in force the day before: 1.0 when no tightening is known. Public
    information on `day` — what the brake may use."""
    before = _step(MARGIN_STEPS, day - dt.timedelta(days=1))
    known = [
        bps
        for eff, bps in MARGIN_STEPS
        if day <= eff <= day + dt.timedelta(days=horizon_days)
        and MARGIN_ANNOUNCED.get(eff, eff) < day
    ]
    return max([before, *known]) / before


# ── prices in tenths of an index point (exact integers) ─────────────────────────────────────


def to_deci_points(price_points: float) -> int:
    """An index-futures price in tenths of a point, on the 0.2-point tick (nearest tick)."""
    if not price_points > 0:
        raise InvalidInput(f"futures price must be positive, got {price_points}")
    ticks = round(price_points * 10 / TICK_DECI_POINTS)
    return ticks * TICK_DECI_POINTS


def notional_fen(product: str, price_deci_points: int, lots: int) -> int:
    """Contract value in fen: price (points) × multiplier (元/point) × lots; exact."""
    return price_deci_points * MULTIPLIER_YUAN[product] * 10 * abs(lots)


@dataclass(frozen=True, slots=True)
class LimitBand:
    down_deci_points: int
    up_deci_points: int

    def sealed_down(self, close_deci_points: int, low_deci_points: int) -> bool:
        """Closed at the low on the limit-down price: a seller cannot get out."""
        return close_deci_points == low_deci_points and close_deci_points <= self.down_deci_points

    def sealed_up(self, close_deci_points: int, high_deci_points: int) -> bool:
        return close_deci_points == high_deci_points and close_deci_points >= self.up_deci_points


def limit_band(product: str, day: dt.date, prev_settle_deci_points: int) -> LimitBand:
    """±10% of the previous settlement, rounded inward to the tick. Given a previous close
    instead (the data have no settlement prices), a close within `tolerance` of the band edge
    counts as sealed in `is_sealed_down`."""
    r = rules_on(product, day)
    if prev_settle_deci_points <= 0:
        raise InvalidInput("previous settlement must be positive")
    up = prev_settle_deci_points * (BPS + r.limit_bps) // BPS
    down = -(-prev_settle_deci_points * (BPS - r.limit_bps) // BPS)
    up -= up % TICK_DECI_POINTS
    down += (-down) % TICK_DECI_POINTS
    return LimitBand(down, up)


SEAL_TOLERANCE_BPS = 20  # settlement vs close: the 2015-08-25 IF close is 9.92% below 08-24's


def is_sealed_down(product: str, day: dt.date, prev_close: float, low: float, close: float) -> bool:
    """The day closed on its low at (within SEAL_TOLERANCE_BPS of) the limit-down price."""
    band = limit_band(product, day, to_deci_points(prev_close))
    c, lo = to_deci_points(close), to_deci_points(low)
    edge = band.down_deci_points * (BPS + SEAL_TOLERANCE_BPS) // BPS
    return c == lo and c <= edge


def is_sealed_up(product: str, day: dt.date, prev_close: float, high: float, close: float) -> bool:
    band = limit_band(product, day, to_deci_points(prev_close))
    c, hi = to_deci_points(close), to_deci_points(high)
    edge = band.up_deci_points * (BPS - SEAL_TOLERANCE_BPS) // BPS
    return c == hi and c >= edge


# ── orders ───────────────────────────────────────────────────────────────────────────────


def check_open(product: str, day: dt.date, lots: int, opened_today: int) -> None:
    """Refuse an opening that takes the day's opened lots above the cap in force."""
    if lots <= 0:
        raise InvalidInput(f"lots to open must be positive, got {lots}")
    cap = rules_on(product, day).open_cap_lots
    if opened_today + lots > cap:
        raise RuleViolation(
            f"futures: opening {lots} lots of {product} on {day} would make "
            f"{opened_today + lots} opened today, above the {cap}-lot daily cap",
            product=product,
            day=day.isoformat(),
            cap=cap,
        )


def trade_fee_fen(
    product: str, day: dt.date, price_deci_points: int, lots: int, *, close_today: bool
) -> int:
    """Exchange fee of a fill in fen, rounded up: the close-today rate for a position opened
    the same day, the ordinary rate otherwise."""
    r = rules_on(product, day)
    ppm = r.close_today_fee_ppm if close_today else r.fee_ppm
    return -(-notional_fen(product, price_deci_points, lots) * ppm // PPM)


def margin_fen(product: str, day: dt.date, price_deci_points: int, lots: int) -> int:
    """Exchange margin on a position at the day's settlement, rounded up."""
    r = rules_on(product, day)
    return -(-notional_fen(product, price_deci_points, lots) * r.margin_bps // BPS)
