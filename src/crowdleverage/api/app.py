"""The FastAPI application: `create_app(settings)` wires the platform, the API's tables and
the routers; one handler maps every typed error to its status and {"error","message","details"}.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from crowdleverage.api import logs, store
from crowdleverage.api.auditlog import AuditLog
from crowdleverage.api.deps import ApiState
from crowdleverage.api.docs import mount_docs
from crowdleverage.api.endpoints import (
    attestations,
    auth,
    margin,
    money,
    notifications,
    onboarding,
    operator,
    operator_views,
    statements,
)
from crowdleverage.api.security import UserStore, jwt_secret
from crowdleverage.config import Settings
from crowdleverage.custody.db import engine_from_settings
from crowdleverage.domain.errors import CrowdLevError, RateLimited
from crowdleverage.flows.platform import Platform

API_PREFIX = "/api/v1"
log = logging.getLogger(__name__)
_RID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{8,64}$")
_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type",
}  # fmt: skip


def private_data_dir(data_dir: Path) -> None:
    """The data dir holds password hashes, keys and the ledger: the process creates its files
    0600 and its directories 0700 (umask 077), and tightens what an older release left."""
    os.umask(0o077)
    data_dir.mkdir(parents=True, exist_ok=True)
    for root, dirs, files in os.walk(data_dir):
        os.chmod(root, 0o700)
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o700)
        for f in files:
            path = os.path.join(root, f)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


def _error_response(err: CrowdLevError) -> JSONResponse:
    body = err.to_dict()
    body.setdefault("details", {})
    headers: dict[str, str] = {}
    if isinstance(err, RateLimited):
        headers["Retry-After"] = str(err.details.get("retry_after_s", 60))
    if err.http_status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=err.http_status, headers=headers)


def _validation_message(errors: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    out = []
    for e in errors:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        out.append({"field": loc, "reason": e.get("msg", "invalid")})
    first = out[0] if out else {"field": "?", "reason": "invalid"}
    return f"{first['field']}: {first['reason']}", out


def _route_table(app: FastAPI, routers: tuple[APIRouter, ...]) -> list[tuple[Any, set[str]]]:
    """(path regex, methods) of every route: the app's own and the API routers' (prefixed)."""
    table = []
    for route in app.router.routes:
        regex, methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and methods:
            table.append((regex, set(methods)))
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                regex, _fmt, _conv = compile_path(API_PREFIX + route.path)
                table.append((regex, set(route.methods or ())))
    return table


class _NoPlatform:
    """An API worker's stand-in for the platform (`service.gateway`): the worker never opens
    the chain; every endpoint that needs the platform runs in the platform process."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"dev: an API worker has no platform (Platform.{name})")


def create_app(
    settings: Settings,
    *,
    platform: Platform | None = None,
    engine: Engine | None = None,
    worker: bool = False,
) -> FastAPI:
    """The application. `worker`: an API worker of the split service (`crowdlev api`): no
    platform in this process; platform endpoints go through the command queue and the read
    models (`service.gateway`)."""
    private_data_dir(settings.data_dir)
    eng = engine if engine is not None else engine_from_settings(settings)
    store.create_schema(eng)
    plat: Any = (
        _NoPlatform() if worker
        else platform if platform is not None else Platform(settings, engine=eng)
    )  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if not worker:
            plat.save()  # a clean shutdown (SIGINT/SIGTERM) resumes where it stopped

    app = FastAPI(
        lifespan=lifespan,
        title="CrowdLeverage",
        version="0.1.0",
        description="Compliant pooled stock margin financing (众筹股票配资). Amounts in fen.",
        docs_url=None,  # served from the package's assets (api/docs.py), not a CDN
        redoc_url=None,
    )
    app.state.api = ApiState(
        settings=settings,
        engine=eng,
        users=UserStore(eng),
        platform=plat,
        audit=AuditLog(eng, settings.ensure_data_dir()),
        secret=jwt_secret(settings),
    )
    gateway = None
    if worker:  # innermost middleware: request ids and OPTIONS are handled before it
        from crowdleverage.service.gateway import Gateway

        gateway = Gateway(eng, app.state.api.secret)
        gateway.install(app)

    @app.exception_handler(CrowdLevError)
    async def _typed(_: Request, err: CrowdLevError) -> JSONResponse:
        return _error_response(err)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        message, fields = _validation_message(list(err.errors()))
        return JSONResponse(
            {"error": "invalid_input", "message": message, "details": {"fields": fields}},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (an unparsable or non-UTF-8 body, an unknown route, a wrong
        # method) in the same typed format as ours.
        code = _HTTP_CODES.get(err.status_code, "error")
        message = (
            "the request body is not valid UTF-8 JSON"
            if err.status_code == 400
            else str(err.detail)
        )
        return JSONResponse(
            {"error": code, "message": message, "details": {}},
            status_code=err.status_code,
            headers=dict(err.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        # Logged with its traceback; the client sees no class name, path or message of ours.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"error": "internal_error", "message": "internal error; retry later", "details": {}},
            status_code=500,
        )

    @app.middleware("http")
    async def _request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Every request gets an id (the client's `X-Request-ID` if well-formed): in the
        response header and in every log line written while serving it."""
        given = request.headers.get("x-request-id", "")
        rid = given if _RID_RE.match(given) else uuid.uuid4().hex
        token = logs.request_id.set(rid)
        try:
            response = await call_next(request)
        finally:
            logs.request_id.reset(token)
        response.headers["X-Request-ID"] = rid
        return response

    @app.middleware("http")
    async def _options(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """OPTIONS answers 204 with the methods the path really has (`Allow`)."""
        if request.method != "OPTIONS":
            return await call_next(request)
        methods: set[str] = set()
        for regex, route_methods in route_table:
            if regex.match(request.url.path):
                methods |= route_methods
        if not methods:
            return JSONResponse(
                {"error": "not_found", "message": "Not Found", "details": {}}, status_code=404
            )
        allow = ", ".join(sorted(methods | {"OPTIONS"}))
        return Response(status_code=204, headers={"Allow": allow})

    routers = (auth.router, money.router, margin.router, operator.router, onboarding.router,
               statements.router, notifications.router, attestations.router,
               operator_views.router)  # fmt: skip
    for r in routers:
        app.include_router(r, prefix=API_PREFIX)
    from crowdleverage.web.pages import mount as mount_web  # web imports api: import late
    from crowdleverage.web.pages_reports import router as report_pages

    app.include_router(report_pages)
    mount_web(app)
    mount_docs(app)
    route_table = _route_table(app, routers)
    if gateway is not None:  # outermost: stored views answered before any middleware
        gateway.install_fast_reads(app)
    return app
