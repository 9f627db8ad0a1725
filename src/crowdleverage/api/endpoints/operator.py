"""Operator controls (pause, resume, end of day, replay ticks), risk figures and their live
stream, auditor reports, and the public transparency figures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from crowdleverage.api import published
from crowdleverage.api import schemas as S
from crowdleverage.api.deps import ApiState, PageParams, page_params, require, state
from crowdleverage.api.security import Role, User
from crowdleverage.api.views import max_drawdown_bps
from crowdleverage.domain.errors import NotFound
from crowdleverage.flows.model import AccountStatus, Tranche
from crowdleverage.flows.platform import Platform

router = APIRouter(tags=["operator, risk, audit"])

RISK_READERS = (Role.OPERATOR, Role.AUDITOR)


def _status(p: Platform) -> S.StatusOut:
    return S.StatusOut(
        paused=p.paused_reason is not None,
        paused_reason=p.paused_reason,
        trade_date=p.market.today.isoformat(),
        step=p.market.step,
    )


@router.post("/operator/pause", response_model=S.StatusOut)
def pause(
    body: S.PauseIn, user: User = Depends(require(Role.OPERATOR)), st: ApiState = Depends(state)
) -> S.StatusOut:
    st.platform.pause(body.reason)
    st.audit.append(user.username, "pause", body.model_dump())
    return _status(st.platform)


@router.post("/operator/resume", response_model=S.StatusOut)
def resume(
    user: User = Depends(require(Role.OPERATOR)), st: ApiState = Depends(state)
) -> S.StatusOut:
    st.platform.resume()
    st.audit.append(user.username, "resume", {})
    return _status(st.platform)


@router.post("/operator/end-of-day", response_model=S.EndOfDayOut)
def end_of_day(
    user: User = Depends(require(Role.OPERATOR)), st: ApiState = Depends(state)
) -> S.EndOfDayOut:
    """End the trading day now (remaining ticks, unfilled orders expire) and close the pool's
    epoch: interest distributed, queued subscriptions and redemptions executed."""
    out = st.platform.end_of_day()
    st.audit.append(user.username, "end_of_day", out)
    return S.EndOfDayOut(**out)


@router.post("/operator/tick", response_model=S.StatusOut)
def tick(
    body: S.TickIn, user: User = Depends(require(Role.OPERATOR)), st: ApiState = Depends(state)
) -> S.StatusOut:
    """Advance the market replay by `steps` ticks (the monitor runs after each)."""
    for _ in range(body.steps):
        st.platform.tick()
    return _status(st.platform)


@router.post("/operator/reconcile", response_model=S.ReconciliationOut)
def reconcile(
    user: User = Depends(require(Role.OPERATOR, Role.CUSTODIAN)), st: ApiState = Depends(state)
) -> S.ReconciliationOut:
    """Compare the custody ledger with the chain; a break pauses the platform."""
    rep = st.platform.reconcile()
    st.audit.append(user.username, "reconcile", {"status": rep["status"]})
    return S.ReconciliationOut(**rep)


@router.get("/status", response_model=S.StatusOut)
def status(st: ApiState = Depends(state)) -> S.StatusOut:
    return _status(st.platform)


@router.get("/risk/summary", response_model=S.RiskOut)
def risk(_: User = Depends(require(*RISK_READERS)), st: ApiState = Depends(state)) -> S.RiskOut:
    return S.RiskOut(**st.platform.risk_snapshot())


@router.get("/risk/stream", response_class=StreamingResponse)
async def risk_stream(
    request: Request,
    max_events: int = Query(0, ge=0, le=10_000, description="stop after n events (0: never)"),
    interval_s: float = Query(1.0, ge=0.2, le=30.0),
    _: User = Depends(require(*RISK_READERS)),
    st: ApiState = Depends(state),
) -> StreamingResponse:
    """Server-sent events: a `risk` event with the snapshot every `interval_s` seconds."""

    async def gen() -> AsyncIterator[str]:
        sent = 0
        while not await request.is_disconnected():
            snap = await asyncio.to_thread(st.platform.risk_snapshot)
            yield f"event: risk\ndata: {json.dumps(snap)}\n\n"
            sent += 1
            if max_events and sent >= max_events:
                return
            await asyncio.sleep(interval_s)

    return StreamingResponse(
        gen(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


@router.get("/audit/reconciliation", response_model=S.ReconciliationOut)
def last_reconciliation(
    _: User = Depends(require(Role.AUDITOR, Role.OPERATOR, Role.CUSTODIAN)),
    st: ApiState = Depends(state),
) -> S.ReconciliationOut:
    """The latest reconciliation report (one is run now if none exists yet)."""
    rep = st.platform.last_reconciliation or st.platform.reconcile()
    return S.ReconciliationOut(**rep)


@router.get("/audit/proof-of-liabilities", response_model=S.ProofRootOut)
def proof_root(
    _: User = Depends(require(Role.AUDITOR, Role.OPERATOR)), st: ApiState = Depends(state)
) -> S.ProofRootOut:
    """The latest epoch's Merkle-sum root and total of what the platform owes its users."""
    epoch = st.platform.latest_epoch()
    if epoch is None:
        from crowdleverage.domain.errors import NotFound

        raise NotFound("no proof-of-liabilities epoch has been closed yet")
    root = st.platform.proofs.root(epoch)
    assert root is not None
    return S.ProofRootOut(epoch=epoch, root_hash=root[0], total_fen=root[1])


@router.get("/audit/log", response_model=S.AuditLogOut)
def audit_log(
    page: PageParams = Depends(page_params),
    _: User = Depends(require(Role.AUDITOR, Role.OPERATOR)),
    st: ApiState = Depends(state),
) -> S.AuditLogOut:
    items, total = st.audit.page(page.limit, page.offset)
    ok, problems = st.audit.verify()
    return S.AuditLogOut(
        items=[S.AuditEntryOut(**i) for i in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
        chain_valid=ok,
        problems=problems,
    )


CUSTODIAN_INFO = {
    "name": "模拟托管银行 (simulated custodian bank)",
    "role": "holds all client cash in a segregated omnibus account; its ledger is the book "
    "of record",
    "statements": "ISO 20022 camt.053 daily; payouts by pain.001",
    "reconciliation": "custody ledger ↔ CashToken on chain (every reference, the supply and "
    "every address's balance) after every epoch; a break pauses CashToken and the platform",
}


def transparency(p: Platform) -> dict[str, Any]:
    with p.lock:
        snap = p.risk_snapshot()
        epoch = p.latest_epoch()
        root = p.proofs.root(epoch) if epoch is not None else None
        rec = p.last_reconciliation
        pool = p.pool_figures()
        tranches = []
        for t in Tranche:
            hist = p.nav_history(t)
            navs = [v for _, v in hist]
            tranches.append(
                S.TrancheReportOut(
                    tranche=t,
                    nav_e4=p.nav_e4(t),
                    claim_fen=pool[f"{t.value}_claim_fen"],
                    history=[S.NavPoint(date=d, nav_e4=v) for d, v in hist],
                    max_drawdown_bps=max_drawdown_bps(navs),
                )
            )
        statuses = [a["status"] for a in snap["accounts"]]
        terms = p.published_terms()
        policy = p.published_policy()
        today = p.market.today
    return {
        "tiers": [S.TierOut(**t) for t in terms["tiers"]],
        "fees": terms["fees"],
        "tranches": tranches,
        "custodian": CUSTODIAN_INFO,
        "reconciliation_status": rec["status"] if rec else "not yet run",
        "reconciliation_at": rec["at"] if rec else None,
        "cash_token_supply_fen": rec["chain"]["supply_fen"] if rec and rec["chain"] else None,
        "proof_epoch": epoch,
        "proof_root_hash": root[0] if root else None,
        "proof_total_fen": root[1] if root else None,
        "accounts": len(statuses),
        "accounts_warning": sum(s == AccountStatus.WARNING for s in statuses),
        "accounts_liquidating": sum(s == AccountStatus.LIQUIDATING for s in statuses),
        "total_debt_fen": snap["total_debt_fen"],
        "utilisation_bps": snap["utilisation_bps"],
        "insurance_fen": snap["insurance_fen"],
        "trade_date": snap["trade_date"],
        "regime": published.regime_summary(p.settings.market_data, today),
        "stress": published.stress_summary(p.settings.data_dir),
        "strategy_brake": published.brake_summary(p.fin.chain),
        "risk_policy": policy,
    }


@router.get("/public/stress", response_model=dict[str, Any])
def public_stress(st: ApiState = Depends(state)) -> dict[str, Any]:
    """Public: the newest stored stress-test result (scenarios, layers, targets), 404 when
    none has run yet."""
    out = published.stress_summary(st.platform.settings.data_dir)
    if out is None:
        raise NotFound("no stress test has run yet")
    return out


@router.get("/public/transparency", response_model=S.TransparencyOut)
def public_transparency(st: ApiState = Depends(state)) -> S.TransparencyOut:
    """Public: fees and rates, tranche NAV history with maximum drawdown, the custodian, the
    latest reconciliation and proof-of-liabilities root, aggregate risk figures."""
    return S.TransparencyOut(**transparency(st.platform))
