"""Start-up time of the command line's help: `crowdlev --help` and `crowdlev <command> --help`
for every top-level command (each in a fresh subprocess), beside the baseline `python -c pass`
measured in the same run (median and best of `--repeat` runs; wall-clock seconds). The target
(issue 16): every help under 1 s; the ratio column is the comparable number across machines.

    .venv/bin/python bench/cli.py [--repeat 3] [--only market,chain]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

from crowdleverage.cli import _LISTED

BASE = [sys.executable, "-m", "crowdleverage.cli"]


def cases(only: list[str] | None) -> list[tuple[str, list[str]]]:
    out = [("python -c pass (baseline)", [sys.executable, "-c", "pass"])]
    if not only:
        out.append(("crowdlev --help", [*BASE, "--help"]))
    for name in _LISTED:
        if not only or name in only:
            out.append((f"crowdlev {name} --help", [*BASE, name, "--help"]))
    return out


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall-clock s, CPU s of the child: user + system — less sensitive to a loaded machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", help="comma-separated commands (default: all)")
    args = ap.parse_args()
    rows = []
    for label, cmd in cases(args.only.split(",") if args.only else None):
        timed(cmd)  # warm the file cache
        runs = [timed(cmd) for _ in range(args.repeat)]
        walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
        rows.append((label, statistics.median(walls), min(walls), statistics.median(cpus)))
    base, base_cpu = rows[0][1], rows[0][3]
    print(f"{'case':<36}{'median s':>10}{'best s':>9}{'cpu s':>8}{'× baseline':>12}{'cpu ×':>7}")
    for label, med, best, cpu in rows:
        flag = "" if best < 1.0 or label.startswith("python") else "  best > 1 s"
        print(f"{label:<36}{med:>10.3f}{best:>9.3f}{cpu:>8.3f}{med / base:>12.1f}"
              f"{cpu / base_cpu:>7.1f}{flag}")  # fmt: skip
    slowest = max(rows[1:], key=lambda r: r[1])
    print(f"slowest: {slowest[0]} {slowest[1]:.3f} s = {slowest[1] / base:.1f}× baseline")


if __name__ == "__main__":
    main()
