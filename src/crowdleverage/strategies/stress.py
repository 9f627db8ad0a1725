"""Stress hook: the strategy books' P&L under scenario shocks, as arrays the stress engine
(risk/stress/, issue 13b) adds to the pool's loss distribution.

A book is summarised by its exposure (`BookExposure`, from a backtest's last day or the live
account). A shock is a vector of market changes, one row per path:
- `basis_bps`:  change of the futures basis (F/S − 1) in bps — a basis blow-out is negative;
- `ah_bps`:     change of the A/H premium (A / H_cny − 1) in bps;
- `etf_bps`:    change of the ETF premium (P / NAV − 1) in bps — a discount is negative;
- `margin_bps`: the futures margin rate after an exchange rule change (0 = unchanged).

A book's P&L = its spread exposure × the move against it, and under a margin rise the cash
the broker calls beyond the book's free equity is met by a forced unwind of that share of the
book at `unwind_cost_bps` (no liquidity: the 2015-09-07 volume fell 93.6%). The pool loses what
a book loses beyond its own equity (before reserve, insurance and tranches, which the stress
engine's waterfall applies). Floats: this is a risk model, not accounting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.strategies.backtest import BacktestResult
from crowdleverage.strategies.base import LegKind, StrategyFrame
from crowdleverage.strategies.futures_rules import rules_on

FACTORS = ("basis_bps", "ah_bps", "etf_bps", "margin_bps")
KIND_FACTOR = {"basis": 0, "ah": 1, "etf": 2}


@dataclass(frozen=True, slots=True)
class BookExposure:
    name: str
    kind: str  # "basis", "ah", "etf"
    direction: int  # +1 / −1 as in the strategy frame, 0 flat
    spread_sign: int  # +1: a +1 book loses when the spread rises (StrategyFrame.spread_sign)
    notional_fen: float  # leg A notional
    equity_fen: float
    futures_notional_fen: float = 0.0
    margin_bps: float = 0.0  # futures margin in force
    free_fraction: float = 0.5  # share of equity that can meet a broker call without selling
    reserve_fen: float = 0.0  # the account's reserve, used after its equity (stress waterfall)

    def __post_init__(self) -> None:
        if self.kind not in KIND_FACTOR:
            raise InvalidInput(f"stress: unknown book kind {self.kind!r}")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    basis_bps: float = 0.0
    ah_bps: float = 0.0
    etf_bps: float = 0.0
    margin_bps: float = 0.0

    def row(self) -> np.ndarray:
        return np.array([self.basis_bps, self.ah_bps, self.etf_bps, self.margin_bps])


# Calibrated on the shipped 2015 data (see the tests): the IF basis went from −5.89% on
# 2015-07-07 to −11.89% on 2015-09-02 (−600 bps); the 50ETF closed at a 1.82% discount on
# 2015-08-25; CFFEX margin went from 10% to 40% between 2015-08-26 and 2015-09-07.
SCENARIOS: dict[str, Scenario] = {
    "basis_blowout": Scenario("basis_blowout", basis_bps=-600.0),
    "ah_premium_jump": Scenario("ah_premium_jump", ah_bps=2_000.0),
    "etf_discount": Scenario("etf_discount", etf_bps=-300.0),
    "rule_change_2015_09": Scenario("rule_change_2015_09", basis_bps=-300.0, margin_bps=4_000.0),
}


def exposure_from(result: BacktestResult, sf: StrategyFrame, kind: str) -> BookExposure:
    """The book on a backtest's last day; a futures leg's margin is the rule in force."""
    last = result.daily.iloc[-1]
    margin = 0.0
    fut = 0.0
    if sf.b.kind is LegKind.FUTURES and sf.b.product is not None:
        fut = float(last["gross_fen"])
        margin = float(rules_on(sf.b.product, result.daily.index[-1].date()).margin_bps)
    return BookExposure(
        result.name,
        kind,
        int(last["position"]),
        sf.spread_sign,
        float(last["gross_fen"]),
        float(last["equity_fen"]),
        futures_notional_fen=fut,
        margin_bps=margin,
    )


def book_pnl(books: list[BookExposure], shocks: np.ndarray, unwind_cost_bps: float = 300.0):
    """P&L per path and book (fen, float): array (n_paths, n_books)."""
    shocks = np.atleast_2d(np.asarray(shocks, dtype=float))
    if shocks.shape[1] != len(FACTORS):
        raise InvalidInput(f"stress: shocks need {len(FACTORS)} columns {FACTORS}")
    out = np.zeros((shocks.shape[0], len(books)))
    for j, b in enumerate(books):
        move = shocks[:, KIND_FACTOR[b.kind]]
        pnl = -b.spread_sign * b.direction * move / 1e4 * b.notional_fen
        new_margin = shocks[:, 3]
        rise = np.where(new_margin > b.margin_bps, new_margin - b.margin_bps, 0.0)
        call = rise / 1e4 * b.futures_notional_fen
        free = max(b.equity_fen, 0.0) * b.free_fraction
        forced = np.where(call > free, (call - free) / np.maximum(call, 1.0), 0.0)
        pnl -= forced * b.notional_fen * unwind_cost_bps / 1e4
        out[:, j] = pnl
    return out


def pool_loss(books: list[BookExposure], shocks: np.ndarray, **kw: Any) -> np.ndarray:
    """The pool's loss per path (fen, ≥ 0): what each book loses beyond its own equity,
    summed over books — the array to add to the pool's loss distribution."""
    pnl = book_pnl(books, shocks, **kw)
    equity = np.array([max(b.equity_fen, 0.0) for b in books])
    return np.clip(-(pnl + equity), 0.0, None).sum(axis=1)


def scenario_table(books: list[BookExposure], **kw: Any) -> dict[str, dict[str, float]]:
    """Each named scenario's book P&L and pool loss (for reports)."""
    rows = np.vstack([s.row() for s in SCENARIOS.values()])
    pnl = book_pnl(books, rows, **kw)
    loss = pool_loss(books, rows, **kw)
    return {
        name: {"book_pnl_fen": float(pnl[i].sum()), "pool_loss_fen": float(loss[i])}
        for i, name in enumerate(SCENARIOS)
    }


def historical_changes(
    frames: dict[str, StrategyFrame], horizon_days: int = 5
) -> dict[str, np.ndarray]:
    """`horizon_days` changes of each strategy's spread (bps) from its frame, keyed by the
    factor of its kind ({"basis": frame, "ah": frame, "etf": frame}) — the history that
    `bootstrap_shocks` draws from."""
    if horizon_days < 1:
        raise InvalidInput("stress: horizon_days must be ≥ 1")
    out: dict[str, np.ndarray] = {}
    for kind, sf in frames.items():
        if kind not in KIND_FACTOR:
            raise InvalidInput(f"stress: unknown book kind {kind!r}")
        spread = sf.frame["spread_bps"].to_numpy(dtype=float)
        change = spread[horizon_days:] - spread[:-horizon_days]
        out[FACTORS[KIND_FACTOR[kind]]] = change[np.isfinite(change)]
    return out


def bootstrap_shocks(
    changes: dict[str, np.ndarray], n_paths: int, seed: int, margin_bps: float = 0.0
) -> np.ndarray:
    """Monte Carlo shocks: each factor's change drawn from its historical changes (e.g. the
    5-day spread changes of the shipped data), one seed per chunk so that results do not
    depend on how the stress engine splits paths over workers."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n_paths, len(FACTORS)))
    for i, f in enumerate(FACTORS[:3]):
        hist = np.asarray(changes.get(f, np.zeros(1)), dtype=float)
        hist = hist[np.isfinite(hist)]
        out[:, i] = rng.choice(hist, size=n_paths) if len(hist) else 0.0
    out[:, 3] = margin_bps
    return out
