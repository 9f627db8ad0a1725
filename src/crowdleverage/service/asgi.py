"""One HTTP request through an ASGI application in this process, without a socket: how the
platform process runs a queued command or renders a view with the API's own endpoints.

The application runs on an event loop of the caller's own, in a thread of its own, under one
task that lives as long as the caller: anyio (under Starlette's `run_in_threadpool`) keeps
the worker threads of sync endpoints for the life of that task, so a request reuses an idle
worker thread instead of starting one (a loop run once per request ends its task, and
anyio stops its threads with it). Each request runs in a copy of the calling thread's
context (`contextvars`), as it would on the caller's thread (the platform's group commit
is a context variable)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from typing import Any

_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


class AsgiCaller:
    """Calls `app` on an event loop of its own (one calling thread at a time)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        ready = threading.Event()

        async def root() -> None:  # the task anyio ties its worker threads to
            self._stop = asyncio.Event()
            ready.set()
            await self._stop.wait()

        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(root(),),
                                        name="asgi-caller", daemon=True)  # fmt: skip
        self._thread.start()
        ready.wait()

    def close(self) -> None:
        if self._thread.is_alive():
            stop = self._stop
            assert stop is not None
            self.loop.call_soon_threadsafe(stop.set)
            self._thread.join(timeout=10)
        if not self._thread.is_alive():
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
        done: concurrent.futures.Future[tuple[int, list[tuple[str, str]], bytes]]
        done = concurrent.futures.Future()
        context = contextvars.copy_context()  # the caller's (its group commit)
        coro = self._call(method, path, query, headers, body, client)

        def finished(task: asyncio.Task[tuple[int, list[tuple[str, str]], bytes]]) -> None:
            if task.cancelled():
                done.set_exception(RuntimeError("dev: an ASGI call was cancelled"))
            elif task.exception() is not None:
                done.set_exception(task.exception())  # type: ignore[arg-type]
            else:
                done.set_result(task.result())

        def start() -> None:
            try:
                task = self.loop.create_task(coro, context=context)
            except BaseException as exc:  # e.g. a loop being closed
                coro.close()
                done.set_exception(exc)
                return
            task.add_done_callback(finished)

        self.loop.call_soon_threadsafe(start)
        return done.result()

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
