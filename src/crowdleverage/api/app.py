"""The FastAPI application: `create_app(settings)` wires the platform, the API's tables and
the routers; one handler maps every typed error to its status and {"error","message","details"}.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from crowdleverage.api import store
from crowdleverage.api.auditlog import AuditLog
from crowdleverage.api.deps import ApiState
from crowdleverage.api.endpoints import auth, margin, money, onboarding, operator
from crowdleverage.api.security import UserStore, jwt_secret
from crowdleverage.config import Settings
from crowdleverage.custody.db import engine_from_settings
from crowdleverage.domain.errors import CrowdLevError, RateLimited
from crowdleverage.flows.platform import Platform

API_PREFIX = "/api/v1"


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


def create_app(
    settings: Settings, *, platform: Platform | None = None, engine: Engine | None = None
) -> FastAPI:
    eng = engine if engine is not None else engine_from_settings(settings)
    store.create_schema(eng)
    plat = platform if platform is not None else Platform(settings, engine=eng)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        plat.save()  # a clean shutdown (SIGINT/SIGTERM) resumes where it stopped

    app = FastAPI(
        lifespan=lifespan,
        title="CrowdLeverage",
        version="0.1.0",
        description="Compliant pooled stock margin financing (众筹股票配资). Amounts in fen.",
    )
    app.state.api = ApiState(
        settings=settings,
        engine=eng,
        users=UserStore(eng),
        platform=plat,
        audit=AuditLog(eng, settings.ensure_data_dir()),
        secret=jwt_secret(settings),
    )

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

    for r in (auth.router, money.router, margin.router, operator.router, onboarding.router):
        app.include_router(r, prefix=API_PREFIX)
    from crowdleverage.web.pages import mount as mount_web  # web imports api: import late

    mount_web(app)
    return app
