"""Operator views: account drill-down, pause/resume with a reason (audited), the waiting
liquidations and the end-of-day report (logic in `reports.operator`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from crowdleverage.api.deps import AccountIdPath, ApiState, require, state
from crowdleverage.api.security import Role, User
from crowdleverage.reports import operator as O
from crowdleverage.reports.wiring import notifier_of

router = APIRouter(tags=["operator, risk, audit"])
STAFF = (Role.OPERATOR, Role.AUDITOR)


class ControlIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["pause", "resume"]
    reason: Annotated[str, Field(min_length=3, max_length=200)]


def control(st: ApiState, user: User, action: str, reason: str) -> dict[str, Any]:
    """Pause or resume the platform; the reason goes into the signed audit log."""
    p = st.platform
    if action == "pause":
        p.pause(reason)
    else:
        p.resume()
    st.audit.append(user.username, action, {"reason": reason})
    return {"paused": p.paused_reason is not None, "paused_reason": p.paused_reason,
            "action": action, "reason": reason}  # fmt: skip


@router.post("/operator/control", response_model=dict[str, Any])
def pause_resume(
    body: ControlIn, user: User = Depends(require(Role.OPERATOR)), st: ApiState = Depends(state)
) -> dict[str, Any]:
    """Pause or resume with a reason (both recorded in the signed audit log)."""
    return control(st, user, body.action, body.reason)


@router.get("/operator/accounts/{account_id}", response_model=dict[str, Any])
def drilldown(
    account_id: AccountIdPath,
    _: User = Depends(require(*STAFF)),
    st: ApiState = Depends(state),
) -> dict[str, Any]:
    """One margin account: engine figures, positions, orders, the owner's lines, events."""
    return O.account_drilldown(st.platform, account_id)


@router.get("/operator/liquidations/waiting", response_model=dict[str, Any])
def waiting(_: User = Depends(require(*STAFF)), st: ApiState = Depends(state)) -> dict[str, Any]:
    """Liquidation sells that cannot fill now: what, why (halted, sealed, T+1), since when."""
    return {"items": O.stuck_liquidations(st.platform, notifier_of(st))}


@router.get("/operator/end-of-day-report", response_model=dict[str, Any])
def eod_report(
    trade_date: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$"),
    _: User = Depends(require(*STAFF)),
    st: ApiState = Depends(state),
) -> dict[str, Any]:
    """A trading day's report (default: the current trade date)."""
    return O.end_of_day_report(st.platform, notifier_of(st), trade_date)
