"""Calibration: search the margin policy for parameter sets that meet the stress targets at the
highest utilisation (every tier at its maximum leverage), and write the chosen set in the
platform's parameter format.

The search space (a seeded random sample of the grid, with today's parameters always first):
- tier lines: today's (params.py), or liquidation at 1 + f·(initial − 1) for f in LINE_F, the
  warning line 40% of the way from there to the initial ratio;
- haircuts (main board, STAR/ChiNext/BSE) in HAIRCUTS;
- stressed regime: de-lever target up by TARGET_ADD, full close or not (the stressed line
  share, haircut scale and phase-in are the deployed ones; no extra line `LINE_ADD`, and in a
  calm market liquidation back to the initial ratio: the Liquidator has neither);
- the NAV stop (Liquidator `nav_stop_bps`: closed in full once equity falls below the opening
  equity − this share of the opening assets; 0 = none) in NAV_STOP;
- insurance premium (share of interest) and minimum junior ratio;
- the liquidity cap (RiskParams `liquidity_cap_bps`: the platform's position per security
  ≤ this share of its average daily amount; the book's financed buys above it are refused,
  so the utilisation reached can be below the one asked) in LIQ_CAP;
- utilisation, highest first.
Each candidate runs every historical scenario and the Monte Carlo on a reduced number of paths;
the umbrella-trust comparison depends only on leverage and the book, so it is computed once
per utilisation. A candidate is *feasible* when it meets every target (suite.check_targets).
The chosen set: the feasible one at the highest utilisation reached (the one asked × the share
the liquidity cap let the book lend, mean over the scenarios, in 1% steps) with the lowest mean
borrower loss (ties: the lower premium). When none is feasible, the one with the fewest failed
targets is written and the output says that no set met the targets.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from crowdleverage.domain.security import Board
from crowdleverage.risk.stress.policy import Book, MarginPolicy, StressedRegime
from crowdleverage.risk.stress.scenarios import HISTORICAL, RunOptions, run
from crowdleverage.risk.stress.suite import check_targets

log = logging.getLogger("crowdleverage.stress")

LINE_F = (None, 0.6, 0.7, 0.8, 0.85, 0.9)  # None: today's lines
HAIRCUTS = ((10_000, 8_000), (10_000, 6_000), (9_000, 7_000))
# the chain has no extra stressed line and no full close in a calm market (deploy.py): the
# search keeps to what the platform can deploy (the engine still models both)
LINE_ADD = (0,)
TARGET_ADD = (0, 1_000, 3_000)
FULL_CLOSE = (True, False)
CALM_FULL_CLOSE = (False,)
PREMIUM = (1_000, 2_000)
JUNIOR = (2_000, 2_500, 3_000)
UTILISATION = (9_000, 8_000, 7_000)
NAV_STOP = (800, 500, 0)
LIQ_CAP = (1_000, 500, 2_000)


@dataclass(frozen=True)
class Candidate:
    line_f: float | None
    haircut: tuple[int, int]
    line_add: int
    target_add: int
    full_close: bool
    premium: int
    junior: int
    calm_full_close: bool = False
    nav_stop: int = 0
    liquidity_cap: int = 0

    def policy(self, base: MarginPolicy) -> MarginPolicy:
        tiers = dict(base.tiers)
        if self.line_f is not None:
            for k, t in base.tiers.items():
                liq = round(10_000 + self.line_f * (t.initial_ratio_bps - 10_000))
                warn = round(liq + 0.4 * (t.initial_ratio_bps - liq))
                tiers[k] = dataclasses.replace(
                    t, liquidation_ratio_bps=liq, warning_ratio_bps=max(warn, liq)
                )
        main, other = self.haircut
        haircuts = {b: (main if b is Board.MAIN else other) for b in Board}
        stressed = StressedRegime(
            line_add_bps=self.line_add, target_add_bps=self.target_add, full_close=self.full_close
        )
        return base.replace(
            tiers=tiers,
            haircut_bps=haircuts,
            stressed=stressed,
            insurance_premium_bps=self.premium,
            min_junior_ratio_bps=self.junior,
            liquidation_full_close=self.calm_full_close,
            nav_stop_bps=self.nav_stop,
            liquidity_cap_bps=self.liquidity_cap,
        )

    def label(self) -> str:
        f = "today" if self.line_f is None else f"f={self.line_f}"
        return (f"lines {f}, haircut {self.haircut[0] // 100}/{self.haircut[1] // 100}%, "
                f"stressed +{self.line_add // 100}%/+{self.target_add // 100}%"
                f"{' full' if self.full_close else ''}, calm "
                f"{'full close' if self.calm_full_close else 'to target'}, "
                f"NAV stop {self.nav_stop / 100:g}%, liquidity cap "
                f"{self.liquidity_cap / 100:g}%, premium {self.premium // 100}%, "
                f"junior {self.junior // 100}%")  # fmt: skip


def today(base: MarginPolicy) -> Candidate:
    hc = (base.haircut_bps[Board.MAIN], base.haircut_bps[Board.CHINEXT])
    s = base.stressed
    return Candidate(None, hc, s.line_add_bps, s.target_add_bps, s.full_close,
                     base.insurance_premium_bps, base.min_junior_ratio_bps,
                     base.liquidation_full_close, base.nav_stop_bps,
                     base.liquidity_cap_bps)  # fmt: skip


def candidates(n: int, seed: int, base: MarginPolicy) -> list[Candidate]:
    axes = (LINE_F, HAIRCUTS, LINE_ADD, TARGET_ADD, FULL_CLOSE, PREMIUM, JUNIOR, CALM_FULL_CLOSE,
            NAV_STOP, LIQ_CAP)  # fmt: skip
    grid = [Candidate(*c) for c in itertools.product(*axes)]
    rng = np.random.default_rng(seed)
    first = today(base)
    picked = [grid[i] for i in rng.permutation(len(grid))[: max(0, n - 1)]]
    return [first, *[c for c in picked if c != first]][:n]


def summarise(c: Candidate, util: int, scen: dict[str, Any], targets: dict[str, Any]) -> dict:
    hist = [scen[n] for n in HISTORICAL if n in scen]
    mc = scen.get("mc60")
    med = {t: max((h["tiers"][t]["median_account_loss"] or 0.0) for h in hist) for t in "123"}
    umb = {
        t: max(((h.get("umbrella") or {}).get(t) or {}).get("median_account_loss") or 0.0
               for h in hist)
        for t in "123"
    }  # fmt: skip
    borrower = float(np.mean([h["layers"]["borrower_margin"]["mean"] for h in hist]))
    failed = [k for k, v in targets.items() if not v["ok"]]
    lent = float(np.mean([s.get("lent_share_mean", 1.0) for s in scen.values()]))
    return {
        "candidate": dataclasses.asdict(c),
        "label": c.label(),
        "utilisation_bps": util,
        "lent_utilisation_bps": int(util * lent) // 100 * 100,
        "hist_junior_var99_max": max(h["layers"]["junior"]["var99"] for h in hist),
        "hist_senior_max": max(h["layers"]["senior"]["max"] for h in hist),
        "mc_p_senior_loss": mc["p_senior_loss"] if mc else None,
        "mc_junior_es99": mc["layers"]["junior"]["es99"] if mc else None,
        "tier_median_max": med,
        "umbrella_median_max": umb,
        "borrower_margin_loss_mean": borrower,
        "failed": failed,
        "feasible": not failed,
    }


def calibrate(
    base: MarginPolicy,
    book: Book,
    *,
    n_candidates: int = 24,
    paths_hist: int = 20,
    paths_mc: int = 200,
    seed: int = 20160104,
    utilisations: tuple[int, ...] = UTILISATION,
    workers: int = 0,
    on_candidate: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> tuple[MarginPolicy, dict[str, Any], list[dict[str, Any]]]:
    """Return (chosen policy, its row, every row of the trade-off table). With `workers`,
    one local Dask cluster serves every candidate."""
    if workers > 0:
        from dask.distributed import LocalCluster

        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:  # fmt: skip
            return _search(base, book, n_candidates, paths_hist, paths_mc, seed, utilisations,
                           cluster.scheduler_address, on_candidate)  # fmt: skip
    return _search(base, book, n_candidates, paths_hist, paths_mc, seed, utilisations, None,
                   on_candidate)  # fmt: skip


def _search(
    base: MarginPolicy,
    book: Book,
    n_candidates: int,
    paths_hist: int,
    paths_mc: int,
    seed: int,
    utilisations: tuple[int, ...],
    scheduler: str | None,
    on_candidate: Callable[[int, int, dict[str, Any]], None] | None,
) -> tuple[MarginPolicy, dict[str, Any], list[dict[str, Any]]]:
    cands = candidates(n_candidates, seed, base)
    rows: list[dict[str, Any]] = []
    total = len(cands) * len(utilisations)
    hist, mc = list(HISTORICAL), ["mc60"]
    for util in utilisations:
        b = dataclasses.replace(book, utilisation_bps=util)
        umbrella: dict[str, Any] | None = None
        for c in cands:
            pol = c.policy(base)
            opt_h = RunOptions(paths=paths_hist, seed=seed, chunk_paths=max(1, paths_hist // 2),
                               scheduler=scheduler, umbrella=umbrella is None)  # fmt: skip
            opt_m = dataclasses.replace(opt_h, paths=paths_mc, chunk_paths=max(1, paths_mc // 4))
            scen = run(hist, pol, b, opt_h)
            if umbrella is None:
                umbrella = {n: scen[n]["umbrella"] for n in hist}
            for n in hist:
                scen[n]["umbrella"] = umbrella[n]
            scen.update(run(mc, pol, b, opt_m))
            row = summarise(c, util, scen, check_targets(scen, b))
            row["policy"] = pol
            rows.append(row)
            if on_candidate:
                on_candidate(len(rows), total, row)
            log.info("calibration candidate", extra={"n": len(rows), "failed": len(row["failed"])})
    best = _choose(rows)
    return best["policy"], best, rows


def _choose(rows: list[dict[str, Any]]) -> dict[str, Any]:
    feasible = [r for r in rows if r["feasible"]]
    if feasible:
        return min(
            feasible,
            key=lambda r: (-r["lent_utilisation_bps"], r["borrower_margin_loss_mean"],
                           r["candidate"]["premium"]),
        )  # fmt: skip
    return min(
        rows,
        key=lambda r: (
            len(r["failed"]),
            -r["lent_utilisation_bps"],
            r["borrower_margin_loss_mean"],
        ),
    )
