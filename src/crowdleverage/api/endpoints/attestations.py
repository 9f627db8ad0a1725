"""Third-party audit attestations (第三方审计报告): the auditor signs, the public reads and
verifies (logic in `reports.attest`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from crowdleverage.api.deps import ID_MAX, ApiState, require, state
from crowdleverage.api.security import Role, User
from crowdleverage.reports.attest import report_pdf
from crowdleverage.reports.wiring import attestations_of

router = APIRouter(tags=["operator, risk, audit"])
DATE = r"^\d{4}-\d{2}-\d{2}$"
AttId = Annotated[int, Path(ge=1, le=ID_MAX, description="attestation id")]


class AttestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period_start: str = Field(pattern=DATE)
    period_end: str = Field(pattern=DATE)


@router.post("/audit/attestations", response_model=dict[str, Any], status_code=201)
def create(
    body: AttestIn, user: User = Depends(require(Role.AUDITOR)), st: ApiState = Depends(state)
) -> dict[str, Any]:
    """The auditor signs an attestation for the period: the latest reconciliation, proof of
    liabilities root, stress result and the deployed contracts' code against the source."""
    att = attestations_of(st).create(st.platform, body.period_start, body.period_end,
                                     user.username)  # fmt: skip
    st.audit.append(user.username, "attestation", {"id": att["id"],
                                                   "period_end": body.period_end})  # fmt: skip
    return att


@router.get("/public/attestations", response_model=dict[str, Any])
def list_public(
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0, le=10**9),
    st: ApiState = Depends(state),
) -> dict[str, Any]:
    """Public: every attestation with its signed body, signature, public key and whether the
    signature verifies (check it yourself: Ed25519 over the UTF-8 bytes of `body`)."""
    items, total = attestations_of(st).page(limit, offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset,
            "trusted_key": attestations_of(st).trusted_key()}  # fmt: skip


@router.get("/public/attestations/{att_id}", response_model=dict[str, Any])
def get_public(att_id: AttId, st: ApiState = Depends(state)) -> dict[str, Any]:
    return attestations_of(st).get(att_id)


@router.get("/public/attestations/{att_id}/report.pdf", response_class=Response)
def report(
    request: Request,
    att_id: AttId,
    st: ApiState = Depends(state),
) -> Response:
    """The attestation as a PDF report (the signed JSON and the signature included)."""
    lang = request.cookies.get("lang") or "zh"
    pdf = report_pdf(attestations_of(st).get(att_id), "en" if lang == "en" else "zh")
    disposition = f'inline; filename="attestation-{att_id}.pdf"'
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": disposition})  # fmt: skip
