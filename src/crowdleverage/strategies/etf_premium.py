"""ETF premium/discount arbitrage through creation and redemption (50ETF, 510050).

premium_bps = (P / NAV − 1) × 10⁴ with P the ETF close and NAV the source's net asset value.
The day's NAV is published after the close, so by default a signal from day t's close and NAV
is executed at day t+1's close (`lag = 1`) and earns t+1's premium, whatever it has become;
`lag = 0` models a desk that trades on the exchange's IOPV (published every 15 s) at the same
close and is an upper bound (the backtest then knows the NAV it trades against). Trades are
in whole creation units:
- discount beyond the round-trip cost + `edge_bps`: buy ETF units (financed), redeem them for
  the basket, sell the basket (stamp duty on the stocks sold) → +1;
- premium beyond it: buy the basket, create units, sell them (ETFs pay no stamp duty) → −1.
The round trip's expected cost in bps (commission on both legs, stamp duty on a basket sale,
the creation/redemption fee, `impact_bps` per leg) is computed per direction and date; the
backtest charges the exact fees in fen. The book is flat at every close (instant arbitrage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.market.rules import Side, stamp_duty_rate_ppm
from crowdleverage.strategies.base import LegKind, LegSpec, StrategyFrame
from crowdleverage.strategies.data import MarketData

COMMISSION_BPS = 2.5  # FeeSchedule default
BASKET_TRANSFER_BPS = 0.2


@dataclass(frozen=True, slots=True)
class ETFParams:
    symbol: str = "510050"
    creation_unit: int = 900_000  # 510050's minimum creation/redemption unit (份)
    conversion_fee_bps: float = 5.0  # the fund's creation/redemption fee
    impact_bps: float = 5.0  # per leg
    edge_bps: float = 5.0  # required net edge after costs
    lag: int = 1  # 1: trade the next close on today's NAV; 0: trade on the IOPV at the close

    def __post_init__(self) -> None:
        if self.creation_unit <= 0 or self.creation_unit % 100 or self.lag not in (0, 1, 2):
            raise InvalidInput("ETF: creation_unit a positive multiple of 100, lag 0–2")
        if min(self.conversion_fee_bps, self.impact_bps, self.edge_bps) < 0:
            raise InvalidInput("ETF: fees, impact and edge must be ≥ 0")


def round_trip_cost_bps(day_index: pd.DatetimeIndex, side: int, p: ETFParams) -> np.ndarray:
    """Expected cost of one round trip in bps: +1 redeems (sells the basket), −1 creates."""
    basket_side = Side.SELL if side == 1 else Side.BUY
    stamp = np.array([stamp_duty_rate_ppm(basket_side, d.date()) / 100.0 for d in day_index])
    fixed = 2 * COMMISSION_BPS + BASKET_TRANSFER_BPS + p.conversion_fee_bps + 2 * p.impact_bps
    return fixed + stamp


def build(data: MarketData, p: ETFParams) -> StrategyFrame:
    if p.symbol not in data.etf:
        raise InvalidInput(f"ETF: no data for {p.symbol!r} (known: {sorted(data.etf)})")
    e = data.etf[p.symbol]
    prem = (e["close"] / e["nav"] - 1.0) * 1e4
    redeem_cost = round_trip_cost_bps(e.index, 1, p)
    create_cost = round_trip_cost_bps(e.index, -1, p)
    signal = np.where(
        -prem > redeem_cost + p.edge_bps, 1, np.where(prem > create_cost + p.edge_bps, -1, 0)
    ).astype(np.int8)
    frame = pd.DataFrame(
        {
            "a_px": e["close"],
            "b_px": e["nav"],
            "a_prev": e["prev_close"],
            "b_prev": e["nav"].shift(1),
            "a_low": e["low"],
            "a_high": e["high"],
            "b_low": e["nav"],
            "b_high": e["nav"],
            "a_vol": e["volume"],
            "b_vol": e["volume"],
            "spread_bps": prem,
            "signal": signal,
            "hedge": 1.0,
        },
        index=e.index,
    )
    a = LegSpec(p.symbol, LegKind.ETF)
    b = LegSpec(f"{p.symbol}-basket", LegKind.BASKET)
    return StrategyFrame(f"etf-{p.symbol}", a, b, frame, instant=True, lag=p.lag, spread_sign=-1)
