"""Stress engine: Monte Carlo speed on Dask against a per-account loop, in the same run.

Figures (issue 13):
1. the target run: 10,000 paths × 60 trading days × 1,000 accounts × 30 securities (the `mc60`
   scenario, GARCH-t market with seals, halts, impact and cascades) on a local Dask cluster of
   2 worker processes, chunks of 100 paths;
2. the speed-up from 1 to 2 Dask workers on a subset of paths (same chunks, same seeds);
3. the vectorised engine against the straightforward per-account loop
   (`risk.stress.reference.simulate_loop`) on the same market and book, per path × account.
The machine's load average is printed before and after (other processes share the CPU).

    .venv/bin/python bench/stress.py            # everything
    .venv/bin/python bench/stress.py --quick    # 2,000 paths instead of 10,000

Each run prints wall and CPU seconds (this process + the Dask workers, from getrusage): on a
shared machine the wall time mostly measures the other processes; CPU / 2 is what the run
takes on 2 otherwise idle cores.

Targets: (1) ≤ 120 s on the 2-core machine; (2) near-linear (≈ 2×); (3) ≥ 20×.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import sys
import time

import numpy as np

from crowdleverage.risk.stress.engine import PolicyArrays, make_book, simulate
from crowdleverage.risk.stress.policy import Book, MarginPolicy
from crowdleverage.risk.stress.reference import simulate_loop
from crowdleverage.risk.stress.scenarios import RunOptions, _market, _specs, run

AS_OF = dt.date(2026, 11, 27)


def cpu_s() -> float:
    """CPU seconds of this process and of its finished children (the Dask workers of a
    closed LocalCluster): what the run cost whatever else the machine was doing."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed_run(paths: int, workers: int) -> tuple[float, float]:
    """(wall s, CPU s) of one mc60 run."""
    opt = RunOptions(paths=paths, seed=1, chunk_paths=100, workers=workers, umbrella=False,
                     as_of=AS_OF)  # fmt: skip
    c0, t0 = cpu_s(), time.perf_counter()
    res = run(["mc60"], MarginPolicy(), Book(accounts=1_000), opt)
    dt_s, cpu = time.perf_counter() - t0, cpu_s() - c0
    r = res["mc60"]
    print(f"  {paths:>6} paths, {workers} worker(s): {dt_s:7.1f} s wall, {cpu:7.1f} s CPU "
          f"(P senior loss {r['p_senior_loss']:.4f}, liquidations/path "
          f"{r['liquidations_mean']:.0f}; load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
    return dt_s, cpu


def loop_ratio(paths_loop: int = 2, accounts_loop: int = 100) -> None:
    spec = _specs(["mc60"], MarginPolicy(), Book(accounts=1_000), RunOptions(paths=100,
                  chunk_paths=100, seed=1, as_of=AS_OF), umbrella=False)[0]  # fmt: skip
    pol = PolicyArrays.of(spec.policy)
    args = (60, 3.5e8, 5e8, 0.2, 5e6)

    def go(fn, P: int, A: int) -> float:
        rng = np.random.default_rng(3)
        book = make_book(Book(accounts=A), 30, np.random.default_rng(5))
        sp = spec.__class__(**{**spec.__dict__, "paths": P})
        mkt, pick = _market(sp, rng)
        boards = np.ones(pick.shape)
        t0 = time.perf_counter()
        fn(book, pol, mkt, boards, *args)
        return (time.perf_counter() - t0) / (P * A)

    vec = go(simulate, 100, 1_000)
    loop = go(simulate_loop, paths_loop, accounts_loop)
    print(f"  vectorised: {vec * 1e6:8.2f} µs per path·account (100 paths × 1,000 accounts)")
    print(f"  loop:       {loop * 1e6:8.2f} µs per path·account ({paths_loop} paths × "
          f"{accounts_loop} accounts)")  # fmt: skip
    print(f"  ratio: {loop / vec:.0f}× (target ≥ 20×)")


def main() -> None:
    quick = "--quick" in sys.argv
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    from crowdleverage.risk.stress.data import fit_factor_model, fit_garch

    fit_factor_model()
    fit_garch()
    print("1) vectorised vs per-account loop (in process)")
    loop_ratio()
    n2 = 1_000 if quick else 2_000
    print(f"2) 1 → 2 Dask workers ({n2:,} paths)")
    one, one_cpu = timed_run(n2, 1)
    two, two_cpu = timed_run(n2, 2)
    print(
        f"  speed-up: {one / two:.2f}× wall (near-linear ≈ 2×); CPU {one_cpu:.1f} s vs "
        f"{two_cpu:.1f} s (the same work: the second worker adds no overhead if ≈ equal)"
    )
    n = 2_000 if quick else 10_000
    print(f"3) target: {n:,} paths × 60 days × 1,000 accounts × 30 securities, 2 workers")
    full, full_cpu = timed_run(n, 2)
    print(
        f"  {full:.1f} s wall, {full_cpu:.1f} s CPU; on 2 otherwise idle cores ≈ "
        f"{full_cpu / 2:.1f} s (target ≤ 120 s for 10,000 paths)"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
