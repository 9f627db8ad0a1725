"""One HTTP request through an ASGI application in this process, without a socket: how the
platform process runs a queued command or renders a view with the API's own endpoints."""

from __future__ import annotations

import asyncio
from typing import Any

_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


class AsgiCaller:
    """Calls `app` on an event loop of its own (one calling thread at a time)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()

    def call(
        self,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        client: str = "127.0.0.1",
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        return self.loop.run_until_complete(self._call(method, path, query, headers, body, client))

    async def _call(
        self,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        client: str,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers
               if k.lower() not in _HOP]  # fmt: skip
        raw += [(b"host", b"platform"), (b"content-length", str(len(body)).encode())]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": query.encode("latin-1"), "root_path": "", "headers": raw,
            "client": (client, 0), "server": ("platform", 80), "state": {},
        }  # fmt: skip
        sent_body = False
        complete = asyncio.Event()
        status = 500
        out_headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await complete.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for k, v in message.get("headers", []):
                    name = k.decode("latin-1")
                    if name.lower() != "content-length":
                        out_headers.append((name, v.decode("latin-1")))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    complete.set()

        try:
            await self.app(scope, receive, send)
        finally:
            complete.set()
        return status, out_headers, b"".join(chunks)
