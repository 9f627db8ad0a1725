"""Crash replay speed: one week (2016-01-04 → 2016-01-08, the circuit-breaker week) through the
whole platform with 300 borrowers (100 per tier, the default book's pool and utilisation).

Prints wall and CPU time of the setup and of each day, the total against the 120 s target
(issue 13), and the 24-borrower default book's week in the same run as the baseline (the
machine is shared: the load average is printed before and after; compare CPU times and the
ratio between the two books rather than wall times across runs).

    .venv/bin/python bench/replay.py              # 300 borrowers, then the default 24
    .venv/bin/python bench/replay.py --borrowers-per-tier 50
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

from crowdleverage.config import load_settings
from crowdleverage.risk.book import Book
from crowdleverage.risk.replay import Replay, ReplayConfig

TARGET_S = 120.0


def week(per_tier: int) -> tuple[float, float]:
    """(wall s, CPU s) of the whole replay; prints setup and each day."""
    settings = load_settings()
    cfg = ReplayConfig(
        data=Path(settings.market_data),
        start=dt.date(2016, 1, 4),
        end=dt.date(2016, 1, 8),
        book=Book(),
        borrowers_per_tier=per_tier,
    )
    w0, c0 = time.perf_counter(), time.process_time()
    r = Replay(cfg)
    try:
        r.start()
        w1, c1 = time.perf_counter(), time.process_time()
        print(f"  setup ({3 * per_tier} borrowers): {w1 - w0:6.1f} s wall, {c1 - c0:6.1f} s CPU",
              flush=True)  # fmt: skip
        for day in r.days:
            d0, e0 = time.perf_counter(), time.process_time()
            rep = r.run_day(day)
            print(f"  {day.date}: {time.perf_counter() - d0:6.1f} s wall, "
                  f"{time.process_time() - e0:6.1f} s CPU · liquidations started "
                  f"{rep.liquidations_started}, fills {rep.liquidation_fills}",
                  flush=True)  # fmt: skip
    finally:
        r.close()
    return time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--borrowers-per-tier", type=int, default=100)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    print(f"1) one week, {3 * args.borrowers_per_tier} borrowers")
    wall, cpu = week(args.borrowers_per_tier)
    print(f"  total {wall:.1f} s wall, {cpu:.1f} s CPU (target ≤ {TARGET_S:.0f} s)")
    print("2) baseline: the default book (24 borrowers), same week")
    wall0, cpu0 = week(8)
    print(f"  total {wall0:.1f} s wall, {cpu0:.1f} s CPU")
    print(f"  300 vs 24 borrowers: {cpu / cpu0:.1f}× the CPU time for "
          f"{3 * args.borrowers_per_tier / 24:.1f}× the borrowers")  # fmt: skip
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
