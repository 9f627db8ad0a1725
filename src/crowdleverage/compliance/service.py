"""Compliance use cases: sanctions lists, KYC onboarding and its status workflow, rescreening.

    pending --verify--> verified --(document expiry)--> expired
       \\--reject--> rejected

Onboarding validates every field (all problems are reported at once), stores documents by hash,
screens the applicant; a hit above the threshold opens a sanctions case and blocks verification
until an officer closes the case as a false positive. Verification, expiry, freezing and
suitability changes write the identity on chain through the `IdentityWriter` port inside the same
database transaction: if the chain write fails, the status change is rolled back.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from crowdleverage.compliance import aml, kyc, suitability
from crowdleverage.compliance import cases as case_repo
from crowdleverage.compliance.cases import Case, CaseStatus, Resolution
from crowdleverage.compliance.lists import BirthDate, ListEntry, ListName, load_list_file
from crowdleverage.compliance.ports import IdentityRole, IdentityWriter
from crowdleverage.compliance.repository import (
    as_utc,
    chain_outbox,
    create_tables,
    documents,
    identities,
    list_entries,
    lists,
    new_id,
    screenings,
    utcnow,
)
from crowdleverage.compliance.screening import DEFAULT_THRESHOLD, Screener, ScreenResult
from crowdleverage.config import SHIPPED_DATA
from crowdleverage.domain.errors import ComplianceBlock, Conflict, InvalidInput, NotFound

SHIPPED_UN_LIST = SHIPPED_DATA / "compliance" / "un_sc_consolidated_2018-10-29.xml"
_ADDRESS_LEN = 42


@dataclass(frozen=True, slots=True)
class Document:
    kind: str  # "id_front", "id_back", "bank_card", "selfie", ...
    content: bytes


@dataclass(frozen=True, slots=True)
class KycApplication:
    address: str  # the applicant's on-chain account
    name: str
    id_number: str
    phone: str
    bank_card: str
    document_expiry: date
    roles: IdentityRole = IdentityRole.INVESTOR
    documents: tuple[Document, ...] = ()


@dataclass(frozen=True, slots=True)
class OnboardingResult:
    identity_id: str
    status: str
    blocked: bool
    screening: ScreenResult
    case_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity_id": self.identity_id,
            "status": self.status,
            "blocked": self.blocked,
            "case_id": self.case_id,
            "screening": self.screening.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class LoadResult:
    list_id: str
    version: str
    entry_count: int
    created: bool
    rescreened: int
    new_cases: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "list": self.list_id,
            "version": self.version,
            "entries": self.entry_count,
            "created": self.created,
            "rescreened_identities": self.rescreened,
            "new_cases": self.new_cases,
        }


@functools.cache
def _shipped_entries() -> tuple[ListEntry, ...]:
    """The shipped list is immutable: parsed once per process."""
    return tuple(load_list_file(SHIPPED_UN_LIST).entries)


def _expiry_s(d: date) -> int:
    """Documents are valid through the end of their expiry day (China time is UTC+8; the
    registry compares UNIX seconds, so we use the end of the day in UTC+8)."""
    end = datetime.combine(d, time(23, 59, 59), tzinfo=UTC)
    return int(end.timestamp()) - 8 * 3600


class ComplianceService:
    def __init__(
        self,
        engine: sa.Engine,
        writer: IdentityWriter | None,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        create: bool = True,
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.threshold = threshold
        if create:
            create_tables(engine)
        self._screener: Screener | None = None
        self._screener_key: tuple[int, ...] | None = None

    # ── lists ───────────────────────────────────────────────────────────────────────────────

    def load_list(self, path: Path, *, now: datetime | None = None) -> LoadResult:
        """Parse a list file, store it (once per file content), rescreen every identity."""
        loaded = load_list_file(path)  # raises DataFileError before anything is written
        at = now or utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(lists.c.id).where(lists.c.sha256 == loaded.sha256)).first()
            if row is not None:
                return LoadResult(loaded.list_id, loaded.version, len(loaded.entries), False, 0)
            inserted = conn.execute(
                lists.insert().values(
                    list_id=loaded.list_id,
                    fmt=loaded.fmt,
                    version=loaded.version,
                    sha256=loaded.sha256,
                    source=str(path)[:512],
                    entry_count=len(loaded.entries),
                    loaded_at=at,
                )
            ).inserted_primary_key
            assert inserted is not None, "dev: insert returns the new id"
            list_row = inserted[0]
            conn.execute(
                list_entries.insert(),
                [
                    {
                        "list_row": list_row,
                        "entry_id": e.entry_id,
                        "kind": e.kind,
                        "data": _entry_data(e),
                    }
                    for e in loaded.entries
                ],
            )
        rescreened, new_cases = self.rescreen_all(now=at)
        return LoadResult(
            loaded.list_id, loaded.version, len(loaded.entries), True, rescreened, new_cases
        )

    def loaded_lists(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [
                {
                    "list": r.list_id,
                    "version": r.version,
                    "format": r.fmt,
                    "entries": r.entry_count,
                    "loaded_at": as_utc(r.loaded_at).isoformat(),
                }
                for r in conn.execute(sa.select(lists).where(lists.c.id.in_(self._active_rows())))
            ]

    def _active_rows(self) -> sa.Select[Any]:
        """The newest load of each list."""
        return sa.select(sa.func.max(lists.c.id)).group_by(lists.c.list_id)

    def screener(self) -> Screener:
        with self.engine.connect() as conn:
            rows: tuple[int, ...] = tuple(
                sorted(int(r[0]) for r in conn.execute(self._active_rows()))
            )
            if self._screener is not None and rows == self._screener_key:
                return self._screener
            if rows:
                q = sa.select(lists.c.list_id, list_entries).join(
                    lists, lists.c.id == list_entries.c.list_row
                )
                entries = [
                    _entry_from_data(r.list_id, r.entry_id, r.kind, r.data)
                    for r in conn.execute(q.where(list_entries.c.list_row.in_(rows)))
                ]
            else:
                # Nothing loaded yet: screen against the shipped UN list (in memory only).
                entries = list(_shipped_entries())
        self._screener = Screener(entries, threshold=self.threshold)
        self._screener_key = rows
        return self._screener

    def list_versions(self) -> str:
        with self.engine.connect() as conn:
            q = sa.select(lists.c.list_id, lists.c.version).where(
                lists.c.id.in_(self._active_rows())
            )
            found = sorted(f"{a}:{b}" for a, b in conn.execute(q))
        return ",".join(found) or "un:shipped"

    # ── onboarding and status workflow ──────────────────────────────────────────────────────

    def onboard(self, app: KycApplication, *, now: datetime | None = None) -> OnboardingResult:
        at = now or utcnow()
        rid, card, phone, name = _validate_application(app, at.date())
        result = self.screener().screen(name, rid.birth_date)
        identity_id = new_id("kyc")
        with self.engine.begin() as conn:
            dup = conn.execute(
                sa.select(identities.c.identity_id, identities.c.address).where(
                    sa.or_(
                        identities.c.id_number_sha256 == rid.digest,
                        identities.c.address == app.address.lower(),
                    )
                )
            ).first()
            if dup is not None:
                raise Conflict(
                    f"an identity with this id number or address exists ({dup.identity_id})",
                    identity_id=dup.identity_id,
                )
            conn.execute(
                identities.insert().values(
                    identity_id=identity_id,
                    address=app.address.lower(),
                    name=name,
                    id_number_sha256=rid.digest,
                    id_number_masked=rid.masked,
                    birth_date=rid.birth_date,
                    region_code=rid.region_code,
                    phone=phone,
                    bank_card_sha256=kyc.sha256_text(card),
                    bank_card_masked=kyc.mask_card(card),
                    document_expiry=app.document_expiry,
                    roles=int(app.roles),
                    status="pending",
                    frozen=False,
                    version=1,
                    created_at=at,
                    updated_at=at,
                )
            )
            for doc in app.documents:
                conn.execute(
                    documents.insert().values(
                        identity_id=identity_id,
                        sha256=kyc.sha256_bytes(doc.content),
                        kind=doc.kind,
                        size_bytes=len(doc.content),
                        added_at=at,
                    )
                )
            case_ids = self._record_screening(conn, identity_id, result, at)
        return OnboardingResult(
            identity_id, "pending", bool(case_ids), result, case_ids[0] if case_ids else None
        )

    def _record_screening(
        self, conn: sa.Connection, identity_id: str, result: ScreenResult, at: datetime
    ) -> list[str]:
        """Store the screening; open one sanctions case per matched list entry above the
        threshold. Returns the ids of cases opened now."""
        conn.execute(
            screenings.insert().values(
                identity_id=identity_id,
                list_versions=self.list_versions()[:256],
                top_score=result.top_score,
                hit=result.is_hit,
                result=result.to_dict(),
                screened_at=at,
            )
        )
        opened: list[str] = []
        for hit in result.hits:
            if hit.score < self.threshold:
                continue
            case, created = case_repo.open_case(
                conn,
                kind="sanctions",
                identity_id=identity_id,
                dedup_key=f"sanctions:{identity_id}:{hit.list_id}:{hit.entry_id}",
                title=f"possible sanctions match: {hit.primary_name} ({hit.list_id} "
                f"{hit.reference or hit.entry_id}), score {hit.score}",
                details={"query": result.query, "match": hit.to_dict()},
                now=at,
            )
            if created:
                opened.append(case.case_id)
        return opened

    def verify(
        self,
        identity_id: str,
        *,
        actor: str,
        now: datetime | None = None,
        credit_tier: int | None = None,
    ) -> None:
        """Verify a pending identity (and a borrower's credit tier) and write it on chain."""
        at = now or utcnow()
        with self.engine.begin() as conn:
            ident = self._get(conn, identity_id)
            if ident.status != "pending":
                raise Conflict(f"identity {identity_id} is {ident.status}, not pending")
            blocking = case_repo.open_cases_for(conn, identity_id, "sanctions")
            if blocking:
                raise ComplianceBlock(
                    f"identity {identity_id} has an open sanctions case {blocking[0].case_id}",
                    identity_id=identity_id,
                    case_id=blocking[0].case_id,
                )
            if ident.document_expiry <= at.date():
                raise ComplianceBlock(f"identity document expired on {ident.document_expiry}")
            self._update(
                conn, ident, at, status="verified", status_reason=f"verified by {actor}",
                credit_tier=credit_tier,
            )  # fmt: skip
            self._write_chain(conn, identity_id)

    def set_credit_tier(self, identity_id: str, tier: int, *, now: datetime | None = None) -> None:
        """A borrower's tier changed at review: stored and written on chain (verified only)."""
        at = now or utcnow()
        with self.engine.begin() as conn:
            ident = self._get(conn, identity_id)
            self._update(conn, ident, at, credit_tier=tier)
            if ident.status == "verified":
                self._write_chain(conn, identity_id)

    def reject(
        self, identity_id: str, *, actor: str, reason: str, now: datetime | None = None
    ) -> None:
        if not reason.strip():
            raise InvalidInput("a rejection needs a reason")
        at = now or utcnow()
        with self.engine.begin() as conn:
            ident = self._get(conn, identity_id)
            if ident.status != "pending":
                raise Conflict(f"identity {identity_id} is {ident.status}, not pending")
            self._update(conn, ident, at, status="rejected", status_reason=f"{actor}: {reason}")

    def expire_due(self, *, now: datetime | None = None) -> list[str]:
        """Verified identities whose document has expired become `expired` (also on chain)."""
        at = now or utcnow()
        expired: list[str] = []
        with self.engine.begin() as conn:
            due = conn.execute(
                sa.select(identities).where(
                    identities.c.status == "verified",
                    identities.c.document_expiry <= at.date(),
                )
            ).all()
            for ident in due:
                self._update(conn, ident, at, status="expired", status_reason="document expired")
                self._write_chain(conn, ident.identity_id)
                expired.append(ident.identity_id)
        return expired

    def set_frozen(
        self,
        identity_id: str,
        frozen: bool,
        *,
        actor: str,
        reason: str,
        now: datetime | None = None,
    ) -> None:
        at = now or utcnow()
        with self.engine.begin() as conn:
            ident = self._get(conn, identity_id)
            if ident.frozen == frozen:
                return  # already in the asked state: idempotent
            verb = "frozen" if frozen else "unfrozen"
            self._update(
                conn, ident, at, frozen=frozen, status_reason=f"{verb} by {actor}: {reason}"
            )
            self._write_chain(conn, identity_id)

    def set_suitability(
        self,
        identity_id: str,
        level: int,
        *,
        qualified_investor: bool,
        now: datetime | None = None,
    ) -> None:
        if not 1 <= level <= 5:
            raise InvalidInput(f"suitability level {level} must be 1..5 (C1..C5)")
        at = now or utcnow()
        with self.engine.begin() as conn:
            ident = self._get(conn, identity_id)
            self._update(
                conn, ident, at, suitability_level=level, qualified_investor=qualified_investor
            )
            if ident.status == "verified":
                self._write_chain(conn, identity_id)

    def assess_suitability(
        self,
        identity_id: str,
        answers: dict[str, int],
        *,
        financial_assets_fen: int,
        avg_annual_income_fen: int,
        experience_years: int,
        policy: suitability.QualifiedInvestorPolicy | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Score the questionnaire, decide qualified-investor status, store both and write the
        level on chain. Returns the level, the allowed products and the leverage cap."""
        if min(financial_assets_fen, avg_annual_income_fen, experience_years) < 0:
            raise InvalidInput("assets, income and experience must not be negative")
        result = suitability.score_questionnaire(answers)
        profile = suitability.InvestorProfile(
            result.level, financial_assets_fen, avg_annual_income_fen, experience_years
        )
        qualified = suitability.is_qualified(
            profile, policy or suitability.QualifiedInvestorPolicy()
        )
        self.set_suitability(identity_id, int(result.level), qualified_investor=qualified, now=now)
        return {
            "score": result.score,
            "level": f"C{int(result.level)}",
            "qualified_investor": qualified,
            "products": sorted(
                code
                for code, p in suitability.PRODUCTS.items()
                if suitability.check_product(profile, p, policy).allowed
            ),
            "max_leverage_tier": suitability.max_leverage_tier(profile, policy),
        }

    def resolve_case(
        self,
        case_id: str,
        resolution: Resolution,
        *,
        actor: str,
        note: str = "",
        now: datetime | None = None,
    ) -> Case:
        """Close a case. A confirmed sanctions match rejects a pending applicant and freezes a
        verified one; a false positive unblocks verification."""
        at = now or utcnow()
        with self.engine.begin() as conn:  # the case and its consequence commit together
            case = case_repo.transition(
                conn, case_id, CaseStatus.CLOSED, actor=actor, note=note, resolution=resolution
            )
            confirmed = case.kind == "sanctions" and resolution == Resolution.CONFIRMED
            if confirmed and case.identity_id:
                ident = self._get(conn, case.identity_id)
                why = f"{actor}: confirmed sanctions match (case {case_id})"
                if ident.status == "pending":
                    self._update(conn, ident, at, status="rejected", status_reason=why)
                elif not ident.frozen:
                    self._update(conn, ident, at, frozen=True, status_reason=why)
                    self._write_chain(conn, case.identity_id)
        return case

    def rescreen_all(self, *, now: datetime | None = None) -> tuple[int, list[str]]:
        """Screen every pending or verified identity against the current lists. New hits open
        cases; a verified identity with a new hit is frozen until the case is resolved."""
        at = now or utcnow()
        screener = self.screener()
        with self.engine.connect() as conn:
            people = conn.execute(
                sa.select(identities.c.identity_id, identities.c.name, identities.c.birth_date)
                .where(identities.c.status.in_(["pending", "verified"]))
                .order_by(identities.c.identity_id)
            ).all()
        results = screener.screen_many([(p.name, p.birth_date) for p in people])
        opened: list[str] = []
        to_freeze: list[str] = []
        with self.engine.begin() as conn:
            for person, result in zip(people, results, strict=True):
                new = self._record_screening(conn, person.identity_id, result, at)
                opened.extend(new)
                if new:
                    to_freeze.append(person.identity_id)
        for identity_id in to_freeze:
            if self.identity(identity_id)["status"] == "verified":
                self.set_frozen(
                    identity_id, True, actor="rescreen", reason="new sanctions hit", now=at
                )
        return len(people), opened

    # ── AML monitoring ──────────────────────────────────────────────────────────────────────

    def monitor(
        self,
        txns: Sequence[aml.Transaction],
        *,
        cfg: aml.AmlConfig | None = None,
        now: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Run the AML rules; every alert becomes a case (once per finding). Alerts of the
        rules in `cfg.freeze_on` freeze a verified customer at once, pending investigation."""
        cfg = cfg or aml.AmlConfig()
        at = now or utcnow()
        ids = sorted({t.identity_id for t in txns})
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    identities.c.identity_id, identities.c.name, identities.c.bank_card_sha256
                ).where(identities.c.identity_id.in_(ids))
            ).all()
        customers = {
            r.identity_id: aml.Customer(r.identity_id, r.name, frozenset({r.bank_card_sha256}))
            for r in rows
        }
        alerts = aml.run_rules(txns, customers, cfg)
        out: list[dict[str, Any]] = []
        to_freeze: list[tuple[str, str]] = []
        with self.engine.begin() as conn:
            for alert in alerts:
                case, created = case_repo.open_case(
                    conn,
                    kind=f"aml:{alert.rule}",
                    identity_id=alert.identity_id if alert.identity_id in customers else None,
                    dedup_key=alert.dedup_key,
                    title=alert.description,
                    details=alert.details(),
                    now=at,
                )
                if created and alert.rule in cfg.freeze_on and alert.identity_id in customers:
                    to_freeze.append((alert.identity_id, case.case_id))
                out.append({"alert": alert.details(), "case_id": case.case_id, "new": created})
        for identity_id, case_id in to_freeze:
            if self.identity(identity_id)["status"] == "verified":
                self.set_frozen(
                    identity_id, True, actor="aml-monitor", reason=f"AML case {case_id}", now=at
                )
        return out

    def report_case(
        self, case_id: str, *, actor: str, grounds: str, now: datetime | None = None
    ) -> Case:
        """File the suspicious-transaction report for a case under investigation."""
        with self.engine.begin() as conn:
            return case_repo.transition(
                conn, case_id, CaseStatus.REPORTED, actor=actor, note=grounds, now=now
            )

    def investigate_case(self, case_id: str, *, actor: str, now: datetime | None = None) -> Case:
        with self.engine.begin() as conn:
            return case_repo.transition(
                conn, case_id, CaseStatus.INVESTIGATING, actor=actor, now=now
            )

    def str_export(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return case_repo.suspicious_transaction_reports(conn)

    # ── reads ───────────────────────────────────────────────────────────────────────────────

    def identity(self, identity_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            r = self._get(conn, identity_id)
        return {
            "identity_id": r.identity_id,
            "address": r.address,
            "name": r.name,
            "id_number_masked": r.id_number_masked,
            "bank_card_masked": r.bank_card_masked,
            "status": r.status,
            "status_reason": r.status_reason,
            "frozen": r.frozen,
            "suitability_level": r.suitability_level,
            "qualified_investor": r.qualified_investor,
            "credit_tier": r.credit_tier,
            "document_expiry": r.document_expiry.isoformat(),
        }

    def identity_by_address(self, address: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(identities.c.identity_id).where(identities.c.address == address.lower())
            ).first()
        if row is None:
            raise NotFound(f"no identity for address {address}")
        return self.identity(row.identity_id)

    def cases(self, identity_id: str | None = None) -> list[Case]:
        with self.engine.connect() as conn:
            return case_repo.list_cases(conn, identity_id=identity_id)

    def document_hashes(self, identity_id: str) -> list[str]:
        with self.engine.connect() as conn:
            q = sa.select(documents.c.sha256).where(documents.c.identity_id == identity_id)
            return sorted(r[0] for r in conn.execute(q))

    # ── internals ───────────────────────────────────────────────────────────────────────────

    def _get(self, conn: sa.Connection, identity_id: str) -> sa.Row[Any]:
        row = conn.execute(
            sa.select(identities).where(identities.c.identity_id == identity_id)
        ).first()
        if row is None:
            raise NotFound(f"identity {identity_id} does not exist", identity_id=identity_id)
        return row

    def _update(self, conn: sa.Connection, ident: sa.Row[Any], at: datetime, **values: Any) -> None:
        result = conn.execute(
            identities.update()
            .where(
                identities.c.identity_id == ident.identity_id,
                identities.c.version == ident.version,
            )
            .values(version=ident.version + 1, updated_at=at, **values)
        )
        if result.rowcount != 1:
            raise Conflict(f"identity {ident.identity_id} changed concurrently; retry")

    def _write_chain(self, conn: sa.Connection, identity_id: str) -> None:
        """Write the identity on chain now (writer given), or queue the write in the outbox in
        the same transaction (no writer: `relay_outbox` applies it later, in order)."""
        r = self._get(conn, identity_id)
        values = {
            "verified": r.status == "verified",
            "frozen": bool(r.frozen),
            "expiry_s": _expiry_s(r.document_expiry),
            "suitability_level": r.suitability_level or 0,
            "tier": r.credit_tier,
        }
        if self.writer is None:
            conn.execute(
                chain_outbox.insert().values(
                    address=r.address, roles=r.roles, created_at=utcnow(), **values
                )
            )
            return
        self.writer.set_identity(r.address, roles=IdentityRole(r.roles), **values)

    def relay_outbox(self, writer: IdentityWriter, *, limit: int = 1000) -> int:
        """Apply queued on-chain identity writes in order; each is marked sent once applied.
        A failure stops the relay; the rest stay queued (set_identity is idempotent)."""
        sent = 0
        with self.engine.connect() as conn:
            pending = conn.execute(
                sa.select(chain_outbox)
                .where(chain_outbox.c.sent_at.is_(None))
                .order_by(chain_outbox.c.id)
                .limit(limit)
            ).all()
        for row in pending:
            writer.set_identity(
                row.address,
                verified=row.verified,
                frozen=row.frozen,
                expiry_s=row.expiry_s,
                suitability_level=row.suitability_level,
                roles=IdentityRole(row.roles),
                tier=row.tier,
            )
            with self.engine.begin() as conn:
                conn.execute(
                    chain_outbox.update()
                    .where(chain_outbox.c.id == row.id, chain_outbox.c.sent_at.is_(None))
                    .values(sent_at=utcnow())
                )
            sent += 1
        return sent


def _validate_application(app: KycApplication, today: date) -> tuple[kyc.ResidentId, str, str, str]:
    """Validate every field; report all problems at once."""
    errors: list[dict[str, Any]] = []
    out: dict[str, Any] = {}
    checks = {
        "address": lambda: _validate_address(app.address),
        "name": lambda: kyc.validate_name(app.name),
        "id_number": lambda: kyc.validate_resident_id(app.id_number, today=today),
        "phone": lambda: kyc.validate_phone(app.phone),
        "bank_card": lambda: kyc.validate_bank_card(app.bank_card),
        "document_expiry": lambda: kyc.validate_document_expiry(app.document_expiry, today=today),
    }
    for key, check in checks.items():
        try:
            out[key] = check()
        except InvalidInput as exc:
            errors.append({"field": exc.details.get("field", key), "reason": exc.message})
    if not app.roles:
        errors.append({"field": "roles", "reason": "roles: at least one role is needed"})
    if errors:
        message = "; ".join(e["reason"] for e in errors)
        raise InvalidInput(f"KYC application rejected: {message}", errors=errors)
    return out["id_number"], out["bank_card"], out["phone"], out["name"]


def _validate_address(address: str) -> str:
    a = (address or "").strip()
    if len(a) != _ADDRESS_LEN or not a.startswith("0x"):
        raise InvalidInput("address: must be 0x followed by 40 hex digits", field="address")
    try:
        int(a[2:], 16)
    except ValueError:
        raise InvalidInput(
            "address: must be 0x followed by 40 hex digits", field="address"
        ) from None
    return a.lower()


def _entry_data(e: ListEntry) -> dict[str, Any]:
    return {
        "names": [[n.name, n.quality] for n in e.names],
        "birth_dates": [
            [b.exact.isoformat() if b.exact else None, b.year_from, b.year_to]
            for b in e.birth_dates
        ],
        "programs": list(e.programs),
        "reference": e.reference,
    }


def _entry_from_data(list_id: str, entry_id: str, kind: Any, data: dict[str, Any]) -> ListEntry:
    return ListEntry(
        list_id,
        entry_id,
        kind,
        tuple(ListName(n, q) for n, q in data["names"]),
        tuple(
            BirthDate(date.fromisoformat(x) if x else None, y0, y1)
            for x, y0, y1 in data["birth_dates"]
        ),
        tuple(data["programs"]),
        data["reference"],
    )
