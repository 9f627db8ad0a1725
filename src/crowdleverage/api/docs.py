"""The API's interactive documentation served without a CDN: /docs (Swagger UI) and /redoc
(ReDoc) load their JavaScript and CSS from the `fastapi-offline` package's shipped assets,
mounted at /static-docs (FastAPI's documented self-hosting recipe: `docs_url=None`,
`redoc_url=None` and `get_swagger_ui_html`/`get_redoc_html` pointing at static files)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_STATIC = "/static-docs"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def assets_dir() -> str:
    """The folder of Swagger UI's and ReDoc's dist files inside the installed package."""
    return str(files("fastapi_offline") / "static")


def mount_docs(app: FastAPI) -> None:
    """/docs, its OAuth2 redirect and /redoc on an app created with docs_url=None and
    redoc_url=None; every asset URL is local (under the request's root path)."""
    app.mount(DOCS_STATIC, StaticFiles(directory=assets_dir()), name="static-docs")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT}",
            swagger_js_url=f"{root}{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
        )

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_STATIC}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
            with_google_fonts=False,
        )
