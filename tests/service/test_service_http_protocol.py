"""The API workers' HTTP protocol sets TCP_NODELAY on every connection. With more than one
worker uvicorn binds the listening socket itself with protocol number 0, and asyncio leaves
Nagle's algorithm on for sockets accepted from it: each response's body then waited for the
client's delayed ACK of the head (~40 ms a request on keep-alive connections)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import time
from pathlib import Path

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from crowdleverage.service import process

NODELAY_HTTP = "crowdleverage.service.http_protocol:NoDelayHTTP"


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"ok"})


def _served_connection_nodelay(http: str) -> int:
    """TCP_NODELAY of the server's side of a keep-alive connection, the listening socket bound
    as uvicorn binds it for several workers (`socket.socket(family)`)."""

    async def main() -> int:
        listener = socket.socket(family=socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        assert listener.proto == 0  # the premise: asyncio's own TCP_NODELAY skips such sockets
        config = uvicorn.Config(_app, http=http, lifespan="off", log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[listener]))
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and not task.done(), "server did not start"
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(2) == b"ok"
        [conn] = list(server.server_state.connections)
        sock = conn.transport.get_extra_info("socket")  # type: ignore[attr-defined]
        value = int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        listener.close()
        return value

    # its own thread and loop: a test before it in this worker may have left a loop running
    # in the main thread (asyncio.run refuses to nest)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=120)


def test_nodelay_protocol_sets_tcp_nodelay_where_uvicorn_binds_the_socket() -> None:
    assert _served_connection_nodelay("auto") == 0  # uvicorn's own protocol: Nagle on
    assert _served_connection_nodelay(NODELAY_HTTP) != 0


def test_run_api_serves_with_the_nodelay_protocol(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    monkeypatch.setattr(os, "environ", dict(os.environ))  # run_api sets the workers' variables
    from crowdleverage.config import Settings

    process.run_api(Settings(data_dir=tmp_path), None, "127.0.0.1", 0, 2, "warning")
    assert seen["http"] == NODELAY_HTTP and seen["workers"] == 2
