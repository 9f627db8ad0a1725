"""Statements (对账单) and confirmations (确认书) of a wallet holder as JSON, CSV or PDF
(logic in `reports.statements`)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from crowdleverage.api.deps import ApiState, UserIdPath, current_user, state
from crowdleverage.api.endpoints.money import WALLET_STAFF, _holder
from crowdleverage.api.security import User
from crowdleverage.reports import statements as R

router = APIRouter(tags=["statements"])
Fmt = Literal["json", "csv", "pdf"]


def _lang(request: Request, lang: str | None) -> str:
    lang = lang or request.cookies.get("lang") or "zh"
    return lang if lang in ("zh", "en") else "zh"


def _file(body: bytes | str, fmt: str, name: str) -> Response:
    media = {"csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}[fmt]
    data = body.encode("utf-8-sig") if isinstance(body, str) else body  # BOM: Excel reads CJK
    return Response(
        data, media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )  # fmt: skip


@router.get("/users/{user_id}/statements", response_model=dict[str, Any])
def statement(
    request: Request,
    user_id: UserIdPath,
    month: str | None = Query(None, pattern=r"^\d{4}-\d{2}$", description="YYYY-MM"),
    start: str | None = Query(None, max_length=10, description="YYYY-MM-DD (inclusive)"),
    end: str | None = Query(None, max_length=10, description="YYYY-MM-DD (inclusive)"),
    format: Fmt = Query("json"),
    lang: str | None = Query(None, pattern="^(zh|en)$"),
    user: User = Depends(current_user),
    st: ApiState = Depends(state),
) -> Any:
    """A monthly (`month`) or custom-range (`start`, `end`; trade dates) statement: the
    lines, totals per kind, opening and closing wallet (and the custody ledger's balance when
    the period reaches today). `format=csv|pdf` downloads it."""
    target = _holder(user, user_id, st, staff=WALLET_STAFF)
    period = R.Period.of(start, end, month)
    stm = R.build_statement(st.platform, user_id, target.username, period)
    name = f"statement-{target.username}-{period.start}-{period.end}"
    if format == "csv":
        return _file(R.statement_csv(stm, _lang(request, lang)), "csv", name)
    if format == "pdf":
        return _file(R.statement_pdf(stm, _lang(request, lang)), "pdf", name)
    return stm.as_dict()


@router.get("/users/{user_id}/confirmations", response_model=dict[str, Any])
def confirmations(
    request: Request,
    user_id: UserIdPath,
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10**9),
    format: Literal["json", "csv"] = Query("json"),
    lang: str | None = Query(None, pattern="^(zh|en)$"),
    user: User = Depends(current_user),
    st: ApiState = Depends(state),
) -> Any:
    """Every confirmation (order, fill, deposit, withdrawal, top-up, liquidation, …), newest
    first; `format=csv` downloads all of them."""
    target = _holder(user, user_id, st, staff=WALLET_STAFF)
    items = R.confirmations(st.platform, user_id)
    if format == "csv":
        body = R.confirmations_csv(items, _lang(request, lang))
        return _file(body, "csv", f"confirmations-{target.username}")
    return {"items": items[offset : offset + limit], "total": len(items), "limit": limit,
            "offset": offset}  # fmt: skip


@router.get("/users/{user_id}/confirmations/{conf_id}", response_model=dict[str, Any])
def confirmation(
    request: Request,
    user_id: UserIdPath,
    conf_id: str,
    format: Fmt = Query("json"),
    lang: str | None = Query(None, pattern="^(zh|en)$"),
    user: User = Depends(current_user),
    st: ApiState = Depends(state),
) -> Any:
    """One confirmation (`L<n>` a statement line, `O<id>` an order) as JSON, CSV or PDF."""
    target = _holder(user, user_id, st, staff=WALLET_STAFF)
    c = R.confirmation(st.platform, user_id, conf_id)
    name = f"confirmation-{target.username}-{conf_id}"
    if format == "pdf":
        return _file(R.confirmation_pdf(c, target.username, _lang(request, lang)), "pdf", name)
    if format == "csv":
        return _file(R.confirmations_csv([c], _lang(request, lang)), "csv", name)
    return c
