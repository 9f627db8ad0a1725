"""Strategy backtests: one 2-year daily backtest, and a 1,000-setting parameter sweep on Dask
against a plain loop, each beside a baseline measured in the same run.

1. The basis strategy on IF, 2014-07-01 → 2016-06-30, signal + rules-aware backtest (median of
   repeats), against a vectorised P&L of the same signal without any rule, fee or account
   (numpy: the floor of what a daily backtest can cost). Target (issue 17): ≤ 2 s.
2. A sweep of 1,000 basis settings (entry × exit × stop × smoothing) on a dask.distributed
   LocalCluster (processes, one per core, tasks of 25 settings, the data loaded once per
   worker) against a loop in this process. The loop is timed on `LOOP_SUBSET` settings spread
   over the grid and scaled linearly to 1,000; the output says so. Both compute the same
   results (checked on the subset). Target: the sweep on Dask faster than the loop.

    .venv/bin/python bench/strategies.py
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import statistics
import time
from functools import cache

import numpy as np

from crowdleverage.strategies import basis
from crowdleverage.strategies.backtest import run
from crowdleverage.strategies.data import MarketData, load_market

FROM, TO = dt.date(2014, 7, 1), dt.date(2016, 6, 30)
LOOP_SUBSET = 50  # per half: 100 settings in all
CHUNK = 25

GRID = [
    basis.BasisParams(entry_bps=e, exit_bps=x, stop_bps=e + s, smooth_days=k)
    for e, x, s, k in itertools.product(
        [80, 100, 120, 150, 180, 220, 260, 300, 350, 400],
        [0, 10, 20, 40, 60],
        [100, 200, 300, 500],  # stop distance beyond the entry
        [1, 2, 3, 5, 8],
    )
]


@cache
def _market() -> MarketData:
    return load_market()


def one(p: basis.BasisParams) -> tuple[int, float]:
    """(P&L in fen, Sharpe) of one setting."""
    res = run(basis.build(_market(), p), date_from=FROM, date_to=TO)
    return res.stats["pnl_fen"], res.stats["sharpe"]


def chunk(ps: list[basis.BasisParams]) -> tuple[list[tuple[int, float]], float]:
    """Results of a chunk and the CPU seconds of the thread that ran it (not the worker's
    own event-loop threads)."""
    t = time.thread_time()
    out = [one(p) for p in ps]
    return out, time.thread_time() - t


def vectorised_floor(m: MarketData, p: basis.BasisParams) -> float:
    """The same signal's P&L with numpy and no rules: spot return − futures return."""
    sf = basis.build(m, p)
    f = sf.frame.loc[str(FROM) : str(TO)]
    pos = np.roll(f["signal"].to_numpy(dtype=float), 1)
    ra = np.diff(np.log(f["a_px"].to_numpy()), prepend=np.nan)
    rb = np.diff(np.log(f["b_px"].to_numpy()), prepend=np.nan)
    return float(np.nansum(pos * (ra - rb)))


def _autogroup() -> bool:
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as fh:
            return fh.read().strip() == "1"
    except OSError:
        return False


def timed(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def bench_single() -> None:
    m = _market()
    p = basis.BasisParams()
    t_full = timed(lambda: run(basis.build(m, p), date_from=FROM, date_to=TO), 15)
    t_floor = timed(lambda: vectorised_floor(m, p), 15)
    days = len(basis.build(m, p).frame.loc[str(FROM) : str(TO)])
    print(f"single backtest, basis IF {FROM} → {TO} ({days} trading days)")
    print(f"  rules-aware backtest (signal + account): {t_full * 1000:8.1f} ms   target ≤ 2000 ms")
    print(f"  baseline: vectorised P&L, no rules:      {t_floor * 1000:8.1f} ms")
    print(f"  ratio backtest / baseline: {t_full / t_floor:.1f}×; target met: {t_full <= 2.0}")


def bench_sweep() -> None:
    import dask
    from dask.distributed import Client, LocalCluster

    # the worker's statistical profiler samples the task thread every 10 ms and competes for
    # the GIL: off for a CPU-bound sweep
    dask.config.set({"distributed.worker.profile.enabled": False})

    _market()
    step = len(GRID) // LOOP_SUBSET  # every step-th setting: a sample across the whole grid
    half = step // 2
    # the loop is timed in two halves, before and after Dask, so that a change in the load
    # of the (shared) machine during the run weighs on both sides alike
    t, c = time.perf_counter(), time.process_time()
    first = [one(p) for p in GRID[::step]]
    t_loop, c_loop = time.perf_counter() - t, time.process_time() - c
    workers = os.cpu_count() or 1
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_market)  # load the data once per worker, outside the timing
        t = time.perf_counter()
        futs = client.map(chunk, [GRID[i : i + CHUNK] for i in range(0, len(GRID), CHUNK)])
        parts = client.gather(futs)
        t_dask = time.perf_counter() - t
    dask_res = [r for part, _ in parts for r in part]
    c_dask = sum(cpu for _, cpu in parts)
    t, c = time.perf_counter(), time.process_time()
    second = [one(p) for p in GRID[half::step]]
    t_loop += time.perf_counter() - t
    c_loop += time.process_time() - c
    sampled = len(first) + len(second)
    t_loop, c_loop = t_loop * len(GRID) / sampled, c_loop * len(GRID) / sampled
    assert dask_res[::step] == first and dask_res[half::step] == second, "dev: results differ"
    best = max(range(len(GRID)), key=lambda i: dask_res[i][1])
    print(f"sweep of {len(GRID)} basis settings ({FROM} → {TO})")
    scaled = f"timed on {sampled} settings across the grid, scaled to {len(GRID)}"
    print(f"  loop in one process: {t_loop:7.1f} s  ({scaled})")
    print(f"  Dask LocalCluster, {workers} worker processes, tasks of {CHUNK}: {t_dask:7.1f} s")
    print(f"  speed-up Dask / loop: {t_loop / t_dask:.2f}×; target met: {t_dask < t_loop}")
    print(f"  CPU seconds: loop {c_loop:.1f} (scaled), Dask workers {c_dask:.1f}")
    ideal = c_loop / (c_dask / workers)
    print(f"  with the {workers} cores free (CPU seconds / workers): {ideal:.2f}× expected")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"  machine load average (1/5/15 min): {load} on {os.cpu_count()} cores")
    if _autogroup():
        print(
            "  note: the kernel shares CPU per session (sched_autogroup): while other sessions"
            " are busy, this session's processes share one slice, loop and workers alike"
        )
    print(f"  best Sharpe {dask_res[best][1]} at {GRID[best]}")


if __name__ == "__main__":
    bench_single()
    bench_sweep()
