"""A light HTTP/1.1 load generator for the benchmarks: asyncio over plain sockets, keep-alive,
one request in flight per connection. It writes prepared request bytes and reads the status
line, the headers and a body framed by Content-Length (or chunked). A general client (httpx)
spends a few milliseconds of CPU per request on this 2-core machine, more than the server
does; this one spends a fraction of that, so the figures measure the server.

Run by itself it prints its CPU per request beside httpx's against a minimal server.

It checks the status of every response and keeps a sample of the bodies so the caller can
check that they are JSON: a fast client counting error pages would measure nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

MAX_HEAD = 64 * 1024
# a keep-alive connection idle this long is opened again before the next request: uvicorn
# closes one idle for 5 s, and a request written to it then gets no answer (a slow open loop
# over many connections, e.g. 10/s over 64, leaves each idle for 6.4 s)
IDLE_S = 4.0


class ResponseError(Exception):
    """A response this client cannot frame (no Content-Length, not chunked)."""


@dataclass
class Result:
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    samples: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # status, head, body


def request_bytes(
    method: str, host: str, path: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes, bool]:
    """(status, head, body, keep-alive) of the next response on the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    i = lower.find(b"\r\ncontent-length:")
    if i >= 0:
        end = lower.index(b"\r\n", i + 2)
        body = await reader.readexactly(int(lower[i + 17 : end]))
    elif b"\r\ntransfer-encoding: chunked" in lower:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers are sent to us
                break
            parts.append((await reader.readexactly(size + 2))[:-2])
        body = b"".join(parts)
    else:
        raise ResponseError(f"no framing in {head[:200]!r}")
    return status, head, body, b"\r\nconnection: close" not in lower


async def run(
    host: str,
    port: int,
    make_request: Callable[[], bytes],
    n: int,
    concurrency: int,
    *,
    warmup: int = 0,
    rate_per_s: float | None = None,
    sample_every: int = 50,
) -> Result:
    """Send `n` requests (after `warmup` unmeasured ones) over `concurrency` keep-alive
    connections. Closed loop by default (each connection sends its next request when the last
    is answered: the most the server answers); with `rate_per_s`, request i is due at
    i / rate_per_s and its latency counts from then, so a server that falls behind is charged
    for the wait (no coordinated omission)."""
    out = Result()
    start = 0.0

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(host, port, limit=MAX_HEAD)

    async def worker(counter: Iterator[int]) -> None:
        reader, writer = await connect()
        used = time.perf_counter()
        try:
            for i in counter:
                due = None
                if rate_per_s is not None and i >= 0:
                    due = start + i / rate_per_s
                    wait = due - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                if time.perf_counter() - used > IDLE_S:  # the server may have closed it
                    writer.close()
                    reader, writer = await connect()
                t0 = time.perf_counter()
                try:
                    writer.write(make_request())
                    status, head, body, alive = await _response(reader)
                except (OSError, asyncio.IncompleteReadError, ResponseError, ValueError):
                    status, head, body, alive = 0, b"", b"", False
                if i >= 0:  # not a warm-up request
                    out.latencies_s.append(time.perf_counter() - (t0 if due is None else due))
                    out.statuses[status] = out.statuses.get(status, 0) + 1
                    out.errors += not 200 <= status < 300
                    if (i % sample_every == 0 or status != 200) and len(out.samples) < 200:
                        out.samples.append((status, head, body))
                used = time.perf_counter()
                if not alive:
                    writer.close()
                    reader, writer = await connect()
        finally:
            writer.close()

    if warmup:  # on connections of its own, not measured
        warm = iter(range(-warmup, 0))
        await asyncio.gather(*(worker(warm) for _ in range(min(concurrency, warmup))))
    measured = iter(range(n))
    start = time.perf_counter()
    await asyncio.gather(*(worker(measured) for _ in range(concurrency)))
    out.wall_s = time.perf_counter() - start
    return out


def _compare(n: int = 3000, concurrency: int = 16) -> None:
    """This client's CPU per request beside httpx's, against a minimal asyncio server in
    another process (a fixed 200 JSON response): what the load generator itself costs."""
    import json
    import multiprocessing
    import socket

    import httpx

    body = json.dumps({"ok": True, "pad": "x" * 1000}).encode()
    reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"

    class Fixed(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport

        def data_received(self, data: bytes) -> None:
            for _ in range(data.count(b"\r\n\r\n")):
                self.t.write(reply % (len(body), body))  # type: ignore[attr-defined]

    def serve(sock: socket.socket) -> None:
        async def main() -> None:
            server = await asyncio.get_running_loop().create_server(Fixed, sock=sock)
            await server.serve_forever()

        asyncio.run(main())

    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    proc = multiprocessing.get_context("fork").Process(target=serve, args=(sock,), daemon=True)
    proc.start()
    try:
        raw = request_bytes("GET", f"127.0.0.1:{port}", "/", {})
        t0 = time.process_time()
        res = asyncio.run(run("127.0.0.1", port, lambda: raw, n, concurrency))
        own = (time.process_time() - t0) * 1e3 / n
        assert res.errors == 0 and all(json.loads(b)["ok"] for _s, _h, b in res.samples)

        async def with_httpx() -> None:
            limits = httpx.Limits(max_connections=concurrency)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as c:
                todo = iter(range(n))

                async def worker() -> None:
                    for _ in todo:
                        (await c.get("/")).raise_for_status()

                await asyncio.gather(*(worker() for _ in range(concurrency)))

        t0 = time.process_time()
        asyncio.run(with_httpx())
        other = (time.process_time() - t0) * 1e3 / n
    finally:
        proc.kill()
    print(f"load generator CPU per request ({n} GETs, {concurrency} connections, a minimal "
          f"server): bench/httpload.py {own:.3f} ms, httpx.AsyncClient {other:.3f} ms "
          f"({other / own:.0f}x)")  # fmt: skip


if __name__ == "__main__":
    _compare()
