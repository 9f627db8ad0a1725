"""Server-rendered dashboard: login, operator risk panel (live over server-sent events), public
transparency page, investor and borrower pages. Charts are drawn by plotly.js served from the
Python `plotly` package (no CDN: the platform must work offline)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from crowdleverage.api.deps import COOKIE, ApiState, optional_user, state
from crowdleverage.api.endpoints.operator import transparency
from crowdleverage.api.security import TOKEN_TTL_S, Role, User, issue_token
from crowdleverage.api.views import statement_line
from crowdleverage.domain.errors import CrowdLevError
from crowdleverage.domain.money import format_yuan
from crowdleverage.flows.platform import VIRTUAL_SHARES
from crowdleverage.web.i18n import LANGS, sh_time, translator, wan
from crowdleverage.web.margin import margin_view, stock_name

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters["yuan"] = lambda fen: format_yuan(int(fen))
templates.env.filters["pct"] = lambda bps: "—" if bps is None else f"{bps / 100:.2f}%"
templates.env.filters["nav"] = lambda e4: f"{e4 / 10_000:.4f}"
templates.env.filters["sh_time"] = sh_time
templates.env.filters["price"] = lambda fen: "—" if fen is None else format_yuan(int(fen))

router = APIRouter(include_in_schema=False)
STAFF_RISK = (Role.OPERATOR, Role.AUDITOR)


@functools.cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _lang(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get("lang") or "zh"
    return lang if lang in LANGS else "zh"


def render(request: Request, name: str, user: User | None, **ctx: Any) -> HTMLResponse:
    lang = _lang(request)
    t = translator(lang)
    resp = templates.TemplateResponse(
        request,
        name,
        {
            "user": user,
            "lang": lang,
            "t": t,
            "te": t.enum,
            "wan": lambda fen: "—" if fen is None else wan(int(fen), lang),
            "sname": lambda code: stock_name(code, lang),
            # a catalogued label if there is one, else the value itself (e.g. "PD 12.7%")
            "tr_or": lambda ns, v: t(f"{ns}{v}") if t.has(f"{ns}{v}") else str(v),
            **ctx,
        },
    )
    if request.query_params.get("lang") in LANGS:
        resp.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax")
    return resp


def _home_for(user: User) -> str:
    if user.role in STAFF_RISK:
        return "/risk"
    if user.role in (Role.INVESTOR, Role.BORROWER):
        return "/me"
    return "/transparency"


@router.get("/static/plotly.min.js")
def plotly_js() -> Response:
    return Response(
        _plotly_js(),
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, user: User | None = Depends(optional_user)) -> Response:
    if user is not None:
        return RedirectResponse(_home_for(user), status_code=303)
    return RedirectResponse("/transparency", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, user: User | None = Depends(optional_user)) -> Response:
    return render(request, "login.html", user, error=None)


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    username: str = Form(...),
    password: str = Form(...),
    st: ApiState = Depends(state),
) -> Response:
    client = request.client.host if request.client else "?"
    try:
        user = st.users.authenticate(username, password, client)
    except CrowdLevError as err:
        page = render(
            request,
            "login.html",
            None,
            error=translator(_lang(request)).error(err.code, err.message),
        )
        page.status_code = err.http_status
        return page
    resp = RedirectResponse(_home_for(user), status_code=303)
    resp.set_cookie(
        COOKIE,
        issue_token(user, st.secret),
        max_age=TOKEN_TTL_S,
        httponly=True,
        samesite="strict",
    )
    return resp


@router.get("/logout")
def logout() -> Response:
    resp = RedirectResponse("/transparency", status_code=303)
    resp.delete_cookie(COOKIE)
    return resp


@router.get("/risk", response_class=HTMLResponse)
def risk_page(
    request: Request, user: User | None = Depends(optional_user), st: ApiState = Depends(state)
) -> Response:
    if user is None:
        return RedirectResponse("/login", status_code=303)
    if user.role not in STAFF_RISK:
        resp = render(request, "forbidden.html", user)
        resp.status_code = 403
        return resp
    snap = st.platform.risk_snapshot()
    lang = _lang(request)
    with st.platform.lock:
        names = {c: stock_name(c, lang) for c in st.platform.codes}
    return render(request, "risk.html", user, snap=snap, names=names)


@router.get("/transparency", response_class=HTMLResponse)
def transparency_page(
    request: Request, user: User | None = Depends(optional_user), st: ApiState = Depends(state)
) -> Response:
    from crowdleverage.reports.wiring import attestations_of

    data = transparency(st.platform)
    tranches = [t.model_dump(mode="json") for t in data["tranches"]]
    tiers = [t.model_dump() for t in data["tiers"]]
    attestations, _total = attestations_of(st).page(5, 0)  # the newest, verified in the browser
    return render(request, "transparency.html", user, d=data, tranches=tranches, tiers=tiers,
                  attestations=attestations)  # fmt: skip


@router.get("/me", response_class=HTMLResponse)
def me_page(
    request: Request, user: User | None = Depends(optional_user), st: ApiState = Depends(state)
) -> Response:
    if user is None:
        return RedirectResponse("/login", status_code=303)
    if user.role not in (Role.INVESTOR, Role.BORROWER):
        return RedirectResponse(_home_for(user), status_code=303)
    p = st.platform
    with p.lock:
        wallet = p.wallet_fen(user.id)
        raw_lines = list(reversed(p.history.get(user.id, [])))
        lines = [statement_line(x).model_dump() for x in raw_lines]
        # a security with no bar today (suspended, or past its last bar): halted at its
        # last close (Platform.quote), never a NotFound for the whole page
        live = {c: p.quote(c) for c in p.codes}
        quotes = {c: q.price_fen for c, q in live.items()}
        halted = {c: q.price_fen for c, q in live.items() if q.halted}
        today = p.market.today.isoformat()
        ctx: dict[str, Any] = {}
        if user.role is Role.BORROWER:
            accs = [a for a in p.accounts.values() if a.owner_id == user.id]
            ctx["margin"] = [margin_view(p, a) for a in accs]
            ctx["margin_json"] = [m.to_json() for m in ctx["margin"]]
        else:
            ctx["investor"] = _investor_view(p, user.id, raw_lines)
    return render(
        request,
        "me.html",
        user,
        onboarding=_onboarding_view(st, user),
        wallet=wallet,
        lines=lines[:50],
        quotes=quotes,
        halted=halted,
        today=today,
        investor_scale=UNIT_SCALE,
        **ctx,
    )


UNIT_SCALE = VIRTUAL_SHARES * 100  # raw pool units per displayed 份 (1 份 = 1 元 at NAV 1)


def _investor_view(p: Any, user_id: int, raw_lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Units at NAV, income (value + paid out − paid in) and the value/NAV history per
    tranche, the queued requests (Platform.holdings)."""
    h = p.holdings(user_id)
    tranches = []
    for row in h["holdings"]:
        t = row["tranche"]
        hist = p.nav_history(t)
        mine = [x for x in reversed(raw_lines) if x.get("tranche") == t.value]
        paid_in = sum(int(x.get("paid_fen", 0)) for x in mine if x["kind"] == "subscribed")
        paid_out = sum(int(x.get("paid_fen", 0)) for x in mine if x["kind"] == "redeemed")
        # units held at each trade date's close, from the executed lines
        points = []
        for date, nav_e4 in hist:
            units = sum(
                int(x.get("units", 0)) * (1 if x["kind"] == "subscribed" else -1)
                for x in mine
                if x["kind"] in ("subscribed", "redeemed") and x["trade_date"] <= date
            )
            net_in = sum(
                int(x.get("paid_fen", 0)) * (1 if x["kind"] == "subscribed" else -1)
                for x in mine
                if x["kind"] in ("subscribed", "redeemed") and x["trade_date"] <= date
            )
            value = units * nav_e4 // (VIRTUAL_SHARES * 10_000)
            points.append({"date": date, "nav_e4": nav_e4, "value_fen": value,
                           "income_fen": value - net_in if units else 0})  # fmt: skip
        tranches.append(
            {
                "tranche": t.value,
                "units_raw": row["units"],
                "units": row["units"] / UNIT_SCALE,
                "nav_e4": row["nav_e4"],
                "value_fen": row["value_fen"],
                "income_fen": row["value_fen"] + paid_out - paid_in if paid_in else 0,
                "history": points,
            }
        )
    queued = [
        {"tranche": q["tranche"].value, "kind": q["kind"], "amount": q["amount"],
         "units": q["amount"] / UNIT_SCALE}
        for q in h["queued"]
    ]  # fmt: skip
    return {"tranches": tranches, "queued": queued, "unit_scale": UNIT_SCALE}


def _onboarding_view(st: ApiState, user: User) -> dict[str, Any] | None:
    """The applicant's onboarding steps and reasons (compliance.onboarding), if any."""
    from crowdleverage.compliance.onboarding import applicant_view
    from crowdleverage.domain.errors import NotFound

    try:
        return applicant_view(st.onboarding().latest_for(str(user.id)))
    except NotFound:
        return None


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
