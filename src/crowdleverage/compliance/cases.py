"""Compliance cases: open -> investigating -> reported -> closed, with an audit trail.

Every transition is a conditional `UPDATE ... WHERE status = <expected> AND version = <seen>`
plus a row in `compliance_case_events`, in one transaction; a lost race is a `Conflict`, never
a silent overwrite. A finding opens at most one case (unique `dedup_key`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from crowdleverage.compliance.repository import (
    as_utc,
    case_events,
    cases,
    identities,
    new_id,
    utcnow,
)
from crowdleverage.domain.errors import Conflict, InvalidInput, NotFound


class CaseStatus(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    REPORTED = "reported"  # a suspicious-transaction report was filed
    CLOSED = "closed"


class Resolution(StrEnum):
    FALSE_POSITIVE = "false_positive"
    CONFIRMED = "confirmed"  # a true sanctions match or confirmed suspicious activity
    NO_ACTION = "no_action"


OPEN_STATUSES = (CaseStatus.OPEN, CaseStatus.INVESTIGATING, CaseStatus.REPORTED)

_ALLOWED: dict[CaseStatus, tuple[CaseStatus, ...]] = {
    CaseStatus.OPEN: (CaseStatus.INVESTIGATING, CaseStatus.CLOSED),
    CaseStatus.INVESTIGATING: (CaseStatus.REPORTED, CaseStatus.CLOSED),
    CaseStatus.REPORTED: (CaseStatus.CLOSED,),
    CaseStatus.CLOSED: (),
}


@dataclass(frozen=True, slots=True)
class Case:
    case_id: str
    kind: str
    identity_id: str | None
    status: CaseStatus
    resolution: str | None
    title: str
    details: dict[str, Any]
    opened_at: datetime
    updated_at: datetime
    version: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "kind": self.kind,
            "identity_id": self.identity_id,
            "status": self.status.value,
            "resolution": self.resolution,
            "title": self.title,
            "details": self.details,
            "opened_at": self.opened_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _case(row: sa.Row[Any]) -> Case:
    m = row._mapping
    return Case(
        m["case_id"],
        m["kind"],
        m["identity_id"],
        CaseStatus(m["status"]),
        m["resolution"],
        m["title"],
        dict(m["details"]),
        as_utc(m["opened_at"]),
        as_utc(m["updated_at"]),
        m["version"],
    )


def open_case(
    conn: sa.Connection,
    *,
    kind: str,
    identity_id: str | None,
    dedup_key: str,
    title: str,
    details: dict[str, Any],
    actor: str = "system",
    now: datetime | None = None,
) -> tuple[Case, bool]:
    """Open a case for a finding; (case, created). The same finding returns its existing case."""
    existing = conn.execute(sa.select(cases).where(cases.c.dedup_key == dedup_key)).first()
    if existing is not None:
        return _case(existing), False
    at = now or utcnow()
    case_id = new_id("case")
    conn.execute(
        cases.insert().values(
            case_id=case_id,
            kind=kind,
            identity_id=identity_id,
            dedup_key=dedup_key,
            status=CaseStatus.OPEN.value,
            resolution=None,
            title=title[:512],
            details=details,
            opened_at=at,
            updated_at=at,
            version=1,
        )
    )
    _event(conn, case_id, at, actor, "open", None, CaseStatus.OPEN, title[:2000])
    return get_case(conn, case_id), True


def get_case(conn: sa.Connection, case_id: str) -> Case:
    row = conn.execute(sa.select(cases).where(cases.c.case_id == case_id)).first()
    if row is None:
        raise NotFound(f"case {case_id} does not exist", case_id=case_id)
    return _case(row)


def list_cases(
    conn: sa.Connection, *, identity_id: str | None = None, status: CaseStatus | None = None
) -> list[Case]:
    q = sa.select(cases).order_by(cases.c.opened_at, cases.c.case_id)
    if identity_id is not None:
        q = q.where(cases.c.identity_id == identity_id)
    if status is not None:
        q = q.where(cases.c.status == status.value)
    return [_case(r) for r in conn.execute(q)]


def open_cases_for(conn: sa.Connection, identity_id: str, kind_prefix: str = "") -> list[Case]:
    q = sa.select(cases).where(
        cases.c.identity_id == identity_id,
        cases.c.status.in_([s.value for s in OPEN_STATUSES]),
    )
    if kind_prefix:
        q = q.where(cases.c.kind.startswith(kind_prefix))
    return [_case(r) for r in conn.execute(q)]


def transition(
    conn: sa.Connection,
    case_id: str,
    to_status: CaseStatus,
    *,
    actor: str,
    note: str = "",
    resolution: Resolution | None = None,
    now: datetime | None = None,
) -> Case:
    """Move a case along the workflow; closing needs a resolution."""
    if not actor.strip():
        raise InvalidInput("actor must be named for the audit trail")
    case = get_case(conn, case_id)
    if to_status not in _ALLOWED[case.status]:
        raise Conflict(
            f"case {case_id} is {case.status.value}; cannot move to {to_status.value}",
            case_id=case_id,
            status=case.status.value,
        )
    if to_status == CaseStatus.CLOSED and resolution is None:
        raise InvalidInput("closing a case needs a resolution", case_id=case_id)
    if to_status != CaseStatus.CLOSED and resolution is not None:
        raise InvalidInput("only closing a case takes a resolution", case_id=case_id)
    if to_status == CaseStatus.REPORTED and not note.strip():
        raise InvalidInput("reporting a case needs a note (the grounds for suspicion)")
    at = now or utcnow()
    values: dict[str, Any] = {
        "status": to_status.value,
        "updated_at": at,
        "version": case.version + 1,
    }
    if resolution is not None:
        values["resolution"] = resolution.value
    result = conn.execute(
        cases.update()
        .where(
            cases.c.case_id == case_id,
            cases.c.status == case.status.value,
            cases.c.version == case.version,
        )
        .values(**values)
    )
    if result.rowcount != 1:
        raise Conflict(f"case {case_id} changed concurrently; reload and retry", case_id=case_id)
    action = "close" if to_status == CaseStatus.CLOSED else to_status.value
    full_note = f"[{resolution.value}] {note}".strip() if resolution else note
    _event(conn, case_id, at, actor, action, case.status, to_status, full_note)
    return get_case(conn, case_id)


def history(conn: sa.Connection, case_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(case_events).where(case_events.c.case_id == case_id).order_by(case_events.c.id)
    )
    return [
        {
            "at": as_utc(r.at).isoformat(),
            "actor": r.actor,
            "action": r.action,
            "from": r.from_status,
            "to": r.to_status,
            "note": r.note,
        }
        for r in rows
    ]


def _event(
    conn: sa.Connection,
    case_id: str,
    at: datetime,
    actor: str,
    action: str,
    from_status: CaseStatus | None,
    to_status: CaseStatus,
    note: str,
) -> None:
    conn.execute(
        case_events.insert().values(
            case_id=case_id,
            at=at,
            actor=actor,
            action=action,
            from_status=from_status.value if from_status else None,
            to_status=to_status.value,
            note=note[:2000],
        )
    )


# ── suspicious-transaction report export ────────────────────────────────────────────────────

STR_COLUMNS = (
    "case_id",
    "rule",
    "subject_name",
    "subject_id_masked",
    "subject_address",
    "txn_ids",
    "total_amount_fen",
    "first_txn_at",
    "last_txn_at",
    "grounds",
    "reported_at",
    "reported_by",
)


def suspicious_transaction_reports(conn: sa.Connection) -> list[dict[str, Any]]:
    """One record per reported AML case (reported, or closed after being reported), with the
    subject, the transactions and the officer's grounds -- the content of a 可疑交易报告."""
    reported = conn.execute(
        sa.select(case_events.c.case_id, case_events.c.at, case_events.c.actor, case_events.c.note)
        .where(case_events.c.to_status == CaseStatus.REPORTED.value)
        .order_by(case_events.c.id)
    ).all()
    out: list[dict[str, Any]] = []
    for case_id, at, actor, note in reported:
        case = get_case(conn, case_id)
        if not case.kind.startswith("aml:"):
            continue
        subject = None
        if case.identity_id:
            subject = conn.execute(
                sa.select(identities).where(identities.c.identity_id == case.identity_id)
            ).first()
        d = case.details
        out.append(
            {
                "case_id": case.case_id,
                "rule": case.kind.removeprefix("aml:"),
                "subject_name": subject.name if subject else "",
                "subject_id_masked": subject.id_number_masked if subject else "",
                "subject_address": subject.address if subject else "",
                "txn_ids": list(d.get("txn_ids", [])),
                "total_amount_fen": int(d.get("total_amount_fen", 0)),
                "first_txn_at": d.get("first_txn_at", ""),
                "last_txn_at": d.get("last_txn_at", ""),
                "grounds": note,
                "reported_at": as_utc(at).isoformat(),
                "reported_by": actor,
            }
        )
    return out


def reports_to_csv(reports: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(STR_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in reports:
        writer.writerow({**r, "txn_ids": ";".join(r["txn_ids"])})
    return buf.getvalue()
