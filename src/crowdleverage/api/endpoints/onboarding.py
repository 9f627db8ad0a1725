"""Onboarding through the one pipeline (`compliance.onboarding`): the applicant applies and
sees each step with its reasons; the compliance officer sees the queue, every detail, and
decides referrals with a written reason (audit log); the platform relays the identity writes
on chain after each decision; PSI of the credit model for the operator."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from crowdleverage.api.deps import ApiState, UserIdPath, require, state
from crowdleverage.api.security import Role, User
from crowdleverage.compliance.onboarding import Application, OnboardingService, applicant_view
from crowdleverage.credit.policy import Behaviour
from crowdleverage.domain.errors import Forbidden, NotFound

router = APIRouter(tags=["onboarding"])
Text = Annotated[str, Field(max_length=64)]
Fen = Annotated[int, Field(ge=0, le=10**15)]


class ApplicationIn(BaseModel):
    """Identity, bank card, questionnaire, financial facts and (borrowers) the credit model's
    inputs; every field is checked by the pipeline and all problems come back at once."""

    model_config = ConfigDict(extra="forbid")
    name: Text
    id_number: Text
    phone: Text
    bank_card: Text
    document_expiry: dt.date
    questionnaire: dict[Annotated[str, Field(max_length=32)], int]
    financial_assets_fen: Fen
    avg_annual_income_fen: Fen
    experience_years: Annotated[int, Field(ge=0, le=100)]
    credit: dict[Annotated[str, Field(max_length=64)], Any] = {}


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["approve", "decline"]
    tier: Annotated[int, Field(ge=1, le=3)] | None = None
    reason: Annotated[str, Field(min_length=10, max_length=2000)]


class ReviewIn(BaseModel):
    """The borrower's record since the last review; `from_platform` takes it from the
    platform instead (the recent events it holds and the positions on chain)."""

    model_config = ConfigDict(extra="forbid")
    from_platform: bool = False
    margin_calls: Annotated[int, Field(ge=0, le=10_000)] = 0
    top_ups: Annotated[int, Field(ge=0, le=10_000)] = 0
    liquidations: Annotated[int, Field(ge=0, le=10_000)] = 0
    max_concentration_bps: Annotated[int, Field(ge=0, le=10_000)] = 0


def onboard(st: ApiState, user: User, body: ApplicationIn) -> tuple[dict[str, Any], bool]:
    """Run the pipeline for `user` (or return their application already decided or open);
    returns the record and whether it is new. Used by the endpoint and the demo."""
    if user.role not in (Role.INVESTOR, Role.BORROWER):
        raise Forbidden("only investors and borrowers apply")
    svc = st.onboarding()
    try:
        rec = svc.latest_for(str(user.id))
    except NotFound:
        pass
    else:
        settle(st, rec)  # idempotent: finishes a settlement an earlier failure interrupted
        return rec, False
    app = Application(
        user_ref=str(user.id), role=user.role.value, address=st.platform.fin.address(user.id),
        name=body.name, id_number=body.id_number, phone=body.phone, bank_card=body.bank_card,
        document_expiry=body.document_expiry, questionnaire=dict(body.questionnaire),
        financial_assets_fen=body.financial_assets_fen,
        avg_annual_income_fen=body.avg_annual_income_fen,
        experience_years=body.experience_years, credit=dict(body.credit),
    )  # fmt: skip
    rec = svc.apply(app)
    settle(st, rec)
    return rec, True


def settle(st: ApiState, rec: dict[str, Any]) -> None:
    """After a decision: the platform relays the queued identity writes on chain; the user's
    KYC status and granted tier follow the decision; an approved user gets custody accounts.
    Idempotent; a failed relay leaves the writes queued (retried at the next relay)."""
    st.platform.relay_identities(st.onboarding())
    uid = int(rec["user_ref"])
    if rec["status"] == "approved":
        st.users.set_kyc(uid, "approved", rec["tier"])
        st.platform.enroll(uid, rec["role"])  # custody accounts; the identity is on chain
    elif rec["status"] == "declined":
        st.users.set_kyc(uid, "rejected", None)


def platform_signals(st: ApiState, user_id: int) -> Behaviour:
    """Margin calls, reserve top-ups and liquidations among the platform's recent events (the
    last 500 it holds), and the largest position's share of the account's assets."""
    p = st.platform
    acc = next((a for a in p.accounts.values() if a.owner_id == user_id), None)
    if acc is None:
        return Behaviour()
    kinds = Counter(e.kind for e in list(p.events) if e.account_id == acc.id)
    assets = p.account_view(acc).assets_fen
    top = max((x["market_value_fen"] for x in p.positions(acc)), default=0)
    return Behaviour(
        margin_calls=kinds["margin_warning"], top_ups=kinds["auto_top_up"],
        liquidations=kinds["liquidation_started"],
        max_concentration_bps=top * 10_000 // assets if assets > 0 else 0,
    )  # fmt: skip


def _svc(st: ApiState = Depends(state)) -> OnboardingService:
    svc: OnboardingService = st.onboarding()
    return svc


@router.post("/onboarding/applications", status_code=201)
def apply(
    body: ApplicationIn,
    user: User = Depends(require(Role.INVESTOR, Role.BORROWER)),
    st: ApiState = Depends(state),
) -> JSONResponse:
    """Apply (once): KYC → sanctions → suitability → credit → decision → chain. Answers 201
    with the new application, 200 with the one already on file."""
    rec, new = onboard(st, user, body)
    return JSONResponse(applicant_view(rec), status_code=201 if new else 200)


@router.get("/onboarding/applications/me")
def my_application(
    user: User = Depends(require(Role.INVESTOR, Role.BORROWER)),
    svc: OnboardingService = Depends(_svc),
) -> dict[str, Any]:
    """The applicant's view: status, tier, rate and each step's reasons (en, zh-CN)."""
    return applicant_view(svc.latest_for(str(user.id)))


@router.get("/compliance/onboarding")
def queue(
    status: Literal["referred", "blocked", "approved", "declined", "all"] = Query("referred"),
    _: User = Depends(require(Role.COMPLIANCE, Role.AUDITOR)),
    svc: OnboardingService = Depends(_svc),
) -> list[dict[str, Any]]:
    """The compliance officer's queue (default: referrals waiting for a decision)."""
    return svc.queue(None if status == "all" else status)


@router.get("/compliance/onboarding/users/{user_id}")
def officer_view(
    user_id: UserIdPath,
    _: User = Depends(require(Role.COMPLIANCE, Role.AUDITOR)),
    svc: OnboardingService = Depends(_svc),
) -> dict[str, Any]:
    """Every step of a user's latest application, with screening details and model version."""
    return svc.latest_for(str(user_id))


@router.post("/compliance/onboarding/users/{user_id}/override")
def override(
    user_id: UserIdPath,
    body: OverrideIn,
    actor: User = Depends(require(Role.COMPLIANCE)),
    st: ApiState = Depends(state),
) -> dict[str, Any]:
    """Decide a referred application, with a written reason (audit log)."""
    svc = st.onboarding()
    rec = svc.latest_for(str(user_id))
    out = svc.override(
        rec["application_id"], actor=actor.username, outcome=body.outcome, reason=body.reason,
        tier=body.tier,
    )  # fmt: skip
    settle(st, out)
    return out


@router.post("/compliance/onboarding/users/{user_id}/review")
def review(
    user_id: UserIdPath,
    body: ReviewIn,
    actor: User = Depends(require(Role.COMPLIANCE)),
    st: ApiState = Depends(state),
) -> dict[str, Any]:
    """Re-tier an approved borrower from the platform's behavioural signals."""
    svc = st.onboarding()
    rec = svc.latest_for(str(user_id))
    signals = platform_signals(st, user_id) if body.from_platform else Behaviour(
        **body.model_dump(exclude={"from_platform"})
    )  # fmt: skip
    out = svc.review(rec["application_id"], signals, actor=actor.username)
    settle(st, out)
    return out


@router.get("/compliance/credit/population")
def population(
    _: User = Depends(require(Role.COMPLIANCE, Role.OPERATOR)),
    svc: OnboardingService = Depends(_svc),
) -> dict[str, Any]:
    """Population stability (PSI) of scores and inputs vs the model's training data."""
    return svc.population()
