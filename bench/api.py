"""API service under concurrent load on 127.0.0.1 while the demo replays: p50/p99 latency,
requests per second and errors of the reads (account, risk summary, transparency) and of a
money command, beside a baseline measured in the same run (GET /api/v1/status: no auth, the
cheapest read — the cost of the HTTP stack and the read-model lookup).

The server is `crowdlev serve --demo --workers 2`: the platform process (the single writer)
replays the market one tick every `--pace-s` seconds while 2 uvicorn API workers answer reads
from the read models and queue commands for the platform process. The load generator is an
asyncio httpx client with `--concurrency` connections.

The last case is a money command: a 1-fen withdrawal with a new Idempotency-Key each time
(at most 300 of them), queued by an API worker and executed exactly once by the platform
process. Targets (issue 14): reads p99 < 50 ms at >= 300 req/s; commands >= 50/s with p99 <
250 ms; 0 errors.

On a shared machine wall-clock rates depend on what else runs, so each case also reports the
CPU time spent per request (Linux /proc): the API workers', the platform process's (its
replay ticks included) and the load generator's own milliseconds of CPU per request, measured
over the case.

    .venv/bin/python bench/api.py [--requests 1500] [--concurrency 16] [--pace-s 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CROWDLEV = ROOT / ".venv" / "bin" / "crowdlev"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, data_dir: str, pace_s: float) -> subprocess.Popen[str]:
    env = {**os.environ, "CROWDLEV_DATA_DIR": data_dir}
    env.pop("CROWDLEV_DATABASE_URL", None)
    cmd = [str(CROWDLEV), "serve", "--demo", "--workers", "2", "--port", str(port),
           "--pace-s", str(pace_s), "--no-stress", "--json"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)  # fmt: skip
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            h = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            if h.status_code == 200 and h.json()["writer_alive"]:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a process from /proc, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks


def server_cpu(root: int) -> dict[str, float]:
    """CPU seconds of the platform process and of the API workers under `root` (Linux)."""
    if not Path("/proc").is_dir():
        return {}
    stats = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            st = _stat(int(d.name))
            if st is not None:
                stats[int(d.name)] = st
    out = {"platform": 0.0, "api": 0.0}
    for pid, (ppid, cpu) in stats.items():
        if ppid != root:
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        kind = "platform" if b"crowdleverage.cli platform" in cmd else "api"
        out[kind] += cpu
    return out


def token(base: str, username: str) -> str:
    r = httpx.post(
        f"{base}/api/v1/auth/token",
        data={"username": username, "password": f"{username}-demo-pass"},
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


async def load(
    base: str,
    path: str,
    headers: dict[str, str],
    n: int,
    concurrency: int,
    body: dict[str, int] | None = None,
) -> tuple[list[float], float, int]:
    """GET `path` n times, or POST `body` with a new Idempotency-Key each time (a command)."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    keys = iter(range(10**9))

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        if body is None:
            return await client.get(path)
        key = {"Idempotency-Key": f"bench-{os.getpid()}-{next(keys):09d}"}
        return await client.post(path, json=body, headers=key)

    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=60
    ) as client:
        for _ in range(min(50, n)):  # warm-up, not measured
            await send(client)
        queue = iter(range(n))

        async def worker() -> None:
            nonlocal errors
            for _ in queue:
                t0 = time.perf_counter()
                try:
                    r = await send(client)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return latencies, wall, errors


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--pace-s", type=float, default=1.0, help="replay: seconds per tick")
    args = ap.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(port, tmp, args.pace_s)
        try:
            borrower, operator = token(base, "borrower1"), token(base, "operator")
            investor = token(base, "investor1")
            inv_h = {"Authorization": f"Bearer {investor}"}
            investor_id = httpx.get(f"{base}/api/v1/me", headers=inv_h).json()["id"]
            accounts = httpx.get(
                f"{base}/api/v1/margin-accounts", headers={"Authorization": f"Bearer {borrower}"}
            ).json()["items"]
            account_id = accounts[0]["id"]
            cases = [
                ("baseline GET /api/v1/status", "/api/v1/status", {}),
                (
                    "GET /api/v1/margin-accounts/{id}",
                    f"/api/v1/margin-accounts/{account_id}",
                    {"Authorization": f"Bearer {borrower}"},
                ),
                (
                    "GET /api/v1/risk/summary",
                    "/api/v1/risk/summary",
                    {"Authorization": f"Bearer {operator}"},
                ),
                ("GET /api/v1/public/transparency", "/api/v1/public/transparency", {}),
                (
                    "POST withdrawal 1 fen (command)",
                    f"/api/v1/users/{investor_id}/withdrawals",
                    inv_h,
                ),
            ]
            print(
                f"API bench: {args.requests} requests per endpoint, concurrency "
                f"{args.concurrency}, server = crowdlev serve --demo --workers 2 (platform "
                f"process replaying, one tick every {args.pace_s:g} s), {os.cpu_count()} CPUs "
                f"shared (load average {os.getloadavg()[0]:.1f})"
            )
            print(f"{'endpoint':<36}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
                  f"{'vs baseline':>13}{'cpu ms/req api':>16}{'platform':>10}{'client':>8}"
                  "  target")  # fmt: skip
            results = {}
            for label, path, headers in cases:
                body = {"amount_fen": 1} if label.startswith("POST") else None
                n = min(args.requests, 300) if body else args.requests  # commands are slower
                cpu0, own0 = server_cpu(proc.pid), time.process_time()
                lat, wall, errors = asyncio.run(
                    load(base, path, headers, n, args.concurrency, body)
                )
                cpu1, own1 = server_cpu(proc.pid), time.process_time()
                sent = n + min(50, n)  # with the warm-up
                per = {k: (cpu1[k] - cpu0.get(k, 0.0)) * 1e3 / sent for k in cpu1}
                per["client"] = (own1 - own0) * 1e3 / sent
                rps = len(lat) / wall
                p99 = pct(lat, 0.99) * 1e3
                if body is not None:
                    target, met = "cmds >= 50/s, p99 < 250 ms", rps >= 50 and p99 < 250
                else:
                    target, met = "reads >= 300/s, p99 < 50 ms", rps >= 300 and p99 < 50
                met = met and errors == 0
                results[label] = {"rps": rps, "p50_ms": pct(lat, 0.5) * 1e3, "p99_ms": p99,
                                  "errors": errors, "target": target, "met": met,
                                  "api_cpu_ms": per.get("api"),
                                  "platform_cpu_ms": per.get("platform"),
                                  "client_cpu_ms": per["client"],
                                  "load_avg": os.getloadavg()[0]}  # fmt: skip
                base_rps = results["baseline GET /api/v1/status"]["rps"]
                r = results[label]
                print(
                    f"{label:<36}{rps:9.0f}{r['p50_ms']:9.1f}{r['p99_ms']:9.1f}{errors:8d}"
                    f"{rps / base_rps:12.2f}x{per.get('api', 0):16.2f}"
                    f"{per.get('platform', 0):10.2f}{per['client']:8.2f}"
                    f"  {target}: {'met' if met else 'NOT met'}"
                )
            print(f"load average at the end {os.getloadavg()[0]:.1f} (the machine is shared)")
            print(json.dumps({"bench": "api", "results": results}))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
