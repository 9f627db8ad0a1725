"""The API worker's side of the split (DESIGN.md §11): the worker never opens the chain.

- a request to an endpoint that changes state is a command: it is queued (`service_commands`,
  named by the client's Idempotency-Key when it sends one) and the worker waits for the
  platform process's response. A retry with the same key waits for the same command; the same
  key with another request is refused (422). When the platform does not answer within
  `wait_s` (it is down or restarting), the answer is 202 with the command's id: the command is
  queued durably and runs when the platform is back; sending it again with the same key
  returns its result (or `GET /api/v1/commands/{id}`).
- a read of a platform view is answered from the read models the platform projected for this
  viewer; a view not projected yet is rendered by the platform on its first read. The hot path
  (`FastReads`, the outermost ASGI layer of a worker) answers such a read without FastAPI: the
  view's stored bytes, from an in-worker cache checked against SQLite's `PRAGMA data_version`
  (nothing committed since: the cached row is current; else the row's `seq` says whether it
  changed). The viewer is the one the token names, as on the slow path: a reader gets only the
  views rendered for them.
- a waiting request wakes up when its command's row is finished: on SQLite the worker checks
  `PRAGMA data_version` every 2 ms and looks at the rows only after a commit. A command is
  queued and answered by the outermost layer (`FastReads._write`), not through Starlette's
  `BaseHTTPMiddleware` layers; on SQLite the queue's writes and reads here use plain `sqlite3`
  connections (`Queue.enqueue`, `Queue.results`).
- authentication, user administration, the audit log and the docs are served by the worker
  itself (they use only the database).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy.engine import Engine
from starlette.requests import ClientDisconnect, cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from crowdleverage.api.security import decode_token
from crowdleverage.domain.errors import CrowdLevError, Unauthorized
from crowdleverage.service.queue import Doc, Queue, Row, now_ms, request_hash

log = logging.getLogger("crowdleverage.service.gateway")

COOKIE = "crowdlev_token"
_KEY_RE = re.compile(r"^[A-Za-z0-9_.:\-]{8,128}$")
_COMMAND_RE = re.compile(r"^/api/v1/commands/(\d{1,18})$")
LOCAL_ENDPOINTS = {"audit_log", "login_page", "login_submit", "logout", "plotly_js", "favicon"}
UNCACHED = {"/api/v1/audit/reconciliation"}  # may run a reconciliation: always fresh
WRITER_STALE_MS = 15_000  # a busy writer (a long tick) still beats within this
_RID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{8,64}$")  # as api.app's request ids
CACHE_DOCS = 2048  # views cached per worker (the oldest dropped first)
CACHE_TOKENS = 4096
CACHE_ROUTES = 8192
_FAST_METHODS = frozenset(
    {"GET", "POST", "PUT", "PATCH", "DELETE"}
)  # `FastReads` (OPTIONS, HEAD: no)
TOUCH_EVERY_S = 30.0  # the views this worker served, reported in one write (eviction)


@dataclass(slots=True)
class _Cached:
    version: int  # the data_version at which the row was last seen current
    seq: int
    status: int
    headers: list[tuple[bytes, bytes]]  # as sent, without the request id
    body: bytes


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers or {})


def _typed(status: int, code: str, message: str, **details: Any) -> Response:
    return _json(status, {"error": code, "message": message, "details": details})


class Gateway:
    def __init__(self, engine: Engine, secret: str, *, wait_s: float | None = None) -> None:
        self.queue = Queue(engine)
        self.queue.create_schema()
        self.secret = secret
        self.wait_s = wait_s if wait_s is not None else float(
            os.environ.get("CROWDLEV_COMMAND_WAIT_S", "30")
        )  # fmt: skip
        self._waiters: dict[int, list[asyncio.Future[Row]]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._new_waiter = False
        self._forwarded: list[tuple[Any, set[str]]] = []
        self._route_memo: dict[tuple[str, str], bool] = {}
        self._tokens: dict[str, tuple[int, int]] = {}  # token -> (user id, exp)
        self._docs: dict[tuple[int, str], _Cached] = {}
        self._served: set[tuple[int, str]] = set()
        self._toucher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ wiring

    def install(self, app: FastAPI) -> None:
        """Decide per route whether the worker serves it or the platform does."""

        @app.middleware("http")
        async def _gateway(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            if not self._forwarded:
                self._classify(app)
            try:
                return await self.dispatch(request, call_next)
            except CrowdLevError as err:
                from crowdleverage.api.app import _error_response

                return _error_response(err)

    def _classify(self, app: FastAPI) -> None:
        from fastapi.routing import APIRoute
        from starlette.routing import compile_path

        from crowdleverage.api.app import API_PREFIX
        from crowdleverage.api.endpoints import (
            attestations,
            margin,
            money,
            notifications,
            onboarding,
            operator,
            operator_views,
            statements,
        )
        from crowdleverage.web import pages, pages_reports

        routers = [(API_PREFIX, r.router) for r in (money, margin, operator, onboarding,
                   statements, notifications, attestations, operator_views)]  # fmt: skip
        for prefix, router in [*routers, ("", pages.router), ("", pages_reports.router)]:
            for route in router.routes:
                if not isinstance(route, APIRoute) or route.name in LOCAL_ENDPOINTS:
                    continue
                regex, _fmt, _conv = compile_path(prefix + route.path)
                self._forwarded.append((regex, set(route.methods or ())))

    def _is_forwarded(self, method: str, path: str) -> bool:
        memo = self._route_memo.get((method, path))
        if memo is None:
            memo = any(method in methods and rx.match(path) for rx, methods in self._forwarded)
            if len(self._route_memo) >= CACHE_ROUTES:
                self._route_memo.clear()
            self._route_memo[(method, path)] = memo
        return memo

    def install_fast_reads(self, app: FastAPI) -> None:
        """The outermost layer: call after every other middleware is added."""
        app.add_middleware(FastReads, gateway=self)

    # ------------------------------------------------------------------ requests

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path, method = request.url.path, request.method
        if path == "/healthz":
            return await self.health()
        m = _COMMAND_RE.match(path)
        if m and method == "GET":
            return await self.command_status(request, int(m.group(1)))
        if method == "HEAD" or not self._is_forwarded(method, path):
            return await call_next(request)
        viewer = self._viewer(request)
        if method == "GET":
            if path == "/api/v1/risk/stream":
                return await self.risk_stream(request, viewer)
            return await self.read(request, viewer)
        return await self.write(request, viewer)

    def _viewer(self, request: Request) -> int | None:
        """The caller's user id, 0 when anonymous, None when the token is not valid (the
        platform answers such a request itself, uncached)."""
        auth = request.headers.get("authorization", "")
        raw = auth[7:] if auth.lower().startswith("bearer ") else request.cookies.get(COOKIE)
        return self.viewer_of(raw)

    def viewer_of(self, raw: str | None) -> int | None:
        """`decode_token`, remembered until the token's `exp`: the same token decodes to the
        same user until then (a token the check refuses is not remembered)."""
        if not raw:
            return 0
        hit = self._tokens.get(raw)
        if hit is not None and time.time() < hit[1]:
            return hit[0]
        try:
            user_id = decode_token(raw, self.secret)
        except Unauthorized:
            return None
        exp = _token_exp(raw)
        if exp is not None:
            if len(self._tokens) >= CACHE_TOKENS:
                self._tokens.clear()
            self._tokens[raw] = (user_id, exp)
        return user_id

    def cacheable(self, method: str, path: str) -> bool:
        """A GET the read models answer (what `dispatch` sends to `read` with caching)."""
        return (
            method == "GET" and path != "/healthz" and path != "/api/v1/risk/stream"
            and path not in UNCACHED and _COMMAND_RE.match(path) is None
            and self._is_forwarded(method, path)
        )  # fmt: skip

    def served(self, viewer: int, key: str) -> None:
        """Note a view served from the read models (reported every `TOUCH_EVERY_S`)."""
        self._served.add((viewer, key))
        if self._toucher is None or self._toucher.done():
            self._toucher = asyncio.create_task(self._touch_later())

    async def _touch_later(self) -> None:
        await asyncio.sleep(TOUCH_EVERY_S)
        keys, self._served = list(self._served), set()
        try:
            await asyncio.to_thread(self.queue.touch, keys, now_ms())
        except Exception:  # an older schema or a busy database: the next batch tries again
            log.warning("could not report the views served", exc_info=True)
            self._served.update(keys)

    async def cached_doc(self, viewer: int, key: str) -> _Cached | None:
        """The stored view for (viewer, key) from this worker's cache when nothing was
        committed since it was seen current, else from the table; None when not rendered yet."""
        version = self.queue.data_version()
        if version is None:  # PostgreSQL: the row each time
            doc = await asyncio.to_thread(self.queue.doc, viewer, key)
            return None if doc is None else _cached(doc, 0)
        hit = self._docs.get((viewer, key))
        if hit is not None and hit.version == version:
            return hit
        if hit is not None and self.queue.doc_seq(viewer, key) == hit.seq:
            hit.version = version
            return hit
        doc = self.queue.doc_fast(viewer, key)
        if doc is None:
            self._docs.pop((viewer, key), None)
            return None
        entry = _cached(doc, version)
        if len(self._docs) >= CACHE_DOCS and (viewer, key) not in self._docs:
            self._docs.pop(next(iter(self._docs)))
        self._docs[(viewer, key)] = entry
        return entry

    @staticmethod
    def _payload(request: Request, body: bytes) -> dict[str, Any]:
        from crowdleverage.api.logs import request_id

        rid = request_id.get()
        headers = [[k, v] for k, v in request.headers.items() if k != "x-request-id"]
        if rid is not None:
            headers.append(["x-request-id", rid])
        return {
            "method": request.method, "path": request.url.path,
            "query": request.url.query, "headers": headers, "body_hex": body.hex(),
            "client": request.client.host if request.client else "?",
        }  # fmt: skip

    @staticmethod
    def view_key(request: Request) -> str:
        key = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if not request.url.path.startswith("/api/"):
            key += f"|lang={request.cookies.get('lang', '')[:8]}"
        return key

    async def read(self, request: Request, viewer: int | None) -> Response:
        key = self.view_key(request)
        cache = viewer is not None and len(key) <= 600 and request.url.path not in UNCACHED
        if cache:
            assert viewer is not None
            doc = await asyncio.to_thread(self.queue.doc, viewer, key)
            if doc is not None:
                self.served(viewer, key)
                return self._doc_response(doc)
        payload = {**self._payload(request, b""), "view": key, "cache": cache}
        row_id, _ = await asyncio.to_thread(
            self.queue.enqueue, owner_id=viewer or 0, key=None, kind="read", payload=payload,
            req_hash="read",
        )  # fmt: skip
        row = await self._wait(row_id)
        if row is None:
            return _typed(503, "platform_unavailable",
                          "the platform process is not answering; retry shortly",
                          retry_after_s=1)  # fmt: skip
        return self._row_response(row, replayed=False)

    async def write(self, request: Request, viewer: int | None) -> Response:
        body = await request.body()
        given = request.headers.get("idempotency-key")
        key = given if given is not None and _KEY_RE.match(given) else None
        h = request_hash(request.method, request.url.path, request.url.query, body)
        row_id, replayed = await asyncio.to_thread(
            self.queue.enqueue, owner_id=viewer or 0, key=key, kind="write",
            payload=self._payload(request, body), req_hash=h,
        )  # fmt: skip
        row = await self._wait(row_id)
        if row is None:
            return _json(
                202,
                {"command_id": row_id, "state": "queued",
                 "message": "the platform has not run this command yet; it is queued and runs"
                 " when the platform is back. Send it again with the same Idempotency-Key, or"
                 f" GET /api/v1/commands/{row_id}, for its result"},
                {"Retry-After": "1", "Location": f"/api/v1/commands/{row_id}"},
            )  # fmt: skip
        return self._row_response(row, replayed=replayed)

    async def command_status(self, request: Request, row_id: int) -> Response:
        viewer = self._viewer(request)
        if not viewer:
            raise Unauthorized("not authenticated: send 'Authorization: Bearer <token>'")
        row = await asyncio.to_thread(self.queue.get, row_id)
        if row is None or row.owner_id != viewer or row.kind != "write":
            return _typed(404, "not_found", f"command {row_id} not found")
        out: dict[str, Any] = {"command_id": row.id, "state": row.state}
        if row.state in ("done", "failed") and row.result is not None:
            out["status_code"] = row.status_code
            text = row.result.get("body", "")
            try:
                out["response"] = json.loads(text) if text else None
            except ValueError:
                out["response"] = text
        return _json(200, out)

    async def health(self) -> Response:
        info = await asyncio.to_thread(self.queue.writer_info)
        counts = await asyncio.to_thread(self.queue.counts)
        alive = (
            info is not None and info["ready"] and now_ms() - info["heartbeat_ms"] < WRITER_STALE_MS
        )
        return _json(200, {"api": "ok", "pid": os.getpid(), "writer_alive": alive,
                           "writer": info, "queue": counts})  # fmt: skip

    async def risk_stream(self, request: Request, viewer: int | None) -> Response:
        """The risk panel's server-sent events, from the risk summary's read model."""
        try:
            max_events = int(request.query_params.get("max_events", "0"))
            interval_s = float(request.query_params.get("interval_s", "1.0"))
        except ValueError:
            return _typed(422, "invalid_input", "max_events and interval_s are numbers")
        if not (0 <= max_events <= 10_000 and 0.2 <= interval_s <= 30.0):
            return _typed(422, "invalid_input", "max_events 0–10000, interval_s 0.2–30")
        summary = Request({**request.scope, "path": "/api/v1/risk/summary", "query_string": b""})
        first = await self.read(summary, viewer)
        if first.status_code != 200:
            return first

        async def gen() -> AsyncIterator[str]:
            sent, resp = 0, first
            while not await request.is_disconnected():
                yield f"event: risk\ndata: {bytes(resp.body).decode()}\n\n"
                sent += 1
                if max_events and sent >= max_events:
                    return
                await asyncio.sleep(interval_s)
                resp = await self.read(summary, viewer)

        return StreamingResponse(
            gen(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    # ------------------------------------------------------------------ waiting

    async def _wait(self, row_id: int) -> Row | None:
        fut: asyncio.Future[Row] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(row_id, []).append(fut)
        self._new_waiter = True  # its row may be finished already (a replayed key)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.wait_s)
        except TimeoutError:
            waiting = self._waiters.get(row_id, [])
            if fut in waiting:
                waiting.remove(fut)
            if not waiting:
                self._waiters.pop(row_id, None)
            return None

    async def _poll(self) -> None:
        """Wake the requests this worker waits on when their rows are finished. On SQLite:
        `PRAGMA data_version` every 2 ms; after a commit (or a new waiter, or 0.5 s) one
        indexed query on this worker's own connection, and the rows are read only when some
        are finished. On PostgreSQL one query every few milliseconds."""
        delay = 0.002
        seen: int | None = None
        last = 0.0
        while self._waiters:
            version: int | None = None
            done: dict[int, Row] = {}
            try:
                version = self.queue.data_version()
                if version is not None:
                    now = time.monotonic()
                    if version != seen or self._new_waiter or now - last >= 0.5:
                        seen, last, self._new_waiter = version, now, False
                        ready = self.queue.finished_ids(list(self._waiters))
                        if ready:  # a few indexed rows on this worker's own connection
                            done = self.queue.results(ready)
                else:
                    done = await asyncio.to_thread(self.queue.results, list(self._waiters))
            except Exception:  # the database is restarting: keep waiting
                log.warning("waiting for results: database unavailable", exc_info=True)
                seen = None
                await asyncio.sleep(0.2)
            for row_id, row in done.items():
                for fut in self._waiters.pop(row_id, []):
                    if not fut.done():
                        fut.set_result(row)
            if version is not None:
                await asyncio.sleep(0.002)
                continue
            delay = 0.002 if done else min(delay * 1.5, 0.02)
            await asyncio.sleep(delay)

    # ------------------------------------------------------------------ responses

    @staticmethod
    def _doc_response(doc: Doc) -> Response:
        resp = Response(content=doc.body, status_code=doc.status_code)
        for k, v in doc.headers:
            resp.headers.append(k, v)
        resp.headers["X-Read-Model-Seq"] = str(doc.seq)
        return resp

    @staticmethod
    def _row_response(row: Row, *, replayed: bool) -> Response:
        result = row.result or {}
        status = int(row.status_code or 503)
        if status == 500:
            return _typed(503, "platform_error", "internal error; retry later")
        body = result["body"].encode() if "body" in result else bytes.fromhex(result["body_hex"])
        resp = Response(content=body, status_code=status)
        for k, v in result.get("headers", []):
            if k.lower() not in ("content-length",):
                resp.headers.append(k, v)
        if replayed and "idempotent-replayed" not in resp.headers:
            resp.headers["Idempotent-Replayed"] = "true"
        return resp


def _token_exp(raw: str) -> int | None:
    """The `exp` claim of a token `decode_token` accepted (its signature is checked)."""
    import jwt

    try:
        exp = jwt.decode(raw, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return exp if isinstance(exp, int) and not isinstance(exp, bool) else None


def _cached(doc: Doc, version: int) -> _Cached:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in doc.headers
               if k.lower() not in ("content-length", "x-read-model-seq")]  # fmt: skip
    headers.append((b"content-length", str(len(doc.body)).encode()))
    headers.append((b"x-read-model-seq", str(doc.seq).encode()))
    return _Cached(version, doc.seq, doc.status_code, headers, doc.body)


class FastReads:
    """The outermost ASGI layer of an API worker: a GET of a platform view whose read model
    this viewer has is answered here, from the stored bytes, with its request id — no
    middleware, routing or validation on the way; a write to a platform endpoint (a command)
    is queued and answered here as the application's middleware would (`_write`). Everything
    else (views not rendered yet, bad tokens, local endpoints, OPTIONS, HEAD) goes on to the
    application unchanged."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _FAST_METHODS:
            await self.app(scope, receive, send)
            return
        gw = self.gw
        if not gw._forwarded:
            app = scope.get("app")
            if app is None:
                await self.app(scope, receive, send)
                return
            gw._classify(app)
        if scope["method"] != "GET":
            if gw._is_forwarded(scope["method"], scope["path"]):
                await self._write(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not gw.cacheable("GET", path):
            await self.app(scope, receive, send)
            return
        auth = cookie = rid = ""
        for k, v in scope["headers"]:  # the first of each, as Request.headers.get
            if k == b"authorization" and not auth:
                auth = v.decode("latin-1")
            elif k == b"cookie" and not cookie:
                cookie = v.decode("latin-1")
            elif k == b"x-request-id" and not rid:
                rid = v.decode("latin-1")
        cookies = cookie_parser(cookie) if cookie else {}
        raw = auth[7:] if auth.lower().startswith("bearer ") else cookies.get(COOKIE)
        viewer = gw.viewer_of(raw)
        try:
            query = scope.get("query_string", b"").decode()  # as starlette's URL
        except UnicodeDecodeError:
            query, viewer = "", None  # not a key of ours: the application decides
        key = path + (f"?{query}" if query else "")
        if not path.startswith("/api/"):
            key += f"|lang={cookies.get('lang', '')[:8]}"
        if viewer is None or len(key) > 600:
            await self.app(scope, receive, send)
            return
        try:
            doc = await gw.cached_doc(viewer, key)
        except Exception:  # the database is busy or restarting: the slow path decides
            log.warning("fast read failed; through the application", exc_info=True)
            doc = None
        if doc is None:
            await self.app(scope, receive, send)
            return
        gw.served(viewer, key)
        rid = rid if _RID_RE.match(rid) else uuid.uuid4().hex
        headers = [*doc.headers, (b"x-request-id", rid.encode())]
        await send({"type": "http.response.start", "status": doc.status, "headers": headers})
        await send({"type": "http.response.body", "body": doc.body})

    async def _write(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A command (a write to a platform endpoint): what the application's middleware
        would do with it — the request id (`api.app`'s `_request_id`: the client's if
        well-formed, in the log lines and the response), then `Gateway.write` (queued, its
        answer awaited; a typed error answered as `_gateway` answers it) — without the
        per-request tasks and streams of Starlette's `BaseHTTPMiddleware` (three layers of
        them cost an API worker more CPU than the command's own work). An unexpected error
        answers as the application's handler (`_unexpected`) does."""
        from crowdleverage.api import logs
        from crowdleverage.api.app import _error_response

        request = Request(scope, receive)
        given = request.headers.get("x-request-id", "")
        rid = given if _RID_RE.match(given) else uuid.uuid4().hex
        token = logs.request_id.set(rid)
        try:
            try:
                resp = await self.gw.write(request, self.gw._viewer(request))
            except CrowdLevError as err:
                resp = _error_response(err)
            except ClientDisconnect:
                return  # the client left before its body arrived: nothing was queued
            except Exception:
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                await JSONResponse(
                    {"error": "internal_error", "message": "internal error; retry later",
                     "details": {}}, status_code=500,
                )(scope, receive, send)  # fmt: skip
                return
            resp.headers["X-Request-ID"] = rid
        finally:
            logs.request_id.reset(token)
        await resp(scope, receive, send)
