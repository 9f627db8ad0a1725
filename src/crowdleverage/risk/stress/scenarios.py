"""Stress scenarios, the chunked runner (in process or on Dask) and the statistics.

Historical scenarios (on the shipped data):
- `cb2016`: the January 2016 circuit-breaker weeks on the real stocks (prices, seals and halts
  as they happened), 2016-01-04 → 2016-01-29.
- `crash2015`, `deval2015`, `gfc2008`, `covid2020`: the CSI 300's real daily path (NetEase
  file, 2002 → 2020) drives the one-factor model fitted to the shipped stocks; seals, halts and
  impact come from the market model on the date's price bands.
Monte Carlo `mc60`: GARCH(1,1)-t factor paths (fitted to the CSI 300 2005 → 2020) with
Student-t idiosyncratic returns whose volatility clusters with the factor's, on today's bands.

Each path draws its own universe of securities from the fitted stocks. Paths run in chunks;
chunk i of scenario k uses the seed `SeedSequence(seed, spawn_key=(k, i))`, and the book comes
from `spawn_key=(BOOK_KEY,)`, so a run's results depend on the seed and the chunk size only,
never on how many workers computed them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.risk.stress.data import (
    FactorModel,
    Garch,
    Panel,
    fit_factor_model,
    fit_garch,
    load_index,
    load_panel,
)
from crowdleverage.risk.stress.engine import (
    LAYERS,
    BookArrays,
    ChunkResult,
    PolicyArrays,
    make_book,
    simulate,
)
from crowdleverage.risk.stress.market import Market, ModelMarket, PanelMarket
from crowdleverage.risk.stress.policy import Book, MarginPolicy
from crowdleverage.risk.stress.strategy import STRATEGY_LAYERS, StrategyStress

log = logging.getLogger("crowdleverage.stress")

BOOK_KEY = 10_000
UNIVERSE = 30  # securities per path


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "panel" | "index" | "mc"
    title: str
    start: dt.date | None = None
    end: dt.date | None = None

    def days(self, book: Book) -> int:
        if self.kind == "mc":
            return book.horizon_days
        if self.kind == "panel":
            p = load_panel()
            assert self.start is not None and self.end is not None
            return sum(1 for d in p.dates if self.start <= d <= self.end)
        assert self.start is not None and self.end is not None
        return len(load_index("csi300").returns(self.start, self.end)[0])


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("cb2016", "panel", "2016-01 circuit breaker (real stocks)",
                 dt.date(2016, 1, 4), dt.date(2016, 1, 29)),
        Scenario("crash2015", "index", "2015 crash (CSI 300 path)",
                 dt.date(2015, 6, 15), dt.date(2015, 9, 30)),
        Scenario("deval2015", "index", "2015-08 devaluation (CSI 300 path)",
                 dt.date(2015, 8, 11), dt.date(2015, 9, 15)),
        Scenario("gfc2008", "index", "2008 (CSI 300 path)",
                 dt.date(2008, 1, 14), dt.date(2008, 11, 4)),
        Scenario("covid2020", "index", "2020-02-03 and March 2020 (CSI 300 path)",
                 dt.date(2020, 1, 20), dt.date(2020, 3, 23)),
        Scenario("mc60", "mc", "Monte Carlo, 60 days, GARCH-t"),
    )
}  # fmt: skip
HISTORICAL = ("cb2016", "crash2015", "deval2015", "gfc2008", "covid2020")


@dataclass(frozen=True)
class ChunkSpec:
    scenario: Scenario
    scenario_no: int
    chunk_no: int
    paths: int
    seed: int
    policy: MarginPolicy
    book: Book
    book_arrays: BookArrays
    model: FactorModel
    garch: Garch
    factor: np.ndarray | None  # (T,) historical factor log returns
    panel: Panel | None
    panel_d0: int
    horizon: int
    as_of: dt.date
    umbrella: bool = False
    strategy: StrategyStress | None = None


def _universe(rng: np.random.Generator, P: int, candidates: np.ndarray) -> np.ndarray:
    keys = rng.random((P, candidates.size))
    return candidates[np.argsort(keys, axis=1)[:, :UNIVERSE]]


def _market(spec: ChunkSpec, rng: np.random.Generator) -> tuple[Market, np.ndarray]:
    m, P, T = spec.model, spec.paths, spec.horizon
    if spec.scenario.kind == "panel":
        assert spec.panel is not None
        pan = spec.panel
        ok = pan.present[spec.panel_d0] & ~np.isnan(pan.prev_close[spec.panel_d0])
        pick = _universe(rng, P, np.nonzero(ok)[0])
        return PanelMarket(pan, pick, spec.panel_d0, m), pick
    pick = _universe(rng, P, np.arange(len(m.codes)))
    if spec.scenario.kind == "index":
        assert spec.factor is not None and spec.scenario.start is not None
        f = np.broadcast_to(spec.factor[None, :], (P, T)).copy()
        vs = np.ones((P, T))
        limits = m.limit_bps(spec.scenario.start)
    else:
        f, vs = _garch_paths(spec.garch, m, P, T, rng)
        limits = m.limit_bps(spec.as_of)
    return ModelMarket(m, pick, f, vs, limits, rng), pick


def _garch_paths(
    g: Garch, m: FactorModel, P: int, T: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    z = rng.standard_t(g.nu, size=(P, T)) * math.sqrt((g.nu - 2.0) / g.nu)
    var = np.full(P, g.start_var)
    f = np.empty((P, T))
    vs = np.empty((P, T))
    for t in range(T):
        sd = np.sqrt(var)
        f[:, t] = g.mu + sd * z[:, t]
        vs[:, t] = sd / m.factor_vol
        var = g.omega + g.alpha * f[:, t] ** 2 + g.beta * var
    return f, vs


def run_chunk(spec: ChunkSpec) -> ChunkResult:
    """One chunk of paths of one scenario; deterministic in (seed, scenario_no, chunk_no)."""
    ss = np.random.SeedSequence(spec.seed, spawn_key=(spec.scenario_no, spec.chunk_no))
    rng = np.random.default_rng(ss)
    mkt, pick = _market(spec, rng)
    pol = PolicyArrays.of(spec.policy, umbrella=spec.umbrella)
    boards = np.vectorize(lambda i: pol.board_haircut[spec.model.boards[i]])(pick)
    b = spec.book
    pool = b.pool_fen / 100.0
    strat = None
    if spec.strategy is not None:
        strat = spec.strategy.losses(spec.paths, spec.seed, spec.scenario_no, spec.chunk_no)
    return simulate(
        spec.book_arrays,
        pol,
        mkt,
        boards.astype(float),
        spec.horizon,
        loans_yuan=pool * b.utilisation_bps / 10_000,
        pool_yuan=pool,
        junior_ratio=spec.policy.min_junior_ratio_bps / 10_000,
        insurance_seed_yuan=pool * b.insurance_seed_bps / 10_000,
        strategy_losses=strat,
    )


# ── statistics ──────────────────────────────────────────────────────────────────────────────


def _tail(x: np.ndarray) -> dict[str, float]:
    x = np.sort(np.asarray(x, dtype=float))
    n = x.size
    k = max(1, math.ceil(0.01 * n))
    var = float(np.quantile(x, 0.99, method="higher"))
    return {
        "mean": float(x.mean()),
        "var99": var,
        "es99": float(x[-k:].mean()),
        "max": float(x[-1]),
    }


def _hist_median(h: np.ndarray) -> float | None:
    n = h.sum()
    if n == 0:
        return None
    return float(np.searchsorted(np.cumsum(h), n / 2.0) / 1000.0)


def _mean_of(results: Sequence[ChunkResult], name: str) -> float:
    parts = [getattr(r, name) for r in results]
    return (
        float(np.concatenate([p for p in parts if p is not None]).mean())
        if all(p is not None for p in parts)
        else 0.0
    )


def merge(results: Sequence[ChunkResult]) -> dict[str, Any]:
    """Statistics over all paths of one scenario. Losses are fractions of the layer's capital."""
    cat = np.concatenate
    layers: dict[str, Any] = {}
    for name in LAYERS:
        loss = cat([r.layer_loss[name] for r in results])
        cap = cat([r.layer_capital[name] for r in results])
        frac = np.where(cap > 1e-6, loss / np.where(cap > 1e-6, cap, 1.0), 0.0)
        layers[name] = {**_tail(frac), "loss_yuan_mean": float(loss.mean())}
    tier_loss = cat([r.tier_loss for r in results])
    hist = np.sum([r.tier_hist for r in results], axis=0)
    coarse = hist[:, :1000].reshape(4, 100, 10).sum(-1)  # 1% bins; 100% in the last
    coarse[:, -1] += hist[:, 1000]
    tiers = {
        str(t): {
            **_tail(tier_loss[:, t]),
            "median_account_loss": _hist_median(hist[t]),
            "account_loss_hist_1pct": [int(c) for c in coarse[t]],
        }
        for t in (1, 2, 3)
    }
    senior = cat([r.layer_loss["senior"] for r in results])
    exhausted = cat([r.insurance_exhausted for r in results])
    extra: dict[str, Any] = {}
    if results and results[0].strategy is not None:
        extra["strategy"] = _merge_strategy(results)
    return {
        "paths": int(senior.size),
        "layers": layers,
        "tiers": tiers,
        "p_senior_loss": float((senior > 1e-6).mean()),
        "p_insurance_exhausted": float(exhausted.mean()),
        "liquidations_mean": float(cat([r.liquidations for r in results]).mean()),
        "stressed_days_mean": float(cat([r.stressed_days for r in results]).mean()),
        "switch_liquidations_mean": _mean_of(results, "switch_liquidations"),
        "regime_liquidations_mean": _mean_of(results, "regime_liquidations"),
        "lent_share_mean": _mean_of(results, "lent_share")
        if all(r.lent_share is not None for r in results)
        else 1.0,
        "sealed_share_max_mean": float(cat([r.sealed_share.max(1) for r in results]).mean()),
        "deficit_yuan": _tail(cat([r.deficit for r in results])),
        **extra,
    }


def _merge_strategy(results: Sequence[ChunkResult]) -> dict[str, Any]:
    """The strategy books' line: their loss (yuan and share of their equity) and the part of
    it each layer absorbed, per path (mean, max) and how often it reached each layer."""
    parts = [r.strategy for r in results if r.strategy is not None]
    if len(parts) != len(results):
        raise InvalidInput("stress: strategy books in some chunks only")
    loss = np.concatenate([p["loss"] for p in parts])
    layers = {}
    for name in STRATEGY_LAYERS:
        x = np.concatenate([p[name] for p in parts])
        layers[name] = {
            "loss_yuan_mean": float(x.mean()),
            "loss_yuan_max": float(x.max()),
            "p_reached": float((x > 1e-6).mean()),
        }
    return {"loss_yuan": _tail(loss), "layers": layers}


# ── the runner ──────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class RunOptions:
    paths: int = 1_000
    seed: int = 20160104
    chunk_paths: int = 100
    workers: int = 0  # 0: in this process; n: a local Dask cluster of n worker processes
    scheduler: str | None = None  # address of a running Dask scheduler
    umbrella: bool = True  # also run the umbrella-trust comparison
    as_of: dt.date | None = None
    strategies: StrategyStress | None = None  # strategy books in every scenario (off: None)


def _specs(
    names: Sequence[str], policy: MarginPolicy, book: Book, opt: RunOptions, umbrella: bool
) -> list[ChunkSpec]:
    model, garch = fit_factor_model(), fit_garch()
    book_rng = np.random.default_rng(np.random.SeedSequence(opt.seed, spawn_key=(BOOK_KEY,)))
    arrays = make_book(book, UNIVERSE, book_rng)
    specs: list[ChunkSpec] = []
    for name in names:
        if name not in SCENARIOS:
            raise InvalidInput(f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}")
        sc = SCENARIOS[name]
        k = list(SCENARIOS).index(name)
        horizon, factor, panel, d0 = sc.days(book), None, None, 0
        if sc.kind == "index":
            assert sc.start is not None and sc.end is not None
            factor = np.log1p(load_index("csi300").returns(sc.start, sc.end)[1])
        elif sc.kind == "panel":
            assert sc.start is not None
            panel = load_panel()
            d0 = panel.day(sc.start)
            panel = _slice_panel(panel, d0, horizon)
            d0 = 0
        n_chunks = math.ceil(opt.paths / opt.chunk_paths)
        for i in range(n_chunks):
            p = min(opt.chunk_paths, opt.paths - i * opt.chunk_paths)
            specs.append(
                ChunkSpec(sc, k, i, p, opt.seed, policy, book, arrays, model, garch, factor,
                          panel, d0, horizon, opt.as_of or dt.date.today(), umbrella,
                          None if umbrella else opt.strategies)
            )  # fmt: skip
    return specs


def _slice_panel(p: Panel, d0: int, n: int) -> Panel:
    sl = slice(d0, d0 + n)
    return dataclasses.replace(
        p,
        dates=p.dates[sl],
        **{
            f: getattr(p, f)[sl]
            for f in ("close", "prev_close", "sealed_down", "locked_down", "halted", "present")
        },
        amount=p.amount[sl],
        liquidity=p.liquidity[sl],
    )


def run(
    names: Sequence[str],
    policy: MarginPolicy,
    book: Book,
    opt: RunOptions,
    on_chunk: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the scenarios; return {scenario: statistics} (and `umbrella` beside each)."""
    specs = _specs(names, policy, book, opt, umbrella=False)
    if opt.umbrella:
        specs += _specs([n for n in names if n in HISTORICAL], policy, book, opt, umbrella=True)
    results = _execute(specs, opt, on_chunk)
    out: dict[str, Any] = {}
    for name in names:
        mine = [r for s, r in zip(specs, results, strict=True) if s.scenario.name == name]
        plat = [
            r for s, r in zip(specs, results, strict=True) if s.scenario.name == name
            and not s.umbrella
        ]  # fmt: skip
        umb = [r for r in mine if not any(r is p for p in plat)]
        sc = SCENARIOS[name]
        entry = {"title": sc.title, "kind": sc.kind, "days": sc.days(book), **merge(plat)}
        entry["start"] = sc.start.isoformat() if sc.start else None
        entry["end"] = sc.end.isoformat() if sc.end else None
        if umb:
            entry["umbrella"] = merge(umb)["tiers"]
        if opt.strategies is not None:
            eq, res = opt.strategies.capital_yuan()
            entry["strategy"].update(
                shock=opt.strategies.shock,
                books=len(opt.strategies.books),
                equity_yuan=eq,
                reserve_yuan=res,
            )
        out[name] = entry
    return out


def _execute(
    specs: list[ChunkSpec], opt: RunOptions, on_chunk: Callable[[int, int], None] | None
) -> list[ChunkResult]:
    n = len(specs)
    if opt.workers == 0 and opt.scheduler is None:
        res = []
        for i, s in enumerate(specs):
            res.append(run_chunk(s))
            if on_chunk:
                on_chunk(i + 1, n)
        return res
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if opt.scheduler is None:
        cluster = LocalCluster(
            n_workers=opt.workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    else:
        client = Client(opt.scheduler)
    try:
        futures = client.map(run_chunk, specs, pure=False)
        pos = {f.key: i for i, f in enumerate(futures)}
        out: list[ChunkResult | None] = [None] * n
        for done, fut in enumerate(as_completed(futures), start=1):
            out[pos[fut.key]] = fut.result()
            if on_chunk:
                on_chunk(done, n)
        return [r for r in out if r is not None]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
