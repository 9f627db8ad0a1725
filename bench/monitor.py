"""Risk monitor: milliseconds per tick for 10k, 100k and 1M accounts against a per-account
Python loop on the same data, in the same run.

Book: each account holds binomial(10, 0.5) positions (mean 5, at most 10) over 3,000
securities drawn with a skewed (Zipf-like) popularity; one tier in three; a quarter of the
accounts carry a reserve. A tick moves every security's price (a random walk of ±2%) and then
recomputes every ratio and state. The loop (risk.monitor.loop_tick) is timed on a subset of
accounts and scaled linearly to the full book; the output says so.

    .venv/bin/python bench/monitor.py            # 10k, 100k, 1M
    .venv/bin/python bench/monitor.py 10000      # just one size

Targets (issue 6): 1M accounts ≤ 50 ms per tick on the 2-core machine, ≥ 100× the loop.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time

import numpy as np
import scipy.sparse as sp

from crowdleverage.risk.monitor import AccountState, RiskMonitor, loop_tick

N_SEC = 3_000
LOOP_SUBSET = 100_000


def book(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    counts = rng.binomial(10, 0.5, n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    nnz = int(indptr[-1])
    popularity = 1.0 / np.arange(1, N_SEC + 1) ** 0.8
    popularity /= popularity.sum()
    cols = rng.choice(N_SEC, size=nnz, p=popularity).astype(np.int32)
    qty = (rng.integers(1, 100, nnz) * 100).astype(np.float64)
    q = sp.csr_matrix((qty, cols, indptr), shape=(n, N_SEC))
    q.sum_duplicates()  # a security drawn twice for one account is one position
    price = rng.integers(300, 8_000, N_SEC).astype(np.float64)
    haircut_bps = np.where(rng.random(N_SEC) < 0.2, 8_000, 10_000)
    value = q @ (price * haircut_bps / 10_000)
    tier = rng.integers(1, 4, n)
    target = np.array([0, 1.6, 1.4, 1.3])[tier] * rng.uniform(0.85, 1.25, n)
    cash = (value * 0.05).astype(np.int64)
    debt = ((value + cash) / target).astype(np.int64)
    reserve = np.where(rng.random(n) < 0.25, (debt * 0.05).astype(np.int64), 0)
    return q, price, haircut_bps, cash, reserve, debt, tier


def loop_inputs(q, price, haircut_bps, cash, reserve, debt, tier, subset: int):
    k = min(subset, q.shape[0])
    positions = [
        list(
            zip(
                q.indices[q.indptr[a] : q.indptr[a + 1]].tolist(),
                q.data[q.indptr[a] : q.indptr[a + 1]].astype(np.int64).tolist(),
                strict=True,
            )
        )
        for a in range(k)
    ]
    return k, (
        positions,
        cash[:k].tolist(),
        reserve[:k].tolist(),
        debt[:k].tolist(),
        tier[:k].tolist(),
        price.tolist(),
        (haircut_bps / 10_000).tolist(),
    )


def measure(m: RiskMonitor, price: np.ndarray, loop_args, rounds: int, seed: int):
    """Alternate one vectorised tick (all accounts) and one loop pass (the subset), so that
    the load other processes put on the machine hits both alike. Medians of each."""
    rng = np.random.default_rng(seed)
    cols = np.arange(N_SEC)
    vec, loop = [], []
    res = None
    for _ in range(rounds):
        price = np.maximum(price * rng.uniform(0.98, 1.02, N_SEC), 1.0)
        t0 = time.perf_counter()
        m.update_prices(cols, price)
        res = m.tick()
        vec.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        loop_tick(*loop_args)
        loop.append(time.perf_counter() - t0)
    assert res is not None
    counts = {s.name.lower(): res.count(s) for s in AccountState}
    return statistics.median(vec), statistics.median(loop), counts


def run(n: int) -> None:
    q, price, haircut_bps, cash, reserve, debt, tier = book(n)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    m = RiskMonitor.from_arrays(
        [f"{i:06d}" for i in range(N_SEC)], haircut_bps, q, cash, reserve, debt, tier
    )
    k, loop_args = loop_inputs(q, price, haircut_bps, cash, reserve, debt, tier, LOOP_SUBSET)
    rounds = 21 if n <= 100_000 else 11
    vec_s, loop_s, counts = measure(m, price, loop_args, rounds, seed=n)
    ms_tick = vec_s * 1e3
    loop_ms = loop_s * n / k * 1e3
    scaled = "" if k == n else f" (timed on {k:,} accounts, scaled ×{n / k:g})"
    bytes_per = m.memory_bytes() / n
    tick_out = 8 + 1 + 1  # each tick's result: ratio (f64), state (i8), changed (bool)
    print(f"accounts {n:>9,}  positions {m.nnz:>10,} (mean {m.nnz / n:.2f})  securities {N_SEC:,}")
    print(
        f"  vectorised      {ms_tick:9.2f} ms/tick  (median of {rounds} ticks, "
        f"{len(m._bounds())} thread(s))"
    )
    print(f"  python loop     {loop_ms:9.2f} ms/tick{scaled}")
    print(f"  speed-up        {loop_ms / ms_tick:9.1f} ×")
    print(
        f"  memory          {bytes_per:9.1f} B/account in arrays "
        f"(+ {tick_out} B/account for each tick's result; "
        f"max RSS grew {(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) >> 10} MiB)"
    )
    print(f"  states          {counts}")
    if n >= 1_000_000:
        ok_ms = ms_tick <= 50
        ok_x = loop_ms / ms_tick >= 100
        print(
            f"  targets         ≤ 50 ms/tick: {'met' if ok_ms else 'NOT met'}; "
            f"≥ 100× loop: {'met' if ok_x else 'NOT met'}"
        )


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"cpus {os.cpu_count()}, load average {load} (other processes share these cores)")
    for n in sizes:
        run(n)


if __name__ == "__main__":
    main()
