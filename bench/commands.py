"""Money commands end to end (issue 14): what one 1-fen withdrawal costs from the API worker's
enqueue to its answer, while the demo replays.

The server is `crowdlev serve --demo --workers 2` (the platform process replays one tick every
`--pace-s` seconds; `--pace-s 3600` measures without ticks). Two modes, each withdrawal with a
new Idempotency-Key:

- closed loop (the default, `--closed` beside `--rate`): `--concurrency` clients each send the
  next withdrawal when the last is answered: the most the server completes. The latency of
  this mode is set by the clients as much as by the server (Little's law: mean latency =
  concurrency / throughput);
- open loop (`--rate R`): withdrawals arrive at R per second whatever the answers (command i
  is due at i / R, over up to `--connections` connections, bench/httpload.py), and each one's
  latency counts from when it was due, so a server that falls behind pays for the wait. It
  prints the offered rate, the completed rate (commands / time to the last answer), p50, p99
  and max latency. Its target is met when the offered rate is at least 50/s, every command is
  answered 200 and p99 < 250 ms (the completed rate is below the offered one by the last
  command's latency even when the server keeps up; one that does not shows in the latency).

For each mode the bench prints errors and, per command:

- durable commits: SQLite commits with `synchronous=FULL` (one `fdatasync` of the WAL each, on
  Linux), counted from `fsync`/`fdatasync` calls per file under the data dir with `strace`
  attached to every thread of the server's processes (`--strace`; it slows the run, so the
  latency figures of such a run are not the ones to quote). Checkpoints add a few fsyncs of
  the database file; they are shown apart;
- CPU milliseconds of the platform process and of the API workers (Linux /proc), which the
  machine's other load does not inflate as it does wall-clock time.

The baseline in the same run is `GET /api/v1/status` (the HTTP stack alone).

    .venv/bin/python bench/commands.py [--commands 300] [--concurrency 16] [--strace]
    .venv/bin/python bench/commands.py --rate 50 [--closed] [--pace-s 3600]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpload  # bench/httpload.py, beside this file
import httpx
from api import free_port, make_request, pct, stalls, start_server, token  # bench/api.py

ROOT = Path(__file__).resolve().parents[1]


def children(root: int) -> dict[int, str]:
    """pid -> 'platform' | 'api' of the server's processes (Linux /proc)."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            text = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == root:
            out[int(d.name)] = "platform" if b"crowdleverage.cli platform" in cmd else "api"
    return out


def cpu_s(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    f = text[text.rindex(")") + 2 :].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


async def load(
    base: str, path: str, headers: dict[str, str], n: int, concurrency: int, command: bool
) -> tuple[list[float], float, int]:
    lat: list[float] = []
    errors = 0
    keys = iter(range(10**9))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        if not command:
            return await client.get(path)
        key = {"Idempotency-Key": f"cmdbench-{os.getpid()}-{next(keys):09d}"}
        return await client.post(path, json={"amount_fen": 1}, headers=key)

    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits,
                                 timeout=60) as client:  # fmt: skip
        queue = iter(range(n))

        async def worker() -> None:
            nonlocal errors
            for _ in queue:
                t0 = time.perf_counter()
                try:
                    ok = (await send(client)).status_code == 200
                except httpx.HTTPError:
                    ok = False
                lat.append(time.perf_counter() - t0)
                errors += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return lat, time.perf_counter() - t0, errors


def open_loop(
    port: int, path: str, headers: dict[str, str], n: int, rate: float, connections: int
) -> tuple[list[float], float, int]:
    """`n` withdrawals due at `rate` per second (latency from when each was due); an answer
    other than 200 is an error (a 202 says the platform did not run it in time)."""
    request = make_request(f"127.0.0.1:{port}", path, headers, {"amount_fen": 1})
    res = asyncio.run(httpload.run("127.0.0.1", port, request, n, connections,
                                   rate_per_s=rate))  # fmt: skip
    return res.latencies_s, res.wall_s, n - res.statuses.get(200, 0)


class Strace:
    """fsync/fdatasync calls of every thread of `pids`, by file, while attached."""

    def __init__(self, pids: dict[int, str], out: Path) -> None:
        self.out = out
        args = ["strace", "-qq", "-f", "-y", "-e", "trace=fsync,fdatasync", "-o", str(out)]
        for pid in pids:
            for tid in os.listdir(f"/proc/{pid}/task"):
                args += ["-p", tid]
        self.proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attaching takes a moment; what it misses is the warm-up's

    def stop(self) -> collections.Counter[str]:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        counts: collections.Counter[str] = collections.Counter()
        for line in self.out.read_text().splitlines():
            m = re.search(r"f(?:data)?sync\(\d+<([^>]*)>", line)
            if m:
                counts[Path(m.group(1)).name] += 1
        return counts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commands", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=16, help="closed loop: clients")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="open loop: withdrawals per second (0: closed loop only)")  # fmt: skip
    ap.add_argument("--closed", action="store_true", help="with --rate: the closed loop too")
    ap.add_argument("--connections", type=int, default=128, help="open loop: at most")
    ap.add_argument("--pace-s", type=float, default=1.0, help="seconds per tick (3600: none)")
    ap.add_argument("--strace", action="store_true", help="count fsyncs per command (slower)")
    ap.add_argument("--server-log", default=None,
                    help="append the server's log here (JSON lines: the writer's stalls over"
                         " 100 ms are printed for each mode)")  # fmt: skip
    args = ap.parse_args()
    if args.strace and shutil.which("strace") is None:
        raise SystemExit("--strace needs strace on the PATH")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(port, tmp, args.pace_s, args.server_log)
        try:
            inv_h = {"Authorization": f"Bearer {token(base, 'investor1')}"}
            uid = httpx.get(f"{base}/api/v1/me", headers=inv_h).json()["id"]
            path = f"/api/v1/users/{uid}/withdrawals"
            asyncio.run(load(base, path, inv_h, 30, 4, True))  # warm-up, not measured
            asyncio.run(load(base, "/api/v1/status", {}, 200, args.concurrency, False))
            pids = children(proc.pid)
            print(f"money commands: {args.commands} 1-fen withdrawals per mode, crowdlev serve "
                  f"--demo --workers 2 replaying one tick every {args.pace_s:g} s; "
                  f"{os.cpu_count()} CPUs shared, load average "
                  f"{os.getloadavg()[0]:.1f}")  # fmt: skip
            results = {}
            cases = [("baseline GET /api/v1/status", "/api/v1/status", {}, None, 1500)]
            if not args.rate or args.closed:
                cases.append((f"withdrawal, closed loop x{args.concurrency}", path, inv_h,
                              "closed", args.commands))  # fmt: skip
            if args.rate:
                cases.append((f"withdrawal, open loop {args.rate:g}/s", path, inv_h, "open",
                              args.commands))  # fmt: skip
            for label, p, h, mode, n in cases:
                tracer = Strace(pids, Path(tmp) / "strace.txt") if args.strace and mode else None
                cpu0 = {pid: cpu_s(pid) for pid in pids}
                t0 = time.time()
                if mode == "open":
                    lat, wall, errors = open_loop(port, p, h, n, args.rate, args.connections)
                else:
                    conc = args.concurrency
                    lat, wall, errors = asyncio.run(load(base, p, h, n, conc, mode is not None))
                cpu1 = {pid: cpu_s(pid) for pid in pids}
                window = (t0, time.time())
                fsyncs = tracer.stop() if tracer is not None else None
                per: dict[str, float] = collections.defaultdict(float)
                for pid, kind in pids.items():
                    per[kind] += (cpu1[pid] - cpu0[pid]) * 1e3 / n
                r = {"rps": n / wall, "p50_ms": pct(lat, 0.5) * 1e3, "p99_ms": pct(lat, 0.99) * 1e3,
                     "max_ms": max(lat) * 1e3, "errors": errors,
                     "platform_cpu_ms": per["platform"], "api_cpu_ms": per["api"],
                     "load_avg": os.getloadavg()[0]}  # fmt: skip
                offered = f"offered {args.rate:g}/s, " if mode == "open" else ""
                if mode == "open":
                    r["offered_rps"] = args.rate
                print(f"{label:<32}{offered}{r['rps']:6.1f}/s  p50 {r['p50_ms']:7.1f} ms  p99 "
                      f"{r['p99_ms']:7.1f} ms  max {r['max_ms']:7.1f} ms  errors {errors}  "
                      f"cpu ms/req: platform {per['platform']:.2f}, api {per['api']:.2f}  "
                      f"load {r['load_avg']:.1f}")  # fmt: skip
                if mode is not None and args.server_log:
                    r["stalls"] = stalls(args.server_log, *window)
                    print(f"{'':<32}{r['stalls']}")
                if fsyncs is not None:
                    total = sum(fsyncs.values())
                    r["fsyncs_per_command"] = total / n
                    r["fsyncs_by_file"] = {k: v / n for k, v in fsyncs.most_common()}
                    detail = ", ".join(f"{k} {v / n:.2f}" for k, v in fsyncs.most_common())
                    print(f"{'':<32}fsyncs per command {total / n:.2f} ({detail})")
                if mode == "open":
                    # open loop: the offered rate is the throughput asked for; the server
                    # sustains it when every command is answered 200 and the latency (from
                    # when each was due) stays bounded. n / wall is below the offered rate by
                    # the last command's latency even for a server that keeps up.
                    r["met"] = args.rate >= 50 and r["p99_ms"] < 250 and errors == 0
                elif mode is not None:
                    r["met"] = r["rps"] >= 50 and r["p99_ms"] < 250 and errors == 0
                results[label] = r
            base_rps = results["baseline GET /api/v1/status"]["rps"]
            for label, r in results.items():
                if "met" in r:
                    rate = (
                        "offered >= 50/s, every command answered 200"
                        if "offered_rps" in r
                        else ">= 50/s"
                    )
                    print(f"{label}: commands/s vs the baseline's req/s {r['rps'] / base_rps:.3f}x;"
                          f" target (issue 14) {rate}, p99 < 250 ms, 0 errors: "
                          f"{'met' if r['met'] else 'NOT met'}")  # fmt: skip
            print(f"load average at the end {os.getloadavg()[0]:.1f}")
            print(json.dumps({"bench": "commands", "pace_s": args.pace_s, "results": results}))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
