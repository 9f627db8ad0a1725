"""Pages of issue 16 items 3, 4, 7, 8: statements and confirmations, the notification centre
and preferences, the demo mailbox, third-party audit attestations (verified in the browser),
and the operator's drill-down, waiting liquidations, pause/resume and end-of-day report.
Thin: the figures come from `reports.*`, as the API's."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from crowdleverage.api.deps import ApiState, optional_user, state
from crowdleverage.api.endpoints.operator_views import control
from crowdleverage.api.security import Role, User
from crowdleverage.domain.errors import CrowdLevError
from crowdleverage.reports import operator as O
from crowdleverage.reports import statements as R
from crowdleverage.reports.mailsink import captured
from crowdleverage.reports.notify import KINDS, Prefs
from crowdleverage.reports.wiring import attestations_of, mail_dir, notifier_of
from crowdleverage.web.i18n_reports import kind_label
from crowdleverage.web.pages import render

router = APIRouter(include_in_schema=False)
HOLDERS = (Role.INVESTOR, Role.BORROWER)
STAFF = (Role.OPERATOR, Role.AUDITOR)


def _gate(request: Request, user: User | None, roles: tuple[Role, ...]) -> Response | None:
    if user is None:
        return RedirectResponse("/login", status_code=303)
    if user.role not in roles:
        resp = render(request, "forbidden.html", user)
        resp.status_code = 403
        return resp
    return None


def _error_page(request: Request, user: User | None, name: str, err: CrowdLevError,
                **ctx: Any) -> Response:  # fmt: skip
    resp = render(request, name, user, error=err.message, **ctx)
    resp.status_code = err.http_status
    return resp


@router.get("/statements")
def statements_page(
    request: Request, user: User | None = Depends(optional_user), st: ApiState = Depends(state)
) -> Response:
    if (gate := _gate(request, user, HOLDERS)) is not None:
        return gate
    assert user is not None
    q = request.query_params
    p = st.platform
    today = p.market.today
    month = q.get("month") or ("" if q.get("start") else today.strftime("%Y-%m"))
    ctx: dict[str, Any] = {"month": month, "start": q.get("start", ""), "end": q.get("end", ""),
                           "kind_label": kind_label}  # fmt: skip
    try:
        period = R.Period.of(ctx["start"] or None, ctx["end"] or None, month or None)
    except CrowdLevError as err:
        return _error_page(request, user, "statements.html", err, stm=None, confs=[], **ctx)
    stm = R.build_statement(p, user.id, user.username, period)
    confs = R.confirmations(p, user.id)[:100]
    query = f"month={month}" if month else f"start={ctx['start']}&end={ctx['end']}"
    return render(request, "statements.html", user, stm=stm, confs=confs, query=query,
                  effect=R.wallet_effect_fen, error=None, **ctx)  # fmt: skip


@router.get("/notifications")
def notifications_page(
    request: Request, user: User | None = Depends(optional_user), st: ApiState = Depends(state)
) -> Response:
    if user is None:
        return RedirectResponse("/login", status_code=303)
    n = notifier_of(st)
    prefs = n.prefs(user.id)
    lang = request.query_params.get("lang") or request.cookies.get("lang") or "zh"
    items, total, unread = n.page(user.id, limit=100, lang="en" if lang == "en" else "zh")
    return render(request, "notifications.html", user, items=items, total=total,
                  unread=unread, prefs=prefs, kinds=KINDS, error=None)  # fmt: skip


@router.post("/notifications")
async def notifications_save(
    request: Request, user: User | None = Depends(optional_user), st: ApiState = Depends(state)
) -> Response:
    if user is None:
        return RedirectResponse("/login", status_code=303)
    form = await request.form()
    n = notifier_of(st)
    if form.get("action") == "read":
        n.mark_read(user.id, None)
        return RedirectResponse("/notifications", status_code=303)
    email = str(form.get("email") or "").strip() or None
    prefs = Prefs(user.id, str(form.get("lang") or "zh"), email,
                  tuple(k for k in KINDS if form.get(f"in_app_{k}")),
                  tuple(k for k in KINDS if form.get(f"email_{k}")))  # fmt: skip
    try:
        n.set_prefs(prefs)
    except CrowdLevError as err:
        items, total, unread = n.page(user.id, limit=100)
        return _error_page(request, user, "notifications.html", err, items=items,
                           total=total, unread=unread, prefs=prefs, kinds=KINDS)  # fmt: skip
    st.audit.append(user.username, "notification_prefs", {"lang": prefs.lang})
    return RedirectResponse("/notifications", status_code=303)


@router.get("/mails")
def mails_page(
    request: Request, user: User | None = Depends(optional_user), st: ApiState = Depends(state)
) -> Response:
    if user is None:
        return RedirectResponse("/login", status_code=303)
    to = None if user.role is Role.OPERATOR else (notifier_of(st).prefs(user.id).email or "-")
    mails = captured(mail_dir(st.settings.data_dir), to=to, limit=100)
    return render(request, "mails.html", user, mails=mails)


@router.get("/attestations")
def attestations_page(
    request: Request, user: User | None = Depends(optional_user), st: ApiState = Depends(state)
) -> Response:
    items, _ = attestations_of(st).page(50, 0)
    for a in items:
        a["facts"] = json.loads(a["body"])
    today = st.platform.market.today
    return render(request, "attestations.html", user, items=items, error=None,
                  trusted=attestations_of(st).trusted_key(),
                  default_start=today.replace(day=1).isoformat(),
                  default_end=today.isoformat())  # fmt: skip


@router.post("/attestations")
def attestations_create(
    request: Request,
    period_start: str = Form(..., max_length=10),
    period_end: str = Form(..., max_length=10),
    user: User | None = Depends(optional_user),
    st: ApiState = Depends(state),
) -> Response:
    if (gate := _gate(request, user, (Role.AUDITOR,))) is not None:
        return gate
    assert user is not None
    try:
        att = attestations_of(st).create(st.platform, period_start, period_end, user.username)
    except CrowdLevError as err:
        items, _ = attestations_of(st).page(50, 0)
        for a in items:
            a["facts"] = json.loads(a["body"])
        return _error_page(request, user, "attestations.html", err, items=items,
                           trusted=attestations_of(st).trusted_key(),
                           default_start=period_start, default_end=period_end)  # fmt: skip
    st.audit.append(user.username, "attestation", {"id": att["id"], "period_end": period_end})
    return RedirectResponse("/attestations", status_code=303)


@router.get("/operator")
def operator_page(
    request: Request, user: User | None = Depends(optional_user), st: ApiState = Depends(state)
) -> Response:
    if (gate := _gate(request, user, STAFF)) is not None:
        return gate
    p = st.platform
    day = request.query_params.get("date") or None
    try:
        if day is not None:
            dt.date.fromisoformat(day)
    except ValueError:
        day = None
    notifier = notifier_of(st)
    with p.lock:
        accounts = p.risk_snapshot()["accounts"]
    return render(request, "operator.html", user, accounts=accounts,
                  stuck=O.stuck_liquidations(p, notifier),
                  eod=O.end_of_day_report(p, notifier, day),
                  paused_reason=p.paused_reason, error=None)  # fmt: skip


@router.post("/operator/control")
def operator_control(
    request: Request,
    action: str = Form(..., pattern="^(pause|resume)$"),
    reason: str = Form(..., min_length=3, max_length=200),
    user: User | None = Depends(optional_user),
    st: ApiState = Depends(state),
) -> Response:
    if (gate := _gate(request, user, (Role.OPERATOR,))) is not None:
        return gate
    assert user is not None
    control(st, user, action, reason)
    return RedirectResponse("/operator", status_code=303)


@router.get("/operator/accounts/{account_id}")
def drilldown_page(
    account_id: int,
    request: Request,
    user: User | None = Depends(optional_user),
    st: ApiState = Depends(state),
) -> Response:
    if (gate := _gate(request, user, STAFF)) is not None:
        return gate
    try:
        d = O.account_drilldown(st.platform, account_id)
    except CrowdLevError as err:
        resp = render(request, "forbidden.html", user)
        resp.status_code = err.http_status
        return resp
    return render(request, "drilldown.html", user, d=d, kind_label=kind_label)
