"""How long the platform process's writer is away from the command queue during the market
replay (issue 14): the writer runs wallet commands between the parts of a tick
(`flows.Platform.tick`, `between_parts`), so a withdrawal queued during a tick waits for the
rest of the current part, not for the rest of the tick.

The demo world (`crowdlev serve --demo`'s seed) replays `--ticks` ticks in this process. For
each tick the writer thread's CPU time (`time.thread_time`: the machine's other load does not
inflate it as it does wall-clock time) is split at the points where commands could run; the
baseline in the same run is the whole tick (what a command waited for before ticks ran in
parts). Printed: mean, p90, p99 and max of both, and the parts by kind (`Platform.last_part`:
an intraday step's part, each part of the end of day, the open's parts). As in the writer,
the chain's state snapshots are deferred to between ticks (`defer_snapshots`; printed apart).

`--withdrawals N`: before each day's close, N 1-fen withdrawals (`Platform.withdraw`, from the
investor with the most wallet cash; outside the timing) queue their payouts, so the close's
`payouts` part (pain.001 export, the bank's execution, the statement's import) pays N payouts
(as in bench/api.py's paced withdrawal run).

    .venv/bin/python bench/tick_parts.py [--ticks 80] [--withdrawals 300]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import statistics
import sys
import tempfile
import time


def _q(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _line(label: str, values: list[float]) -> str:
    ms = [v * 1e3 for v in values]
    return (f"{label:<44}{statistics.mean(ms):7.0f}{_q(ms, 0.9):7.0f}{_q(ms, 0.99):7.0f}"
            f"{max(ms):7.0f}{len(ms):6d}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=80)
    ap.add_argument("--withdrawals", type=int, default=0,
                    help="1-fen withdrawals queued before each close (their payouts)")  # fmt: skip
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CROWDLEV_DATA_DIR"] = tmp
        os.environ.pop("CROWDLEV_DATABASE_URL", None)
        from crowdleverage.api import demo as demo_world
        from crowdleverage.api.app import create_app
        from crowdleverage.config import load_settings
        from crowdleverage.flows import platform as flows_platform
        from crowdleverage.flows.platform import Platform

        settings = load_settings(None)
        settings.ensure_data_dir()
        p = Platform(settings, market_start=dt.date(2015, 12, 28))
        app = create_app(settings, platform=p, engine=p.engine)
        demo_world.seed(app.state.api)
        for _ in range(3):
            p.tick()
        ticks: list[float] = []
        parts: list[float] = []
        by_kind: dict[str, list[float]] = collections.defaultdict(list)
        last = [0.0]

        def kind() -> str:  # the part that just ran (`Platform.last_part`)
            name = p.last_part or "step"
            return (
                f"end of day: {name.removeprefix('close:')}" if name.startswith("close:") else name
            )

        def between() -> None:  # where the writer runs the queued wallet commands
            now = time.thread_time()
            parts.append(now - last[0])
            by_kind[kind()].append(now - last[0])
            last[0] = now

        def queue_payouts() -> None:  # before a close: N payouts requested
            if not (args.withdrawals and p.day_open and p.market.at_close()):
                return
            uid = max(p.s.enrolled, key=p.wallet_fen)
            for _ in range(args.withdrawals):
                p.withdraw(uid, 1)

        # as the platform process's writer: the chain's state snapshots are taken while it
        # is idle (between ticks), not inside whichever transaction reaches the count
        defer = getattr(p.chain, "defer_snapshots", None)
        if callable(defer):
            defer()
        snapshots: list[float] = []

        p.between_parts = between
        budget = getattr(flows_platform, "TICK_PART_BUDGET_S", None)  # as the writer sets it
        if budget is not None:
            p.tick_part_budget_s = budget
        for _ in range(args.ticks):
            if getattr(p.chain, "snapshot_due", False):
                s0 = time.thread_time()
                p.chain.snapshot()
                snapshots.append(time.thread_time() - s0)
            queue_payouts()
            t0 = last[0] = time.thread_time()
            p.tick()
            t1 = time.thread_time()
            ticks.append(t1 - t0)
            parts.append(t1 - last[0])
            by_kind[kind()].append(t1 - last[0])
        p.close()
    print(f"writer thread CPU ms over {args.ticks} demo ticks ({os.cpu_count()} CPUs shared, "
          f"load average {os.getloadavg()[0]:.1f}; {args.withdrawals} withdrawals before "
          f"each close)")  # fmt: skip
    print(f"{'':<44}{'mean':>7}{'p90':>7}{'p99':>7}{'max':>7}{'n':>6}")
    print(_line("a whole tick (the baseline: no parts)", ticks))
    print(_line("a stretch between two chances to run commands", parts))
    for k, v in sorted(by_kind.items()):
        print(_line(f"  a part of: {k}", v))
    if snapshots:
        print(_line("the chain's snapshot (idle, between ticks)", snapshots))
    print(f"stretch p99 / whole-tick p99: {_q(parts, 0.99) / _q(ticks, 0.99):.2f}x")


if __name__ == "__main__":
    sys.exit(main())
