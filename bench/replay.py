"""Crash replay speed: one week (2016-01-04 → 2016-01-08, the circuit-breaker week) through the
whole platform with 300 borrowers (100 per tier, the default book's pool and utilisation), on
each chain backend: the embedded EVM (py-evm in process) and a real JSON-RPC node (anvil,
started here on a free local port; `DevNodeChain`).

Prints, per backend, wall and CPU time of the setup and of each day and the total against the
120 s target (issue 13). CPU is this process's; on anvil the node's own CPU (read from
/proc) is printed beside it and added into the total CPU. Before the timed runs, a parity
check: a small book's whole replay report on both backends must be identical (losses,
liquidations, fills, NAVs, invariants). Then the 24-borrower default book's week on the
embedded chain as the baseline measured in the same run. The machine is shared: the load
average is printed before and after; compare CPU times and ratios within a run.

    .venv/bin/python bench/replay.py                          # both backends, 300 borrowers
    .venv/bin/python bench/replay.py --backend anvil --borrowers-per-tier 50
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crowdleverage.chain.artifacts import EIP170_LIMIT_BYTES
from crowdleverage.config import load_settings
from crowdleverage.risk.book import Book
from crowdleverage.risk.replay import Replay, ReplayConfig, ReplayReport

TARGET_S = 120.0
ANVIL = os.environ.get("CROWDLEV_ANVIL_BIN", str(Path("tools/node_modules/.bin/anvil").resolve()))
NODE_START = "1420070400"  # 2015-01-01: before any replay's genesis (the replay moves it on)


@contextlib.contextmanager
def anvil_node() -> Iterator[tuple[str, int]]:
    """A fresh anvil on a free local port (history pruned: the replay reads the latest state
    only); yields its URL and process id."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [ANVIL, "--host", "127.0.0.1", "--port", str(port), "--silent", "--prune-history",
         "--code-size-limit", str(EIP170_LIMIT_BYTES), "--timestamp", NODE_START],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"anvil did not start (exit {proc.poll()})") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def cpu_of(pid: int | None) -> float:
    """User + system CPU seconds so far of process `pid` and its descendants (the npm
    `anvil` launcher starts the node binary as its child); 0 without one."""
    total, todo = 0, [] if pid is None else [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except FileNotFoundError:  # exited meanwhile
            continue
    return total / os.sysconf("SC_CLK_TCK")


def config(per_tier: int, rpc_url: str | None) -> ReplayConfig:
    return ReplayConfig(
        data=Path(load_settings().market_data),
        start=dt.date(2016, 1, 4),
        end=dt.date(2016, 1, 8),
        book=Book(),
        borrowers_per_tier=per_tier,
        rpc_url=rpc_url,
    )


def week(per_tier: int, rpc_url: str | None = None, node: int | None = None) -> dict[str, float]:
    """Wall s, this process's CPU s and the node's CPU s of the whole replay; prints the
    setup and each day."""

    def now() -> tuple[float, float, float]:
        return time.perf_counter(), time.process_time(), cpu_of(node)

    def line(what: str, t0: tuple[float, float, float], extra: str = "") -> None:
        w, c, n = (b - a for a, b in zip(t0, now(), strict=True))
        node_cpu = f" + node {n:5.1f} s CPU" if node else ""
        print(f"  {what}: {w:6.1f} s wall, {c:6.1f} s CPU{node_cpu}{extra}", flush=True)

    start = now()
    r = Replay(config(per_tier, rpc_url))
    try:
        r.start()
        line(f"setup ({3 * per_tier} borrowers)", start)
        for day in r.days:
            t0 = now()
            rep = r.run_day(day)
            line(str(day.date), t0, f" · liquidations started {rep.liquidations_started}, "
                                    f"fills {rep.liquidation_fills}")  # fmt: skip
    finally:
        r.close()
    w, c, n = (b - a for a, b in zip(start, now(), strict=True))
    return {"wall": w, "cpu": c, "node": n}


def report_of(per_tier: int, rpc_url: str | None) -> dict[str, Any]:
    r = Replay(config(per_tier, rpc_url))
    out: ReplayReport = r.run()
    return out.as_dict()


def parity(per_tier: int) -> bool:
    """A small book's whole report on anvil and on the embedded chain: identical?"""
    with anvil_node() as (url, _):
        on_node = report_of(per_tier, url)
    embedded = report_of(per_tier, None)
    diff = [k for k in embedded if embedded[k] != on_node.get(k)]
    losses = embedded["losses_fen"]
    started = sum(d["liquidations_started"] for d in embedded["days"])
    print(f"  {3 * per_tier} borrowers: {started} liquidations, losses {losses}, "
          f"{embedded['fills']} fills: " + ("same report on both" if not diff
                                             else f"DIFFERENT: {diff}"))  # fmt: skip
    return not diff


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--borrowers-per-tier", type=int, default=100)
    ap.add_argument("--backend", choices=["both", "embedded", "anvil"], default="both")
    ap.add_argument("--parity-per-tier", type=int, default=2, help="0: no parity check")
    ap.add_argument("--no-baseline", action="store_true", help="skip the 24-borrower week")
    args = ap.parse_args()
    n = 3 * args.borrowers_per_tier
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    if args.backend != "embedded" and not os.access(ANVIL, os.X_OK):
        print(f"no anvil at {ANVIL} (CROWDLEV_ANVIL_BIN): the embedded chain only")
        if args.backend == "anvil":
            raise SystemExit(2)
        args.backend = "embedded"
    if args.backend != "embedded" and args.parity_per_tier:
        print("0) parity, anvil vs embedded, the same week")
        parity(args.parity_per_tier)
    totals: dict[str, dict[str, float]] = {}
    if args.backend != "embedded":
        print(f"1) one week, {n} borrowers, on anvil (JSON-RPC node)")
        with anvil_node() as (url, pid):
            totals["anvil"] = t = week(args.borrowers_per_tier, url, pid)
        print(f"  total {t['wall']:.1f} s wall, {t['cpu']:.1f} s CPU + node {t['node']:.1f} s"
              f" = {t['cpu'] + t['node']:.1f} s CPU (target ≤ {TARGET_S:.0f} s)")  # fmt: skip
    if args.backend != "anvil":
        print(f"2) one week, {n} borrowers, on the embedded chain")
        totals["embedded"] = t = week(args.borrowers_per_tier)
        print(f"  total {t['wall']:.1f} s wall, {t['cpu']:.1f} s CPU (target ≤ {TARGET_S:.0f} s)")
    if len(totals) == 2:
        e, a = totals["embedded"], totals["anvil"]
        print(f"  anvil vs embedded: {e['wall'] / a['wall']:.1f}× faster wall, "
              f"{e['cpu'] / (a['cpu'] + a['node']):.1f}× less CPU (node included)")  # fmt: skip
    if not args.no_baseline:
        print("3) baseline: the default book (24 borrowers), same week, embedded chain")
        t0 = week(8)
        print(f"  total {t0['wall']:.1f} s wall, {t0['cpu']:.1f} s CPU")
        if "embedded" in totals:
            print(f"  {n} vs 24 borrowers: {totals['embedded']['cpu'] / t0['cpu']:.1f}× the CPU "
                  f"time for {n / 24:.1f}× the borrowers")  # fmt: skip
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
