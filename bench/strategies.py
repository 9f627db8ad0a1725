"""Strategy backtests: one 2-year daily backtest, and a 1,000-setting parameter sweep on Dask
against a plain loop, each beside a baseline measured in the same run.

1. The basis strategy on IF, 2014-07-01 → 2016-06-30, signal + rules-aware backtest (median of
   repeats), against a vectorised P&L of the same signal without any rule, fee or account
   (numpy: the floor of what a daily backtest can cost). Target (issue 17): ≤ 2 s.
2. A sweep of 1,000 basis settings (entry × exit × stop × smoothing) on a dask.distributed
   LocalCluster (one worker process per core, one thread each; the market data scattered to
   every worker once; 3 and 16 batches per worker, both timed, settings interleaved across
   the grid) against a loop in this process, and the same batches on a plain
   ProcessPoolExecutor (no Dask). A batch shares the setting-independent work (the data's
   alignment, basis, days to expiry, the mispricing per smoothing, the days' prices and seals)
   across its settings; the loop is the plain one-setting-at-a-time `build` + `run`. The
   batched code is also timed in this process alone, to show what the sharing gives apart
   from the workers. It also prints the per-task overhead (a round trip of 1,000
   no-op tasks), the CPU seconds of the loop, the task threads and the whole worker processes,
   and the share of the time the worker slots were busy (straggling shows below 100%).
   The loop is timed on `LOOP_SUBSET` settings spread over the grid and scaled linearly to
   1,000; the output says so. Both compute the same
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
from crowdleverage.strategies.backtest import day_rows, run
from crowdleverage.strategies.data import MarketData, load_market

FROM, TO = dt.date(2014, 7, 1), dt.date(2016, 6, 30)
LOOP_SUBSET = 50  # per half: 100 settings in all
# batches per worker tried: 3 (the fewest tasks) and 16 (≈30 settings, ≈1 s a task: lets a
# worker that gets more CPU take more batches)
TASKS_PER_WORKER = (3, 16)

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


Batch = tuple[list[tuple[int, float]], float, float]


def batch(m: MarketData, ps: list[basis.BasisParams]) -> Batch:
    """Results of a batch of settings on the scattered market data, the CPU seconds of the
    thread that ran it (not the worker's own event-loop threads) and its wall seconds.

    The batch shares the work that does not depend on the setting: `basis.build_many` aligns
    the data and computes the basis and days to expiry once, the mispricing once per
    smoothing and the band rule per setting (vectorised across the batch's settings); the
    days' prices and seals (`day_rows`) are computed once and every setting's backtest runs
    on them. Same results as `one` per setting (checked)."""
    t, w = time.thread_time(), time.perf_counter()
    frames = basis.build_many(m, ps)
    rows = day_rows(frames[0], FROM, TO)
    out = [run(sf, date_from=FROM, date_to=TO, rows=rows) for sf in frames]
    res = [(r.stats["pnl_fen"], r.stats["sharpe"]) for r in out]
    return res, time.thread_time() - t, time.perf_counter() - w


def _batches(n: int) -> list[list[basis.BasisParams]]:
    """n batches, settings interleaved across the grid so that each batch has the same mix of
    cheap and costly settings."""
    return [GRID[i::n] for i in range(n)]


def _flatten(parts: list[Batch]) -> list[tuple[int, float]]:
    n = len(parts)
    out: list[tuple[int, float]] = [(0, 0.0)] * len(GRID)
    for i, (part, _, _) in enumerate(parts):
        out[i::n] = part
    return out


def _noop(i: int) -> int:
    return i


def _cpu() -> float:
    return time.process_time()


def bench_sweep() -> None:
    # one thread per process for any BLAS/OpenMP the workers import (inherited by the worker
    # processes): two workers on two cores must not start four compute threads each
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import dask
    from dask.distributed import Client, LocalCluster

    # the worker's statistical profiler samples the task thread every 10 ms and competes for
    # the GIL: off for a CPU-bound sweep
    dask.config.set({"distributed.worker.profile.enabled": False})

    m = _market()
    step = len(GRID) // LOOP_SUBSET  # every step-th setting: a sample across the whole grid
    half = step // 2
    # the loop is timed in two halves, before and after Dask, so that a change in the load
    # of the (shared) machine during the run weighs on both sides alike
    t, c = time.perf_counter(), time.process_time()
    first = [one(p) for p in GRID[::step]]
    t_loop, c_loop = time.perf_counter() - t, time.process_time() - c
    workers = os.cpu_count() or 1
    all_res: list[list[tuple[int, float]]] = []
    dask_runs = []  # (tasks, seconds, task-thread CPU, worker-process CPU, busy share)
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        # the data goes to every worker once (1.3 MB pickled), outside the timing; each task
        # then refers to it by key instead of carrying it
        data = client.scatter(m, broadcast=True)
        # per-task overhead of this scheduler on this machine: a round trip of no-op tasks
        t = time.perf_counter()
        client.gather(client.map(_noop, range(1_000), pure=False))
        overhead_ms = (time.perf_counter() - t) / 1_000 * 1e3
        for per in TASKS_PER_WORKER:
            n = per * workers
            cpu0 = sum(client.run(_cpu).values())
            t = time.perf_counter()
            futs = client.map(batch, [data] * n, _batches(n), pure=False)
            parts = client.gather(futs)
            t_d = time.perf_counter() - t
            cpu_w = sum(client.run(_cpu).values()) - cpu0
            busy = sum(w for _, _, w in parts) / (workers * t_d)
            dask_runs.append((n, t_d, sum(c for _, c, _ in parts), cpu_w, busy))
            all_res.append(_flatten(parts))
    dask_res = all_res[0]
    assert all(r == dask_res for r in all_res), "dev: results differ between granularities"
    # the same fine batches on a plain process pool (no scheduler): what any process
    # parallelism gets from this machine right now, to tell Dask's cost from the CPU share
    from concurrent.futures import ProcessPoolExecutor

    n = TASKS_PER_WORKER[-1] * workers
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_noop, range(workers)))  # start the processes outside the timing
        t = time.perf_counter()
        pool_parts = list(pool.map(batch, [m] * n, _batches(n)))
        t_pool = time.perf_counter() - t
    assert _flatten(pool_parts) == dask_res, "dev: pool and Dask differ"
    t, c = time.perf_counter(), time.process_time()
    second = [one(p) for p in GRID[half::step]]
    t_loop += time.perf_counter() - t
    c_loop += time.process_time() - c
    sampled = len(first) + len(second)
    t_loop, c_loop = t_loop * len(GRID) / sampled, c_loop * len(GRID) / sampled
    assert dask_res[::step] == first and dask_res[half::step] == second, "dev: results differ"
    # the batched code alone, in this process: how much of the gain is shared work, how much
    # the worker processes
    sub = GRID[::step] + GRID[half::step]
    t = time.perf_counter()
    one_proc = batch(m, sub)[0]
    t_batched = (time.perf_counter() - t) * len(GRID) / len(sub)
    assert one_proc == first + second, "dev: batched results differ"
    best = max(range(len(GRID)), key=lambda i: dask_res[i][1])
    print(f"sweep of {len(GRID)} basis settings ({FROM} → {TO})")
    scaled = f"timed on {sampled} settings across the grid, scaled to {len(GRID)}"
    print(f"  loop in one process: {t_loop:7.1f} s  ({scaled})")
    for nt, t_d, c_d, cpu_w, busy in dask_runs:
        print(
            f"  Dask LocalCluster, {workers} worker processes, {nt} tasks of ≈{len(GRID) / nt:.0f}"
            f" settings, data scattered once: {t_d:7.1f} s → {t_loop / t_d:.2f}× the loop;"
            f" target met: {t_d < t_loop}"
        )
        print(
            f"    CPU seconds: task threads {c_d:.1f}, worker processes in all {cpu_w:.1f};"
            f" worker slots busy {100 * busy:.0f}% of the time"
        )
    print(
        f"  same {n} batches on a plain ProcessPoolExecutor({workers}), no Dask: {t_pool:7.1f} s"
        f" ({t_loop / t_pool:.2f}× the loop)"
    )
    print(
        f"  same batched code (shared data work per batch) in this process, no workers:"
        f" {t_batched:7.1f} s ({t_loop / t_batched:.2f}× the loop; timed on {len(sub)} settings,"
        " scaled)"
    )
    print(f"  CPU seconds: loop {c_loop:.1f} (scaled)")
    print(
        f"  per-task overhead (1,000 no-op tasks): {overhead_ms:.2f} ms → {n} tasks"
        f" cost ≈ {n * overhead_ms / 1e3:.3f} s of the sweep"
    )
    cpu_workers = dask_runs[-1][3]
    ideal = c_loop / (cpu_workers / workers)
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
