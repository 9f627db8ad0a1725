"""Institutional strategy books in the stress run (issue 17, item 5).

A run can carry strategy books (`strategies.stress.BookExposure`: basis, A/H, ETF) and one of
the strategy shocks of `strategies.stress.SCENARIOS` (basis blow-out, A/H premium jump, ETF
discount, the 2015-09 exchange rule change). On every path of every scenario each book takes
the shock times a severity: 1 on every path by default, or a log-normal draw
(`severity_sd` > 0) from the chunk's own seed stream `SeedSequence(seed, spawn_key=(k, i,
STRATEGY_KEY))` — separate from the retail stream, so the retail results are unchanged and a
run does not depend on how chunks were spread over workers.

A book's loss is absorbed by its own equity, then its own reserve; the rest (its deficit) is
added to the retail accounts' deficit of the same path and goes down the same waterfall —
liquidation penalties → insurance fund → junior → senior (engine.allocate_deficit). Each shared
layer's absorption is attributed to the strategy books pro rata to their share of the path's
deficit, so strategy margin + reserve + penalty + insurance + junior + senior = the books'
loss on every path. Floats: analytics, not accounting.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.strategies.stress import SCENARIOS as SHOCKS
from crowdleverage.strategies.stress import BookExposure, book_pnl

STRATEGY_KEY = 20_000
SHARED_LAYERS = ("penalty", "insurance", "junior", "senior")
STRATEGY_LAYERS = ("strategy_margin", "strategy_reserve", *SHARED_LAYERS)


@dataclass(frozen=True)
class StrategyStress:
    """The strategy books of a run and the shock they take on every path."""

    books: tuple[BookExposure, ...]
    shock: str = "basis_blowout"
    severity_sd: float = 0.0  # sd of log severity per path; 0: the nominal shock everywhere
    unwind_cost_bps: float = 300.0

    def __post_init__(self) -> None:
        if not self.books:
            raise InvalidInput("stress: strategy books: at least one book")
        if self.shock not in SHOCKS:
            raise InvalidInput(
                f"stress: unknown strategy shock {self.shock!r}; one of {', '.join(SHOCKS)}"
            )
        if not (math.isfinite(self.severity_sd) and self.severity_sd >= 0):
            raise InvalidInput("stress: severity_sd must be a finite number ≥ 0")

    def losses(
        self, paths: int, seed: int, scenario_no: int, chunk_no: int
    ) -> dict[str, np.ndarray]:
        """Per path (yuan): the books' total loss, what their equity and reserve absorbed and
        the deficit left for the pool's waterfall."""
        row = SHOCKS[self.shock].row()
        shocks = np.broadcast_to(row, (paths, row.size)).copy()
        if self.severity_sd > 0:
            ss = np.random.SeedSequence(seed, spawn_key=(scenario_no, chunk_no, STRATEGY_KEY))
            sev = np.random.default_rng(ss).lognormal(0.0, self.severity_sd, size=paths)
            shocks[:, :3] *= sev[:, None]  # spread moves scale; the new margin rate does not
        pnl = book_pnl(list(self.books), shocks, unwind_cost_bps=self.unwind_cost_bps)
        loss = np.clip(-pnl, 0.0, None)  # (P, B) fen
        equity = np.array([max(b.equity_fen, 0.0) for b in self.books])
        reserve = np.array([max(b.reserve_fen, 0.0) for b in self.books])
        margin = np.minimum(loss, equity[None])
        res = np.minimum(loss - margin, reserve[None])
        deficit = loss - margin - res
        return {
            "loss": loss.sum(1) / 100.0,
            "strategy_margin": margin.sum(1) / 100.0,
            "strategy_reserve": res.sum(1) / 100.0,
            "deficit": deficit.sum(1) / 100.0,
        }

    def capital_yuan(self) -> tuple[float, float]:
        """(Σ equity, Σ reserve) of the books, yuan."""
        return (
            sum(max(b.equity_fen, 0.0) for b in self.books) / 100.0,
            sum(max(b.reserve_fen, 0.0) for b in self.books) / 100.0,
        )


def attribute(
    losses: dict[str, np.ndarray], absorbed: dict[str, np.ndarray], total_deficit: np.ndarray
) -> dict[str, np.ndarray]:
    """The strategy books' part of each layer (yuan per path): their own equity and reserve in
    full, each shared layer pro rata to their share of the path's deficit."""
    d = losses["deficit"]
    share = np.divide(d, total_deficit, out=np.zeros_like(d), where=total_deficit > 1e-12)
    out = {
        "strategy_margin": losses["strategy_margin"],
        "strategy_reserve": losses["strategy_reserve"],
    }
    for name in SHARED_LAYERS:
        out[name] = absorbed[name] * share
    out["loss"] = losses["loss"]
    return out


_BOOK_FIELDS = {
    "name": str, "kind": str, "direction": int, "spread_sign": int, "notional_fen": float,
    "equity_fen": float, "futures_notional_fen": float, "margin_bps": float,
    "free_fraction": float, "reserve_fen": float,
}  # fmt: skip
_REQUIRED = ("name", "kind", "direction", "spread_sign", "notional_fen", "equity_fen")


def load_strategy_toml(path: Path) -> StrategyStress:
    """A strict TOML: top-level `shock`, `severity_sd`, `unwind_cost_bps` (optional) and one
    `[[book]]` table per book with BookExposure's fields (amounts in fen)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InvalidInput(f"{path}: {e}") from e
    top = {"shock", "severity_sd", "unwind_cost_bps", "book"}
    if extra := set(raw) - top:
        raise InvalidInput(f"{path}: unknown key(s) {sorted(extra)}")
    books_raw = raw.get("book")
    if not isinstance(books_raw, list) or not books_raw:
        raise InvalidInput(f"{path}: at least one [[book]] table")
    books = []
    for n, b in enumerate(books_raw, start=1):
        if not isinstance(b, dict):
            raise InvalidInput(f"{path}: book {n} is not a table")
        if extra := set(b) - set(_BOOK_FIELDS):
            raise InvalidInput(f"{path}: book {n}: unknown key(s) {sorted(extra)}")
        if missing := [k for k in _REQUIRED if k not in b]:
            raise InvalidInput(f"{path}: book {n}: missing {missing}")
        kw: dict[str, object] = {}
        for k, v in b.items():
            typ = _BOOK_FIELDS[k]
            ok = isinstance(v, str) if typ is str else (
                isinstance(v, int) and not isinstance(v, bool) if typ is int
                else isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            )  # fmt: skip
            if not ok:
                raise InvalidInput(f"{path}: book {n}: {k} must be {typ.__name__}")
            kw[k] = typ(v)
        if kw["direction"] not in (-1, 0, 1) or kw["spread_sign"] not in (-1, 1):
            raise InvalidInput(f"{path}: book {n}: direction must be -1/0/1, spread_sign -1/1")
        for k in ("notional_fen", "futures_notional_fen", "reserve_fen"):
            if float(kw.get(k, 0.0)) < 0:  # type: ignore[arg-type]
                raise InvalidInput(f"{path}: book {n}: {k} must be ≥ 0")
        books.append(BookExposure(**kw))  # type: ignore[arg-type]
    opts: dict[str, object] = {}
    if "shock" in raw:
        if not isinstance(raw["shock"], str):
            raise InvalidInput(f"{path}: shock must be a string")
        opts["shock"] = raw["shock"]
    for k in ("severity_sd", "unwind_cost_bps"):
        if k in raw:
            v = raw[k]
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise InvalidInput(f"{path}: {k} must be a number")
            opts[k] = float(v)
    return StrategyStress(tuple(books), **opts)  # type: ignore[arg-type]
