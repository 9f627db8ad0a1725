"""The in-app notification centre, per-user notification preferences, and the demo's captured
mails (logic in `reports.notify`, `reports.mailsink`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from crowdleverage.api.deps import ApiState, current_user, state
from crowdleverage.api.security import Role, User
from crowdleverage.reports.mailsink import captured
from crowdleverage.reports.notify import KINDS, Prefs
from crowdleverage.reports.wiring import mail_dir, notifier_of

router = APIRouter(tags=["notifications"])


class PrefsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lang: str = Field("zh", pattern="^(zh|en)$")
    email: str | None = Field(None, max_length=254)
    in_app: list[str] = Field(default_factory=lambda: list(KINDS), max_length=len(KINDS))
    by_email: list[str] = Field(default_factory=lambda: list(KINDS), max_length=len(KINDS))


class ReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[int, Field(strict=True, ge=1, le=2**63 - 1)]] | None = Field(
        None, max_length=1000, description="none: all"
    )


@router.get("/notifications", response_model=dict[str, Any])
def list_notifications(
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0, le=10**9),
    lang: str | None = Query(None, pattern="^(zh|en)$"),
    user: User = Depends(current_user),
    st: ApiState = Depends(state),
) -> dict[str, Any]:
    """The caller's notifications, newest first, in the caller's language (preferences;
    `lang` overrides)."""
    n = notifier_of(st)
    use = lang or n.prefs(user.id).lang
    items, total, unread = n.page(user.id, limit=limit, offset=offset, lang=use)
    return {"items": items, "total": total, "unread": unread, "limit": limit, "offset": offset}


@router.post("/notifications/read", response_model=dict[str, int])
def mark_read(
    body: ReadIn, user: User = Depends(current_user), st: ApiState = Depends(state)
) -> dict[str, int]:
    return {"marked": notifier_of(st).mark_read(user.id, body.ids)}


@router.get("/notifications/preferences", response_model=dict[str, Any])
def get_prefs(user: User = Depends(current_user), st: ApiState = Depends(state)) -> dict[str, Any]:
    return notifier_of(st).prefs(user.id).as_dict()


@router.put("/notifications/preferences", response_model=dict[str, Any])
def put_prefs(
    body: PrefsIn, user: User = Depends(current_user), st: ApiState = Depends(state)
) -> dict[str, Any]:
    """Language (zh, en), mail address, and which kinds go in-app and by mail."""
    p = Prefs(user.id, body.lang, body.email, tuple(body.in_app), tuple(body.by_email))
    out = notifier_of(st).set_prefs(p).as_dict()
    st.audit.append(user.username, "notification_prefs", {"lang": body.lang})
    return out


@router.get("/mails", response_model=dict[str, Any])
def mails(
    limit: int = Query(50, ge=1, le=200),
    user: User = Depends(current_user),
    st: ApiState = Depends(state),
) -> dict[str, Any]:
    """The demo's SMTP sink: the operator sees every captured mail, a user those sent to
    their address."""
    to = None if user.role is Role.OPERATOR else (notifier_of(st).prefs(user.id).email or "-")
    return {"items": captured(mail_dir(st.settings.data_dir), to=to, limit=limit)}
