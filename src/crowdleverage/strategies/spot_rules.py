"""Spot legs on the platform's A-share rules (market/rules.py), with the ETF's own units.

- A shares: lots of 100, T+1, ±10% band, commission, stamp duty and transfer fee by date —
  all from `market.rules` (`trading_fees`, `price_band`, `sellable_quantity`).
- ETF (510050): quoted in 元 with three decimals; the tick is 0.001 元 = one 厘 (li), a tenth
  of a fen. Prices are held as integer li (`to_li`), never as fen, and a value in fen is
  qty × price_li / 10 rounded *down* for an asset (a lot of 100 shares is always exact). ETFs
  pay no stamp duty and no transfer fee; only the commission applies. The ETF's daily band
  is ±10% like the main board; the ETF is T+1 for a secondary-market buy.
- A basket that replicates an index (the CSI 300 spot leg, or the 50ETF redeemed into its
  stocks) pays stock fees on its amount: commission, stamp duty on sells by date (market.rules)
  and the transfer fee at its post-2015-08-01 rate of 0.02‰ (the earlier SSE face-value fee is
  approximated by the same rate: a basket has no single face value).
"""

from __future__ import annotations

import datetime as dt

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.market.rules import FeeSchedule, Side, stamp_duty_rate_ppm

LI_PER_FEN = 10
LOT = 100
BASKET_TRANSFER_PPM_X10 = 200  # 0.02‰ in 0.1 ppm


def to_li(price_yuan: float) -> int:
    """An ETF price in 元 (three decimals) → integer li; refuses a price off the 0.001 tick."""
    li = round(price_yuan * 1000)
    if li <= 0 or abs(li - price_yuan * 1000) > 1e-6:
        raise InvalidInput(f"ETF price {price_yuan} is not a positive multiple of 0.001 元")
    return li


def etf_value_fen(qty: int, price_li: int) -> int:
    """Market value in fen, rounded down (an asset)."""
    assert qty >= 0, "dev: non-negative quantity"
    return qty * price_li // LI_PER_FEN


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def commission_fen(amount_fen: int, schedule: FeeSchedule | None = None) -> int:
    s = schedule or FeeSchedule()
    return max(s.commission_min_fen, _ceil(amount_fen * s.commission_bps_x100, 10_000 * 100))


def etf_fee_fen(amount_fen: int, schedule: FeeSchedule | None = None) -> int:
    """ETF fill: commission only (no stamp duty, no transfer fee)."""
    if amount_fen <= 0:
        raise InvalidInput("fees need a positive amount")
    return commission_fen(amount_fen, schedule)


def basket_fee_fen(
    side: Side, day: dt.date, amount_fen: int, schedule: FeeSchedule | None = None
) -> int:
    """A stock basket fill: commission + stamp duty (by date) + transfer fee, each rounded up."""
    if amount_fen <= 0:
        raise InvalidInput("fees need a positive amount")
    stamp = _ceil(amount_fen * stamp_duty_rate_ppm(side, day), 1_000_000)
    transfer = _ceil(amount_fen * BASKET_TRANSFER_PPM_X10, 10_000_000)
    return commission_fen(amount_fen, schedule) + stamp + transfer


def lots_for(amount_fen: int, price_fen_per_share: float) -> int:
    """Whole lots of 100 shares that `amount_fen` buys at a price (fen per share), down."""
    if price_fen_per_share <= 0:
        raise InvalidInput("price must be positive")
    shares = int(amount_fen // price_fen_per_share)
    return shares - shares % LOT
