"""The real `crowdlev serve` processes under load and faults (issue 14, "one writer, many
readers"): a platform process and 2 API workers; 64 concurrent clients send money commands
with random retries of the same Idempotency-Key while the platform process and API workers
are SIGKILLed and come back. Imported under this unique module name by the tests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from crowdleverage.api import demo

HOLDER_ROLES = ("investor", "borrower")


def run_loop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """asyncio.run in a thread of its own: the pytest worker's thread may already hold a
    running loop (Playwright's sync API, from a browser test run before in the same worker)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, main()).result()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Any, what: str, timeout_s: float = 240.0, every_s: float = 0.1) -> Any:
    """Poll `cond()` until it returns something truthy (never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class WriterWorld:
    """In process: the demo world on the embedded chain and SQLite, and the platform process's
    writer (no thread of its own: the tests run its queue) fed through its queue."""

    def __init__(self, data_dir: Path) -> None:
        import datetime as dt

        from crowdleverage.api.app import create_app
        from crowdleverage.config import Settings
        from crowdleverage.flows.platform import Platform
        from crowdleverage.service.queue import Queue
        from crowdleverage.service.writer import PlatformWriter

        settings = Settings(data_dir=data_dir)
        self.p = Platform(settings, market_start=dt.date(2015, 12, 28))
        self.app = create_app(settings, platform=self.p, engine=self.p.engine)
        self.st = self.app.state.api
        demo.seed(self.st)
        self.queue = Queue(self.p.engine)
        self.queue.create_schema()
        self.writer = PlatformWriter(self.app, self.queue, tick=None)
        self.writer.recover()
        self.n = 0


class Serve:
    """`crowdlev serve --demo --workers 2` in a data dir of its own."""

    def __init__(self, data_dir: Path, database_url: str | None, pace_s: float = 1.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env["CROWDLEV_DATA_DIR"] = str(data_dir)
        env["CROWDLEV_JWT_SECRET"] = "s" * 40
        if database_url:
            env["CROWDLEV_DATABASE_URL"] = database_url
        else:
            env.pop("CROWDLEV_DATABASE_URL", None)
        args = [sys.executable, "-m", "crowdleverage.cli", "serve", "--demo", "--workers", "2",
                "--port", str(self.port), "--pace-s", str(pace_s), "--no-stress", "--json",
                "--from", "2015-12-28"]  # fmt: skip
        self.log = (data_dir.parent / f"serve-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=self.log)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the startup facts, once the platform is ready
        assert line, f"serve exited: {self.proc.wait()}"
        self.facts = json.loads(line)

    def health(self) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/healthz", timeout=5)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def writer_up(self) -> dict[str, Any] | None:
        h = self.health()
        return h if h["writer_alive"] else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@dataclass
class Op:
    """One command a client sends (with retries under the same key)."""

    kind: str
    user: str
    path: str
    body: dict[str, Any]
    key: str
    mark: Any  # what identifies its effect: an amount, a reference, (side, code, qty, limit)
    statuses: list[int] = field(default_factory=list)

    @property
    def acked(self) -> int | None:
        """The final status the client saw (2xx or 4xx), None if it never got one."""
        done = [s for s in self.statuses if s < 500 and s != 202]
        return done[-1] if done else None


@dataclass
class Load:
    ops: list[Op] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    kills: Counter[str] = field(default_factory=Counter)


class Clients:
    """The demo world's holders and custodian, logged in over HTTP."""

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, int] = {}
        self.accounts: dict[str, int] = {}
        self.positions: dict[str, list[dict[str, Any]]] = {}
        names = [i[0] for i in demo.INVESTORS] + [b[0] for b in demo.BORROWERS] + ["custodian"]
        with httpx.Client(base_url=serve.url, timeout=60) as c:
            for name in names:
                r = c.post("/api/v1/auth/token",
                           data={"username": name, "password": demo.password(name)})  # fmt: skip
                assert r.status_code == 200, r.text
                self.tokens[name] = r.json()["access_token"]
                me = c.get("/api/v1/me", headers=self.h(name))
                assert me.status_code == 200, me.text
                self.ids[name] = me.json()["id"]
            for b, *_ in demo.BORROWERS:
                r = c.get("/api/v1/margin-accounts", headers=self.h(b))
                assert r.status_code == 200, r.text
                acc = r.json()["items"][0]
                self.accounts[b] = acc["id"]
                self.positions[b] = [p for p in acc["positions"] if p["quantity"] > 0]

    def h(self, name: str, key: str | None = None) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.tokens[name]}"}
        if key is not None:
            out["Idempotency-Key"] = key
        return out


_seq = itertools.count(1)


def make_op(cl: Clients, rng: random.Random, run: str) -> Op:
    n = next(_seq)
    key = f"svc-{run}-{n:06d}"
    investors = [i[0] for i in demo.INVESTORS]
    borrowers = [b[0] for b in demo.BORROWERS]
    kind = rng.choice(["deposit", "withdraw", "subscribe", "redeem", "buy", "sell", "repay",
                       "withdraw"])  # fmt: skip
    if kind == "deposit":
        who = rng.choice(investors + borrowers)
        ref = f"SVC-{run}-{n:06d}"
        body = {"user_id": cl.ids[who], "amount_fen": 10_000 + n, "bank_reference": ref}
        return Op(kind, "custodian", "/api/v1/custody/deposits", body, key, (who, ref))
    if kind == "withdraw":
        who = rng.choice(investors + borrowers)
        body = {"amount_fen": 100 + n}
        return Op(kind, who, f"/api/v1/users/{cl.ids[who]}/withdrawals", body, key, -(100 + n))
    if kind == "subscribe":
        who = rng.choice(investors)
        body = {"tranche": rng.choice(["senior", "junior"]), "amount_fen": 1_000 + n}
        return Op(kind, who, f"/api/v1/investors/{cl.ids[who]}/subscriptions", body, key,
                  -(1_000 + n))  # fmt: skip
    if kind == "redeem":
        who = rng.choice(investors)
        body = {"tranche": rng.choice(["senior", "junior"]), "units": 1_000 + n}
        return Op(kind, who, f"/api/v1/investors/{cl.ids[who]}/redemptions", body, key, 1_000 + n)
    who = rng.choice(borrowers)
    acc = cl.accounts[who]
    if kind == "repay":
        body = {"amount_fen": 10 + n}
        return Op(kind, who, f"/api/v1/margin-accounts/{acc}/repayments", body, key, -(10 + n))
    pos = rng.choice(cl.positions[who]) if cl.positions[who] else None
    if pos is None:
        return make_op(cl, rng, run)
    price = pos["price_fen"]
    limit = price - (n % 97) if kind == "buy" else price + (n % 97)
    body = {"side": "BUY" if kind == "buy" else "SELL", "code": pos["code"], "quantity": 100,
            "limit_price_fen": limit}  # fmt: skip
    return Op(kind, who, f"/api/v1/margin-accounts/{acc}/orders", body, key,
              (body["side"], pos["code"], 100, limit))  # fmt: skip


async def send(client: httpx.AsyncClient, cl: Clients, op: Op, load: Load) -> None:
    try:
        r = await client.post(op.path, json=op.body, headers=cl.h(op.user, op.key))
    except httpx.TransportError:
        load.transport_errors += 1  # the worker was killed mid-request: not an answer
        return
    op.statuses.append(r.status_code)
    load.statuses[r.status_code] += 1


async def client_loop(
    cl: Clients, load: Load, run: str, seed: int, running: asyncio.Event, retry_p: float = 0.3
) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=cl.serve.url, timeout=120) as client:
        while running.is_set():
            op = make_op(cl, rng, run)
            load.ops.append(op)
            await send(client, cl, op, load)
            # a retry with the same key: after a lost answer, or at random (twice at once)
            tries = 0
            while op.acked is None and tries < 3 and running.is_set():
                tries += 1
                await send(client, cl, op, load)
            if rng.random() < retry_p:
                await asyncio.gather(send(client, cl, op, load), send(client, cl, op, load))


async def chaos(serve: Serve, load: Load, kills: list[str], every_s: float) -> None:
    """SIGKILL an API worker or the platform process in turn; wait until each is back."""
    for what in kills:
        await asyncio.sleep(every_s)
        h = await asyncio.to_thread(serve.health)
        if what == "platform":
            old = h["writer"]["pid"]
            os.kill(old, signal.SIGKILL)
            load.kills["platform"] += 1

            def back(old: int = old) -> bool:
                up = serve.writer_up()
                return bool(up and up["writer"]["pid"] != old)

            await asyncio.to_thread(wait_for, back, "the platform process back", 600)
        else:
            os.kill(h["pid"], signal.SIGKILL)
            load.kills["api_worker"] += 1
            await asyncio.to_thread(wait_for, serve.health, "an API worker answering")


def drive(serve: Serve, cl: Clients, run: str, clients: int, kills: list[str], every_s: float
          ) -> Load:  # fmt: skip
    """`clients` concurrent clients while the kills happen, and `every_s` after the last
    process is back."""
    load = Load()

    async def main() -> None:
        running = asyncio.Event()
        running.set()

        async def faults() -> None:
            await chaos(serve, load, kills, every_s)
            await asyncio.sleep(every_s)
            running.clear()

        tasks = [client_loop(cl, load, run, i, running) for i in range(clients)]
        await asyncio.gather(faults(), *tasks)

    run_loop(main)
    return load


def settle(cl: Clients, load: Load) -> int:
    """Send every unacknowledged command again with its key until it is answered (the
    platform is up): it completes, or returns the result it already had. Returns how many."""
    todo = [op for op in load.ops if op.acked is None]

    async def main() -> None:
        sem = asyncio.Semaphore(16)
        async with httpx.AsyncClient(base_url=cl.serve.url, timeout=120) as client:

            async def one(op: Op) -> None:
                async with sem:
                    for _ in range(20):
                        await send(client, cl, op, load)
                        if op.acked is not None:
                            return
                    raise AssertionError(f"{op.key} never answered: {op.statuses}")

            await asyncio.gather(*(one(op) for op in todo))

    run_loop(main)
    return len(todo)


def quiescent(serve: Serve) -> dict[str, Any] | None:
    """The writer is up, nothing queued or running (the views a command touches are stored
    with its result; the replay keeps re-rendering the rest)."""
    h = serve.writer_up()
    if h is None:
        return None
    q = h["queue"]
    if q.get("queued", 0) or q.get("running", 0):
        return None
    return h


def get_all(c: httpx.Client, path: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        r = c.get(path, params={"limit": 200, "offset": offset}, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        items += page["items"]
        offset += 200
        if offset >= page["total"]:
            return items


def check_exactly_once(serve: Serve, cl: Clients, load: Load) -> dict[str, Any]:
    """Every acknowledged 2xx command's effect appears exactly once, a 4xx's never, an
    unacknowledged one's at most once (in the statements and orders the API serves)."""
    lines: dict[str, list[dict[str, Any]]] = {}
    orders: dict[str, list[dict[str, Any]]] = {}
    with httpx.Client(base_url=serve.url, timeout=60) as c:
        for name, uid in cl.ids.items():
            if name == "custodian":
                continue
            lines[name] = get_all(c, f"/api/v1/users/{uid}/statement", cl.h(name))
        for b, acc in cl.accounts.items():
            orders[b] = get_all(c, f"/api/v1/margin-accounts/{acc}/orders", cl.h(b))
    seen: dict[str, Counter[Any]] = defaultdict(Counter)
    for name, ls in lines.items():
        for x in ls:
            k, a, d = x["kind"], x["amount_fen"], x["details"]
            if k == "deposit":
                seen["deposit"][(name, d.get("reference"))] += 1
            elif k == "withdrawal":
                seen["withdraw"][(name, a)] += 1
            elif k == "subscription_requested":
                seen["subscribe"][(name, a)] += 1
            elif k == "redemption_requested":
                seen["redeem"][(name, d.get("units"))] += 1
            elif k == "repayment":
                seen["repay"][(name, a)] += 1
    for b, os_ in orders.items():
        for o in os_:
            side = o["side"].upper()
            kind = "buy" if side == "BUY" else "sell"
            seen[kind][(b, (side, o["code"], o["quantity"], o["limit_price_fen"]))] += 1
    tally: Counter[str] = Counter()
    # Ops are recognised by what they leave behind (a reference, an amount, an order's side,
    # code, quantity and limit). Two ops may leave the same mark (two buys whose limits
    # happen to be equal): per mark, the effects seen must be at least the acknowledged
    # ops and at most those plus the unacknowledged ones; refused ones add nothing.
    groups: dict[tuple[str, Any], list[Op]] = defaultdict(list)
    for op in load.ops:
        mark = op.mark if op.kind == "deposit" else (op.user, op.mark)
        groups[(op.kind, mark)].append(op)
        if op.acked is None:
            tally["unacknowledged"] += 1
        elif op.acked < 300:
            tally[f"{op.kind} ok"] += 1
        else:
            tally[f"{op.kind} refused"] += 1
    for (kind, mark), ops in groups.items():
        n = seen[kind][mark]
        ok = [o for o in ops if o.acked is not None and o.acked < 300]
        unacked = [o for o in ops if o.acked is None]
        keys = [(o.key, o.statuses) for o in ops]
        assert len(ok) <= n <= len(ok) + len(unacked), (
            f"{kind} {mark}: happened {n} times for {len(ok)} acknowledged and "
            f"{len(unacked)} unacknowledged ops {keys}"
        )
    return dict(tally)


def read_models_snapshot(serve: Serve, cl: Clients) -> dict[str, Any]:
    """Wallets, statements and accounts as the API serves them (from the read models)."""
    out: dict[str, Any] = {"wallet": {}, "lines": {}, "accounts": {}}
    with httpx.Client(base_url=serve.url, timeout=60) as c:
        for name, uid in cl.ids.items():
            if name == "custodian":
                continue
            r = c.get(f"/api/v1/users/{uid}/wallet", headers=cl.h(name))
            assert r.status_code == 200, r.text
            out["wallet"][uid] = r.json()["wallet_fen"]
            out["lines"][uid] = get_all(c, f"/api/v1/users/{uid}/statement", cl.h(name))
        for b, acc in cl.accounts.items():
            r = c.get(f"/api/v1/margin-accounts/{acc}", headers=cl.h(b))
            assert r.status_code == 200, r.text
            out["accounts"][acc] = r.json()
    return out
