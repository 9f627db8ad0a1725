"""Daily backtest of a strategy account under the platform's rules.

Money is integer fen at every booking (fills, fees, interest, settlement, transfers), rounded
against the borrower; prices are the data's floats and a value is floored to the fen. Each
trading day, in order:

1. settle: futures variation margin into the broker account (exact, in tenths of a point);
2. accrue: financing interest on the debt at the institutional tier's APR (calendar days,
   rounded up) and the securities-lending fee on short spot legs;
3. broker margin: CFFEX margin by date (futures_rules), `short_margin_bps` on short legs; a
   shortfall is met from on-platform cash, then the reserve; what is left is a broker forced
   reduction of the book;
4. the account's lines: margin ratio with the off-platform haircut (accounts.py); below the
   warning line a margin call tops up from the reserve, and a call still open after
   `grace_days` or a ratio below the liquidation line forces the book out;
5. the liquidity-reversal brake (brake.py), when given, may stop new financing, cap the book or
   unwind it on a schedule;
6. trade to the target (signal `lag` days old) at the close ± `impact_bps`, under the rules:
   futures opening cap and close-today fee by date, A-share/ETF lots, T+1 and stamp duty by
   date (market.rules), no sale into a sealed limit-down, no buy into a sealed limit-up and no
   trade in a leg halted that day (volume 0).

A final deficit (equity below zero) goes down the waterfall (borrower margin → reserve →
penalty → insurance → junior → senior) against the configured pool layers.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.domain.security import Security
from crowdleverage.market.rules import Side, limit_bps, trading_fees
from crowdleverage.strategies import futures_rules as fr
from crowdleverage.strategies.accounts import (
    DEFAULT_TIER,
    InstitutionalTier,
    margin_ratio_bps,
    waterfall,
)
from crowdleverage.strategies.base import LegKind, LegSpec, StrategyFrame
from crowdleverage.strategies.brake import (
    BrakeInputs,
    BrakeState,
    LiquidityBrake,
    Stage,
    volume_ratio,
)
from crowdleverage.strategies.spot_rules import basket_fee_fen, etf_fee_fen

log = logging.getLogger("crowdleverage.strategies")

BPS = 10_000
YEAR_DAYS = 365
LOT = {LegKind.ETF: 100, LegKind.ASHARE: 100, LegKind.HSHARE: 500, LegKind.BASKET: 1}
HK_COST_PPM = 1_000 + 77  # HK stamp duty 0.1% + trading fee and levies ≈ 0.0077%
ETF_LIMIT_BPS = 1_000  # an ETF's daily band, like the main board
SEAL_SLACK_BPS = 50  # closed on its low within 0.5% of the band edge: sealed


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    deposit_fen: int = 1_000_000_000  # 1000万元 own margin
    reserve_fen: int = 100_000_000  # 100万元 top-up reserve
    notional_x_equity: float = 2.0  # leg A notional per unit of equity
    impact_bps: float = 5.0
    borrow_apr_bps: int = 1_000  # securities lending (融券) fee on a short spot leg
    short_margin_bps: int = 5_000  # broker's margin on a short spot or H leg
    grace_days: int = 1
    tier: InstitutionalTier = DEFAULT_TIER
    pool_assets_fen: int = 100_000_000_000  # 10亿元
    insurance_fen: int = 1_000_000_000
    junior_fen: int = 20_000_000_000

    def __post_init__(self) -> None:
        if self.deposit_fen <= 0 or self.reserve_fen < 0 or not self.notional_x_equity > 0:
            raise InvalidInput("deposit must be positive, reserve ≥ 0, notional_x_equity > 0")


@dataclass
class Book:
    cash_fen: int
    reserve_fen: int
    debt_fen: int = 0
    broker_cash_fen: int = 0
    qa: float = 0.0
    qb: float = 0.0
    a_bought_on: dt.date | None = None
    b_opened_on: dt.date | None = None
    call_open_days: int = 0
    stats: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (
                "fees_fen",
                "interest_fen",
                "borrow_fen",
                "traded_fen",
                "margin_calls",
                "forced_exits",
                "broker_calls",
                "broker_reductions",
                "refused_lots",
                "topups_fen",
                "penalty_fen",
                "brake_unwinds",
            ),
            0,
        )
    )


@dataclass(frozen=True)
class BacktestResult:
    name: str
    # equity_fen, ratio_bps, gross_fen (leg A value), position, stage, debt_fen, margin_calls
    # and forced_exits (running counts), b_qty (leg B units: futures lots), spread_bps
    daily: pd.DataFrame
    stats: dict[str, Any]
    losses: dict[str, int]

    def table(self) -> dict[str, Any]:
        return {"strategy": self.name, **self.stats, "losses_fen": self.losses}


# ── leg arithmetic ───────────────────────────────────────────────────────────────────────


def _unit_fen(leg: LegSpec, px: float) -> float:
    mult = fr.MULTIPLIER_YUAN[leg.product] if leg.kind is LegKind.FUTURES and leg.product else 1
    return px * mult * 100.0


def _value_fen(leg: LegSpec, qty: float, px: float) -> int:
    """Signed market value, floored (an asset is never overstated; a short is rounded out)."""
    return math.floor(qty * _unit_fen(leg, px))


def _fee_fen(leg: LegSpec, side: Side, day: dt.date, qty: float, px: float, today: bool) -> int:
    amount = abs(_value_fen(leg, qty, px))
    if amount <= 0:
        return 0
    if leg.kind is LegKind.FUTURES:
        assert leg.product is not None, "dev: futures leg has a product"
        dpt = fr.to_deci_points(px)
        return fr.trade_fee_fen(leg.product, day, dpt, int(abs(qty)), close_today=today)
    if leg.kind is LegKind.ETF:
        return etf_fee_fen(amount)
    if leg.kind is LegKind.BASKET:
        return basket_fee_fen(side, day, amount)
    if leg.kind is LegKind.ASHARE:
        sec = Security.parse(leg.symbol.split(".")[0])
        return trading_fees(sec, side, day, int(abs(qty)), max(1, round(px * 100))).total_fen
    return -(-amount * HK_COST_PPM // 1_000_000) + max(500, -(-amount * 250 // 1_000_000))


def _on_platform(leg: LegSpec, qty: float) -> bool:
    return qty > 0 and leg.on_platform_when_long()


@dataclass(frozen=True, slots=True)
class DayRow:
    day: dt.date
    a_px: float
    b_px: float
    a_sealed_down: bool
    a_sealed_up: bool
    b_sealed_down: bool
    b_sealed_up: bool


def _sealed(leg: LegSpec, day: dt.date, prev: float, low: float, high: float, close: float):
    if not (prev > 0 and math.isfinite(prev)):
        return False, False
    if leg.kind is LegKind.FUTURES:
        assert leg.product is not None
        return (
            fr.is_sealed_down(leg.product, day, prev, low, close),
            fr.is_sealed_up(leg.product, day, prev, high, close),
        )
    if leg.kind in (LegKind.HSHARE, LegKind.BASKET):
        return False, False  # Hong Kong has no daily limit; a basket is many stocks
    band = ETF_LIMIT_BPS
    if leg.kind is LegKind.ASHARE:  # the board's band on that day (market.rules)
        lim = limit_bps(Security.parse(leg.symbol.split(".")[0]), day)
        if lim is None:
            return False, False
        band = lim
    # adjusted prices blur the exact limit price: within SEAL_SLACK_BPS of the band counts
    edge = band - SEAL_SLACK_BPS
    move = (close / prev - 1.0) * BPS
    return (close <= low and move <= -edge), (close >= high and move >= edge)


# ── the engine ───────────────────────────────────────────────────────────────────────────


class Engine:
    def __init__(self, sf: StrategyFrame, cfg: BacktestConfig, brake: LiquidityBrake | None):
        self.sf, self.cfg, self.brake = sf, cfg, brake
        self.a, self.b = sf.a, sf.b
        self.book = Book(cash_fen=cfg.deposit_fen, reserve_fen=cfg.reserve_fen)
        self.deposits = cfg.deposit_fen + cfg.reserve_fen

    # values -------------------------------------------------------------------------------
    def on_value(self, r: DayRow) -> int:
        return _value_fen(self.a, self.book.qa, r.a_px) if _on_platform(self.a, self.book.qa) else 0

    def off_value(self, r: DayRow) -> int:
        """Signed value of the broker-held legs (futures settle daily: zero value)."""
        bk, v = self.book, 0
        if not _on_platform(self.a, bk.qa):
            v += _value_fen(self.a, bk.qa, r.a_px)
        if self.b.kind is not LegKind.FUTURES:
            v += _value_fen(self.b, bk.qb, r.b_px)
        return v

    def nlv(self, r: DayRow) -> int:
        return self.book.broker_cash_fen + self.off_value(r)

    def equity(self, r: DayRow) -> int:
        bk = self.book
        return bk.cash_fen + bk.reserve_fen + self.on_value(r) + self.nlv(r) - bk.debt_fen

    def ratio_bps(self, r: DayRow) -> int | None:
        bk = self.book
        return margin_ratio_bps(
            self.cfg.tier, bk.cash_fen, self.on_value(r), self.nlv(r), bk.debt_fen
        )

    def broker_requirement(self, r: DayRow) -> int:
        bk, req = self.book, 0
        if self.b.kind is LegKind.FUTURES and bk.qb:
            assert self.b.product is not None
            req += fr.margin_fen(self.b.product, r.day, fr.to_deci_points(r.b_px), int(abs(bk.qb)))
        elif bk.qb < 0:
            req += -_value_fen(self.b, bk.qb, r.b_px) * self.cfg.short_margin_bps // BPS
        if bk.qa < 0:
            req += -_value_fen(self.a, bk.qa, r.a_px) * self.cfg.short_margin_bps // BPS
        return req

    # daily steps --------------------------------------------------------------------------
    def settle(self, r: DayRow, prev: DayRow | None) -> None:
        bk = self.book
        if prev is None:
            return
        if self.b.kind is LegKind.FUTURES and bk.qb:
            assert self.b.product is not None
            d = fr.to_deci_points(r.b_px) - fr.to_deci_points(prev.b_px)
            bk.broker_cash_fen += int(bk.qb) * d * fr.MULTIPLIER_YUAN[self.b.product] * 10
        days = (r.day - prev.day).days
        if bk.debt_fen > 0:
            i = -(-bk.debt_fen * self.cfg.tier.rate_apr_bps * days // (BPS * YEAR_DAYS))
            bk.debt_fen += i
            bk.stats["interest_fen"] += i
        short = sum(
            -_value_fen(leg, q, px)
            for leg, q, px in ((self.a, bk.qa, r.a_px), (self.b, bk.qb, r.b_px))
            if q < 0 and leg.kind is not LegKind.FUTURES
        )
        if short > 0:
            fee = -(-short * self.cfg.borrow_apr_bps * days // (BPS * YEAR_DAYS))
            bk.broker_cash_fen -= fee
            bk.stats["borrow_fen"] += fee

    def meet_broker_margin(self, r: DayRow) -> bool:
        """Top the broker account up to its requirement; False if it cannot be met."""
        bk = self.book
        short = self.broker_requirement(r) - self.nlv(r)
        if short <= 0:
            return True
        bk.stats["broker_calls"] += 1
        for src in ("cash_fen", "reserve_fen"):
            take = min(short, max(getattr(bk, src), 0))
            setattr(bk, src, getattr(bk, src) - take)
            bk.broker_cash_fen += take
            short -= take
        return short <= 0

    def trade_leg(self, leg: LegSpec, r: DayRow, dq: float, px: float, opened: dt.date | None):
        """Buy (dq > 0) or sell (dq < 0) `dq` units of a leg at the close ± impact."""
        bk = self.book
        side = Side.BUY if dq > 0 else Side.SELL
        today = opened == r.day
        fee = _fee_fen(leg, side, r.day, dq, px, today)
        impact = math.ceil(abs(_value_fen(leg, dq, px)) * self.cfg.impact_bps / BPS)
        bk.stats["fees_fen"] += fee + impact
        bk.stats["traded_fen"] += abs(_value_fen(leg, dq, px))
        flow = -_value_fen(leg, dq, px) if leg.kind is not LegKind.FUTURES else 0
        q_before = bk.qa if leg is self.a else bk.qb
        on_before = _on_platform(leg, q_before)
        on_after = _on_platform(leg, q_before + dq)
        if on_before or on_after:  # the financed long leg: cash on the platform
            bk.cash_fen += flow - fee - impact
            if bk.cash_fen < 0:  # draw financing for the purchase
                bk.debt_fen += -bk.cash_fen
                bk.cash_fen = 0
            elif bk.debt_fen > 0:  # proceeds repay the debt first
                pay = min(bk.cash_fen, bk.debt_fen)
                bk.debt_fen -= pay
                bk.cash_fen -= pay
        else:
            bk.broker_cash_fen += flow - fee - impact

    def blocked(self, leg: LegSpec, r: DayRow, dq: float, opened: dt.date | None) -> bool:
        down, up = (
            (r.a_sealed_down, r.a_sealed_up) if leg is self.a else (r.b_sealed_down, r.b_sealed_up)
        )
        if dq > 0 and up:
            return True
        if dq < 0 and down:
            return True
        t1 = leg.kind in (LegKind.ETF, LegKind.ASHARE, LegKind.BASKET)
        return dq < 0 and t1 and opened == r.day and (leg is self.a and self.book.qa > 0)


def _rows(sf: StrategyFrame) -> list[DayRow]:
    f = sf.frame
    out = []
    cols = {c: f[c].to_numpy(dtype=float) for c in f.columns if c not in ("signal",)}
    for i, ts in enumerate(f.index):
        day = ts.date()
        ad, au = _sealed(
            sf.a, day, cols["a_prev"][i], cols["a_low"][i], cols["a_high"][i], cols["a_px"][i]
        )
        bd, bu = _sealed(
            sf.b, day, cols["b_prev"][i], cols["b_low"][i], cols["b_high"][i], cols["b_px"][i]
        )
        # a leg that did not trade that day (halted: volume 0) can be neither bought nor sold
        if cols["a_vol"][i] == 0:
            ad = au = True
        if cols["b_vol"][i] == 0:
            bd = bu = True
        out.append(DayRow(day, cols["a_px"][i], cols["b_px"][i], ad, au, bd, bu))
    return out


def day_rows(
    sf: StrategyFrame, date_from: dt.date | None = None, date_to: dt.date | None = None
) -> list[DayRow]:
    """Each day's prices and seals in the window (for `run(rows=…)`)."""
    return _rows(window(sf, date_from, date_to))


def window(sf: StrategyFrame, date_from: dt.date | None, date_to: dt.date | None) -> StrategyFrame:
    """The frame restricted to [date_from, date_to] (signals were computed on the full data,
    causally, so restricting afterwards changes nothing before the cut)."""
    f = sf.frame
    if date_from is not None:
        f = f[f.index >= pd.Timestamp(date_from)]
    if date_to is not None:
        f = f[f.index <= pd.Timestamp(date_to)]
    if len(f) < 2:
        raise InvalidInput(f"{sf.name}: fewer than two trading days in {date_from} → {date_to}")
    return StrategyFrame(
        sf.name, sf.a, sf.b, f, instant=sf.instant, lag=sf.lag, spread_sign=sf.spread_sign
    )


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Inputs beyond the account: the market regime (a stress level in [0, 1] by date, for
    the brake), how many books like this one the pool finances (crowding), and the ETF's
    creation unit and conversion fee for an instant arbitrage."""

    regime: pd.Series | None = None
    crowd_multiple: float = 1.0
    creation_unit: int = 900_000
    conversion_fee_bps: float = 5.0


def run(
    sf: StrategyFrame,
    cfg: BacktestConfig | None = None,
    *,
    brake: LiquidityBrake | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    options: RunOptions | None = None,
    rows: list[DayRow] | None = None,
) -> BacktestResult:
    """`rows`: the window's `day_rows` when a sweep already has them (they depend on the
    legs' data and the window only, not on the signal)."""
    sf = window(sf, date_from, date_to)
    eng = Engine(sf, cfg or BacktestConfig(), brake)
    if rows is None:
        rows = _rows(sf)
    elif len(rows) != len(sf.frame) or rows[0].day != sf.frame.index[0].date():
        raise InvalidInput("backtest: rows are not this window's")
    daily = simulate(eng, rows, options or RunOptions())
    return summarise(eng, daily)


def summarise(eng: Engine, daily: pd.DataFrame) -> BacktestResult:
    bk, cfg = eng.book, eng.cfg
    eq = daily["equity_fen"].to_numpy(dtype=float)
    ret = np.diff(eq) / np.where(eq[:-1] > 0, eq[:-1], np.nan)
    ret = ret[np.isfinite(ret)]
    sd = float(ret.std(ddof=1)) if len(ret) > 1 else 0.0
    sharpe = float(ret.mean() / sd * math.sqrt(252)) if sd > 0 else 0.0
    peak = np.maximum.accumulate(eq)
    dd = np.where(peak > 0, eq / peak - 1.0, 0.0)
    worst_i = int(np.argmin(ret)) if len(ret) else 0
    years = max(len(eq) / 252.0, 1e-9)
    final = int(eq[-1])
    loss = max(0, eng.deposits - final)
    layers = {
        "borrower_margin": cfg.deposit_fen,
        "borrower_reserve": cfg.reserve_fen,
        "penalty": bk.stats["penalty_fen"],
        "insurance": cfg.insurance_fen,
        "junior": cfg.junior_fen,
        "senior": cfg.pool_assets_fen - cfg.junior_fen,
    }
    min_ratio = int(daily["ratio_bps"].min()) if daily["ratio_bps"].notna().any() else None
    costs = sum(bk.stats[k] for k in ("fees_fen", "interest_fen", "borrow_fen", "penalty_fen"))
    stats: dict[str, Any] = {
        "from": daily.index[0].date().isoformat(),
        "to": daily.index[-1].date().isoformat(),
        "days": len(eq),
        "final_equity_fen": final,
        "pnl_fen": final - eng.deposits,
        "return_pct": round((final / eng.deposits - 1) * 100, 2),
        "sharpe": round(sharpe, 2),
        "max_drawdown_pct": round(float(dd.min()) * 100, 2),
        "worst_day": daily.index[worst_i + 1].date().isoformat() if len(ret) else None,
        "worst_day_pct": round(float(ret[worst_i]) * 100, 2) if len(ret) else 0.0,
        "turnover_x_per_year": round(bk.stats["traded_fen"] / eng.deposits / years, 2),
        "days_in_market": int((daily["position"] != 0).sum()),
        "min_ratio_bps": min_ratio,
        **bk.stats,
        # attribution: pnl = market P&L − fees − interest − borrow fees − penalties
        "market_pnl_fen": final - eng.deposits + costs,
    }
    return BacktestResult(eng.sf.name, daily, stats, waterfall(loss, layers))


__all__ = ["BacktestConfig", "BacktestResult", "BrakeState", "Engine", "Stage", "run"]


# ── book operations ──────────────────────────────────────────────────────────────────────

SIZE_STEPS = (1.0, 0.75, 0.5, 0.35, 0.25, 0.15, 0.1)
BROKER_BUFFER = 1.5  # cash moved to the broker on opening: requirement × 1.5


def _lot_round(leg: LegSpec, q: float) -> float:
    lot = LOT.get(leg.kind, 1)
    if leg.kind is LegKind.FUTURES:
        return float(math.floor(abs(q)))
    if leg.kind is LegKind.BASKET:
        return abs(q)
    return float(math.floor(abs(q) / lot) * lot)


def _pos(bk: Book) -> int:
    if bk.qa:
        return 1 if bk.qa > 0 else -1
    if bk.qb:
        return -1 if bk.qb > 0 else 1
    return 0


def _snapshot(bk: Book) -> Book:
    return Book(**{**bk.__dict__, "stats": dict(bk.stats)})


def _restore(eng: Engine, snap: Book) -> None:
    eng.book = snap


def _draw_for_broker(eng: Engine, r: DayRow, allow_financing: bool) -> None:
    """Meet the broker's requirement from cash and reserve, then (if allowed and within the
    tier's limits) with financing drawn on the platform."""
    bk = eng.book
    if eng.meet_broker_margin(r) or not allow_financing:
        return
    short = eng.broker_requirement(r) - eng.nlv(r)
    room = eng.cfg.tier.max_debt_fen - bk.debt_fen
    take = max(0, min(short, room))
    bk.debt_fen += take
    bk.broker_cash_fen += take


def open_book(eng: Engine, r: DayRow, sig: int, h: float, opened_today: int) -> int:
    """Open a +1/−1 book sized to `notional_x_equity`; returns futures lots opened."""
    cfg, a, b = eng.cfg, eng.a, eng.b
    eq = eng.equity(r)
    if eq <= 0 or not (h > 0 and math.isfinite(h)):
        return 0
    if (sig > 0 and (r.a_sealed_up or r.b_sealed_down)) or (
        sig < 0 and (r.a_sealed_down or r.b_sealed_up)
    ):
        return 0
    for step in SIZE_STEPS:
        n_a = cfg.notional_x_equity * eq * step
        if b.kind is LegKind.FUTURES:
            assert b.product is not None
            wanted = int(h * n_a // _unit_fen(b, r.b_px))
            cap = fr.rules_on(b.product, r.day).open_cap_lots - opened_today
            lots = max(0, min(wanted, cap))
            if step == 1.0:
                eng.book.stats["refused_lots"] += max(0, wanted - lots)
            qb = float(lots)
            qa = _lot_round(a, lots * _unit_fen(b, r.b_px) / h / _unit_fen(a, r.a_px))
        else:
            qa = _lot_round(a, n_a / _unit_fen(a, r.a_px))
            qb = _lot_round(b, h * n_a / _unit_fen(b, r.b_px))
        if qa <= 0 or qb <= 0:
            return 0
        snap = _snapshot(eng.book)
        eng.book.a_bought_on = r.day if sig > 0 else None
        eng.book.b_opened_on = r.day
        # what the broker will need once the book is on, moved from own cash first
        trial_b = -sig * qb
        if b.kind is LegKind.FUTURES:
            assert b.product is not None
            need = fr.margin_fen(b.product, r.day, fr.to_deci_points(r.b_px), int(qb))
        elif trial_b < 0:
            need = -_value_fen(b, trial_b, r.b_px) * cfg.short_margin_bps // BPS
        else:
            need = _value_fen(b, qb, r.b_px)  # a long H leg is paid in full at the broker
        if sig < 0:
            need += _value_fen(a, qa, r.a_px) * cfg.short_margin_bps // BPS
        move = min(max(eng.book.cash_fen, 0), int(need * BROKER_BUFFER))
        eng.book.cash_fen -= move
        eng.book.broker_cash_fen += move
        eng.trade_leg(a, r, sig * qa, r.a_px, None)
        eng.book.qa = sig * qa
        eng.trade_leg(b, r, -sig * qb, r.b_px, None)
        eng.book.qb = -sig * qb
        _draw_for_broker(eng, r, allow_financing=True)
        ratio = eng.ratio_bps(r)
        ok_ratio = ratio is None or ratio >= cfg.tier.initial_ratio_bps
        ok_debt = eng.book.debt_fen <= cfg.tier.max_debt_fen
        lev_ok = eng.book.debt_fen * 100 <= max(eq, 0) * cfg.tier.max_leverage_x100
        if ok_ratio and ok_debt and lev_ok and eng.broker_requirement(r) <= eng.nlv(r):
            return int(qb) if b.kind is LegKind.FUTURES else 0
        _restore(eng, snap)
    return 0


def _close_leg(eng: Engine, leg: LegSpec, r: DayRow, frac: float) -> bool:
    bk = eng.book
    q = bk.qa if leg is eng.a else bk.qb
    if not q:
        return True
    dq = -q if frac >= 1.0 else -math.copysign(_lot_round(leg, abs(q) * frac), q)
    if not dq:
        return True
    opened = bk.a_bought_on if leg is eng.a else bk.b_opened_on
    if eng.blocked(leg, r, dq, opened):
        return False
    eng.trade_leg(leg, r, dq, r.a_px if leg is eng.a else r.b_px, opened)
    if leg is eng.a:
        bk.qa += dq
    else:
        bk.qb += dq
    return True


def reduce_book(
    eng: Engine, r: DayRow, frac: float, *, forced: bool, penalty: bool = False
) -> bool:
    """Close `frac` of both legs (1.0 = everything). A voluntary exit waits while a leg is
    blocked (seal, T+1) so the book stays hedged; a forced one sells what it can. `penalty`:
    a platform liquidation, which pays the liquidation penalty on the spot leg's value closed
    (on or off the platform; a futures leg's notional is not charged)."""
    if not forced and (
        eng.blocked(eng.a, r, -eng.book.qa, eng.book.a_bought_on)
        or eng.blocked(eng.b, r, -eng.book.qb, eng.book.b_opened_on)
    ):
        return False
    before_a = abs(_value_fen(eng.a, eng.book.qa, r.a_px))
    ok_a = _close_leg(eng, eng.a, r, frac)
    ok_b = _close_leg(eng, eng.b, r, frac)
    closed_a = before_a - abs(_value_fen(eng.a, eng.book.qa, r.a_px))
    if penalty and closed_a > 0:  # charged on the spot leg the liquidation closes
        pen = -(-closed_a * eng.cfg.tier.penalty_bps // BPS)
        eng.book.cash_fen -= pen
        eng.book.stats["penalty_fen"] += pen
    sweep(eng, r)
    return ok_a and ok_b


def sweep(eng: Engine, r: DayRow) -> None:
    """Broker cash beyond the requirement comes back to the platform and repays debt."""
    bk = eng.book
    excess = eng.nlv(r) - int(eng.broker_requirement(r) * BROKER_BUFFER)
    if _pos(bk) == 0:
        excess = bk.broker_cash_fen
    excess = min(excess, bk.broker_cash_fen)
    if excess > 0:
        bk.broker_cash_fen -= excess
        bk.cash_fen += excess
    pay = min(max(bk.cash_fen, 0), bk.debt_fen)
    bk.debt_fen -= pay
    bk.cash_fen -= pay


def instant_arb(eng: Engine, r: DayRow, sig: int, creation_unit: int, conversion_bps: float):
    """ETF creation/redemption done at one close: +1 buys ETF units and redeems them (sells
    the basket), −1 buys the basket, creates and sells units. Financed for the day."""
    bk, cfg, a, b = eng.book, eng.cfg, eng.a, eng.b
    eq = eng.equity(r)
    if eq <= 0 or (sig > 0 and r.a_sealed_up) or (sig < 0 and r.a_sealed_down):
        return
    unit_fen = _unit_fen(a, r.a_px) * creation_unit
    units = int(cfg.notional_x_equity * eq // unit_fen)
    max_debt = min(cfg.tier.max_debt_fen, max(eq, 0) * cfg.tier.max_leverage_x100 // 100)
    while units > 0 and units * unit_fen - bk.cash_fen > max_debt:
        units -= 1
    if units <= 0:
        return
    q = float(units * creation_unit)
    conv = math.ceil(abs(_value_fen(b, q, r.b_px)) * conversion_bps / BPS)
    # leg A = the ETF, leg B = the basket at NAV; the two trades offset through conversion
    eng.trade_leg(a, r, sig * q, r.a_px, None)
    bk.qa = sig * q
    eng.trade_leg(b, r, -sig * q, r.b_px, None)
    bk.qa = 0.0
    bk.broker_cash_fen -= conv
    bk.stats["fees_fen"] += conv
    days = 1
    if bk.debt_fen > 0:
        i = -(-bk.debt_fen * cfg.tier.rate_apr_bps * days // (BPS * YEAR_DAYS))
        bk.debt_fen += i
        bk.stats["interest_fen"] += i
    sweep(eng, r)


def _brake_inputs(eng: Engine, r: DayRow, t: int, arr: dict[str, np.ndarray], crowd: float):
    sf, bk, p = eng.sf, eng.book, eng.brake.params if eng.brake else None
    assert p is not None
    d = _pos(bk)
    lo = max(0, t - p.lookback_days)
    adverse = float(sf.spread_sign * d * (arr["spread_bps"][t] - arr["spread_bps"][lo]))
    gross = abs(_value_fen(eng.a, bk.qa, r.a_px))
    share = int(crowd * gross * BPS // max(eng.cfg.pool_assets_fen, 1))
    vr = min(
        volume_ratio(arr["a_vol"], t, p.volume_avg_days),
        volume_ratio(arr["b_vol"], t, p.volume_avg_days),
    )
    reg = float(arr["regime"][t]) if np.isfinite(arr["regime"][t]) else 0.0
    step = fr.known_margin_step(r.day) if eng.b.kind is LegKind.FUTURES else 1.0
    return BrakeInputs(r.day, share, adverse if math.isfinite(adverse) else 0.0, vr, reg, step)


def _lines(eng: Engine, r: DayRow) -> bool:
    """Apply the account's lines; True when the book was forced out (account closed)."""
    bk, tier = eng.book, eng.cfg.tier
    ratio = eng.ratio_bps(r)
    if ratio is None or ratio >= tier.warning_ratio_bps:
        bk.call_open_days = 0
        return False
    if ratio >= tier.liquidation_ratio_bps:
        if bk.call_open_days == 0:
            bk.stats["margin_calls"] += 1
        bk.call_open_days += 1
        while bk.reserve_fen > 0 and (eng.ratio_bps(r) or 0) < tier.initial_ratio_bps:
            step = min(bk.reserve_fen, max(bk.debt_fen // 100, 1))
            bk.reserve_fen -= step
            bk.cash_fen += step
            bk.stats["topups_fen"] += step
        now = eng.ratio_bps(r)
        if now is not None and now >= tier.warning_ratio_bps:
            bk.call_open_days = 0
            return False
        if bk.call_open_days <= eng.cfg.grace_days:
            return False
    bk.stats["forced_exits"] += 1
    log.info("strategy forced exit", extra={"day": r.day.isoformat(), "ratio_bps": ratio})
    reduce_book(eng, r, 1.0, forced=True, penalty=True)
    return True


def _broker(eng: Engine, r: DayRow, allow_financing: bool) -> None:
    """The broker's margin call; a shortfall nobody meets is a broker forced reduction."""
    bk = eng.book
    if not (bk.qb or bk.qa < 0):
        return
    _draw_for_broker(eng, r, allow_financing)
    req, nlv = eng.broker_requirement(r), eng.nlv(r)
    if req > nlv:
        bk.stats["broker_reductions"] += 1
        frac = 1.0 if nlv <= 0 else min(1.0, 1.0 - nlv / req + 0.1)
        reduce_book(eng, r, frac, forced=True)


DAILY_COLUMNS = (
    "equity_fen",
    "ratio_bps",
    "gross_fen",
    "position",
    "stage",
    "debt_fen",
    "margin_calls",
    "forced_exits",
    "b_qty",
)


def _record(out: dict[str, list[Any]], eng: Engine, r: DayRow, stage: Stage) -> None:
    bk = eng.book
    ratio = eng.ratio_bps(r)
    out["equity_fen"].append(eng.equity(r))
    out["ratio_bps"].append(np.nan if ratio is None else ratio)
    out["gross_fen"].append(abs(_value_fen(eng.a, bk.qa, r.a_px)))
    out["position"].append(_pos(bk))
    out["stage"].append(int(stage))
    out["debt_fen"].append(bk.debt_fen)
    out["margin_calls"].append(bk.stats["margin_calls"])
    out["forced_exits"].append(bk.stats["forced_exits"])
    out["b_qty"].append(bk.qb)


def simulate(eng: Engine, rows: list[DayRow], opts: RunOptions) -> pd.DataFrame:
    """Run the days in order (see the module docstring for each day's steps)."""
    sf, brake = eng.sf, eng.brake
    f = sf.frame
    arr = {
        c: f[c].to_numpy(dtype=float) for c in ("signal", "hedge", "spread_bps", "a_vol", "b_vol")
    }
    reg = opts.regime.reindex(f.index).ffill() if opts.regime is not None else None
    arr["regime"] = reg.to_numpy(dtype=float) if reg is not None else np.zeros(len(f))
    closed, ref_qa, cap_now = False, 0.0, 1.0
    out: dict[str, list[Any]] = {k: [] for k in DAILY_COLUMNS}
    prev: DayRow | None = None
    for t, r in enumerate(rows):
        eng.settle(r, prev)
        stage = Stage.NORMAL
        cap = 1.0
        if brake is not None:
            st = brake.update(_brake_inputs(eng, r, t, arr, opts.crowd_multiple))
            stage, cap = st.stage, st.cap_fraction
        pos = _pos(eng.book)
        if stage >= Stage.LIMIT and pos != 0 and not closed:
            ref_qa = ref_qa or abs(eng.book.qa)
            cap_now = min(cap_now, cap)  # a brake never loosens while it holds
            allowed = ref_qa * cap_now
            if abs(eng.book.qa) > allowed + 1e-9:
                frac = 1.0 if allowed <= 0 else 1.0 - allowed / abs(eng.book.qa)
                if reduce_book(eng, r, frac, forced=False):
                    eng.book.stats["brake_unwinds"] += 1
        elif stage < Stage.LIMIT:
            ref_qa, cap_now = 0.0, 1.0
        if not sf.instant and not closed:
            _broker(eng, r, allow_financing=stage < Stage.NO_NEW)
            closed = _lines(eng, r)
        sig = int(arr["signal"][t - sf.lag]) if t >= sf.lag else 0
        h = float(arr["hedge"][t - sf.lag]) if t >= sf.lag else 1.0
        pos = _pos(eng.book)
        if closed and pos != 0:  # a forced exit that a seal held up goes on the next day
            reduce_book(eng, r, 1.0, forced=True, penalty=True)
        if closed or (stage >= Stage.NO_NEW and sig != pos):
            sig = 0  # no new financing: an exit or a reversal only closes
        pos = _pos(eng.book)
        if sf.instant:
            if sig and not closed and stage < Stage.NO_NEW:
                instant_arb(eng, r, sig, opts.creation_unit, opts.conversion_fee_bps)
        elif sig != pos and not closed:
            done = pos == 0 or reduce_book(eng, r, 1.0, forced=False)
            if done and sig != 0 and stage < Stage.NO_NEW:
                open_book(eng, r, sig, h, 0)
        _record(out, eng, r, stage)
        prev = r
    daily = pd.DataFrame(out, index=f.index)
    daily["spread_bps"] = arr["spread_bps"]
    return daily
