"""Start-up time of the command line's help: `crowdlev --help`, `crowdlev market --help` and
`crowdlev stress --help`, each in a fresh subprocess, beside the baseline `python -c pass`
measured in the same run (median and best of `--repeat` runs; wall-clock seconds).

    .venv/bin/python bench/cli.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = [
    ("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
    ("crowdlev --help", [sys.executable, "-m", "crowdleverage.cli", "--help"]),
    ("crowdlev market --help", [sys.executable, "-m", "crowdleverage.cli", "market", "--help"]),
    ("crowdlev stress --help", [sys.executable, "-m", "crowdleverage.cli", "stress", "--help"]),
]


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rows = []
    for label, cmd in CASES:
        timed(cmd)  # warm the file cache
        runs = [timed(cmd) for _ in range(args.repeat)]
        rows.append((label, statistics.median(runs), min(runs)))
    base = rows[0][1]
    print(f"{'case':<28}{'median s':>10}{'best s':>10}{'× baseline':>12}")
    for label, med, best in rows:
        print(f"{label:<28}{med:>10.3f}{best:>10.3f}{med / base:>12.1f}")


if __name__ == "__main__":
    main()
