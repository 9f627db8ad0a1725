"""One onboarding pipeline, used by the API, the CLI and the demo:

    application → KYC checks → sanctions screening → suitability C1–C5 → credit score
      → decision (approve with tier and rate | refer to the credit officer | decline)
      → identity, level, tier and expiry on chain (ComplianceService → IdentityWriter)

Every field of an application is validated first and all problems are reported at once
(InvalidInput, HTTP 422 / exit 2); nothing is stored then. KYC (stdnum checks, documents by
hash) and screening are `ComplianceService.onboard`: a sanctions hit opens a case and blocks
the application. Suitability is the questionnaire (`assess_suitability`). Borrowers are scored
by the credit model in use (its version is stored with the decision) and decided by the
`CreditPolicy`; investors need no credit decision. An approval verifies the identity with the
borrower's tier; the chain write goes through the compliance writer, or, with none, into the
outbox that the platform process relays (`relay`). Each step's result and reasons (English
and zh-CN) are stored; the applicant sees them without the screening details (no tipping off),
the compliance officer sees everything and can override a referral with a written reason,
which goes to the audit log with every decision.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from crowdleverage.compliance import suitability
from crowdleverage.compliance.ports import IdentityRole, IdentityWriter
from crowdleverage.compliance.repository import TS, as_utc, metadata, new_id, utcnow
from crowdleverage.compliance.service import (
    ComplianceService,
    Document,
    KycApplication,
    _validate_application,
)
from crowdleverage.credit.model import CreditModel, ModelRegistry
from crowdleverage.credit.monitor import population_report
from crowdleverage.credit.policy import Behaviour, CreditPolicy, Reason
from crowdleverage.domain.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    RuleViolation,
)
from crowdleverage.domain.params import TIERS

MIN_PSI_SAMPLE = 100  # fewer scored applications say nothing about the population
ROLES = {"investor": IdentityRole.INVESTOR, "borrower": IdentityRole.BORROWER}

applications = sa.Table(
    "onboarding_applications",
    metadata,
    sa.Column("application_id", sa.String(40), primary_key=True),
    sa.Column("user_ref", sa.String(64), nullable=False, index=True),  # the platform's user
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("address", sa.String(42), nullable=False),
    sa.Column("identity_id", sa.String(40), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # blocked|approved|referred|declined
    sa.Column("tier", sa.Integer, nullable=True),
    sa.Column("spread_bps", sa.Integer, nullable=True),
    sa.Column("rate_bps", sa.Integer, nullable=True),  # the tier's rate + the spread
    sa.Column("pd", sa.Float, nullable=True),  # analytics: a float is fine here
    sa.Column("points", sa.Integer, nullable=True),
    sa.Column("model_version", sa.String(96), nullable=True),  # the model that scored it
    sa.Column("suitability_level", sa.Integer, nullable=True),
    sa.Column("steps", sa.JSON, nullable=False),
    sa.Column("credit_inputs", sa.JSON, nullable=True),  # for population stability (PSI)
    sa.Column("override", sa.JSON, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("decided_at", TS, nullable=False),
)


class AuditSink(Protocol):
    def append(self, actor: str, action: str, details: dict[str, Any]) -> Any: ...


@dataclass(frozen=True, slots=True)
class Application:
    user_ref: str
    role: str  # "investor" | "borrower"
    address: str  # the applicant's on-chain account (given by the platform, not the user)
    name: str
    id_number: str
    phone: str
    bank_card: str
    document_expiry: date
    questionnaire: dict[str, int]
    financial_assets_fen: int
    avg_annual_income_fen: int
    experience_years: int
    credit: dict[str, Any] = field(default_factory=dict)  # the credit model's inputs
    documents: tuple[Document, ...] = ()


def _step(step: str, result: str, *reasons: Reason, **extra: Any) -> dict[str, Any]:
    return {"step": step, "result": result, "reasons": [r.to_dict() for r in reasons], **extra}


class OnboardingService:
    def __init__(
        self,
        compliance: ComplianceService,
        *,
        models: ModelRegistry | None,
        policy: CreditPolicy | None = None,
        audit: AuditSink | None = None,
        model_version: str | None = None,
    ) -> None:
        self.compliance = compliance
        self.engine = compliance.engine
        self.models = models
        self.policy = policy or CreditPolicy()
        self.audit = audit
        self.model_version = model_version
        self._model: CreditModel | None = None
        applications.create(self.engine, checkfirst=True)

    def model(self) -> CreditModel:
        if self._model is None:
            if self.models is None:
                raise RuleViolation("no credit model registry: borrowers cannot be scored")
            self._model = self.models.load(self.model_version)
        return self._model

    # ── the pipeline ────────────────────────────────────────────────────────────────────────

    def apply(self, app: Application, *, now: datetime | None = None) -> dict[str, Any]:
        at = now or utcnow()
        frame = self._validate(app, at.date())
        steps = [_step("validation", "passed", Reason("fields_ok", "every field is valid",
                                                      "所有字段校验通过"))]  # fmt: skip
        kyc_app = KycApplication(
            app.address, app.name, app.id_number, app.phone, app.bank_card,
            app.document_expiry, ROLES[app.role], app.documents,
        )  # fmt: skip
        onboarded = self.compliance.onboard(kyc_app, now=at)
        ident = self.compliance.identity(onboarded.identity_id)
        steps.append(_step("kyc", "passed", Reason(
            "kyc_ok", "resident id, bank card and phone checked; documents stored by hash",
            "身份证、银行卡、手机号核验通过;证件以哈希存档",
        ), id_number=ident["id_number_masked"], bank_card=ident["bank_card_masked"]))  # fmt: skip
        screen = onboarded.screening
        rec: dict[str, Any] = {
            "application_id": new_id("onb"), "user_ref": app.user_ref, "role": app.role,
            "address": app.address.lower(), "identity_id": onboarded.identity_id,
            "tier": None, "spread_bps": None, "rate_bps": None, "pd": None, "points": None,
            "model_version": None, "suitability_level": None, "credit_inputs": None,
            "override": None, "version": 1, "created_at": at, "decided_at": at,
        }  # fmt: skip
        if onboarded.blocked:
            top = screen.hits[0]
            steps.append(_step("sanctions", "hit", Reason(
                "sanctions_hit",
                f"possible sanctions match ({top.list_id} {top.reference or top.entry_id}, "
                f"score {top.score}): case {onboarded.case_id} opened, application blocked",
                f"疑似命中制裁名单(评分 {top.score}):已立案 {onboarded.case_id},申请暂停",
            ), case_id=onboarded.case_id, top_score=screen.top_score))  # fmt: skip
            return self._store({**rec, "status": "blocked", "steps": steps}, "blocked")
        clear = Reason("no_match", "no sanctions list match", "未命中制裁名单")
        steps.append(_step("sanctions", "clear", clear, top_score=screen.top_score))
        suit = self.compliance.assess_suitability(
            onboarded.identity_id, app.questionnaire,
            financial_assets_fen=app.financial_assets_fen,
            avg_annual_income_fen=app.avg_annual_income_fen,
            experience_years=app.experience_years, now=at,
        )  # fmt: skip
        level = int(suit["level"][1:])
        rec["suitability_level"] = level
        qual = "qualified investor" if suit["qualified_investor"] else "not a qualified investor"
        qual_zh = "合格投资者" if suit["qualified_investor"] else "非合格投资者"
        steps.append(_step("suitability", suit["level"], Reason(
            "risk_level", f"risk tolerance {suit['level']} (score {suit['score']}), {qual}",
            f"风险承受能力 {suit['level']}(得分 {suit['score']}),{qual_zh}",
        ), products=suit["products"]))  # fmt: skip
        if app.role == "investor":
            steps.append(_step("credit", "not_applicable", Reason(
                "investor", "investors are not credit-scored", "出资人无需信用评分")))  # fmt: skip
            self.compliance.verify(onboarded.identity_id, actor="onboarding", now=at)
            steps.append(self._chain_step())
            return self._store({**rec, "status": "approved", "steps": steps}, "approved")
        assert frame is not None, "dev: a borrower's credit inputs were validated"
        model = self.model()
        score = model.score_frame(frame)[0]
        rec.update(pd=score.pd, points=score.points, model_version=score.version,
                   credit_inputs=app.credit)  # fmt: skip
        steps.append(_step("credit", f"PD {score.pd * 100:.1f}%", *[
            Reason(f"factor:{r['feature']}", f"{r['en']} (adverse)", f"{r['zh']}(不利因素)")
            for r in score.reasons
        ], pd=round(score.pd, 6), points=score.points, model=score.model,
            model_version=score.version))  # fmt: skip
        decision = self.policy.decide(score.pd, level, qualified=suit["qualified_investor"])
        rec.update(tier=decision.tier, spread_bps=decision.spread_bps,
                   rate_bps=_rate(decision.tier, decision.spread_bps))  # fmt: skip
        steps.append(_step("decision", decision.outcome, *decision.reasons,
                           tier=decision.tier, rate_bps=rec["rate_bps"]))  # fmt: skip
        if decision.outcome == "approve":
            self.compliance.verify(
                onboarded.identity_id, actor="onboarding", now=at, credit_tier=decision.tier
            )
            steps.append(self._chain_step())
            return self._store({**rec, "status": "approved", "steps": steps}, "approved")
        if decision.outcome == "decline":
            why = "; ".join(r.en for r in decision.reasons)
            self.compliance.reject(onboarded.identity_id, actor="onboarding", reason=why, now=at)
            return self._store({**rec, "status": "declined", "steps": steps}, "declined")
        return self._store({**rec, "status": "referred", "steps": steps}, "referred")

    def override(
        self,
        application_id: str,
        *,
        actor: str,
        outcome: str,
        reason: str,
        tier: int | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """The compliance officer decides a referred application, with a written reason."""
        at = now or utcnow()
        errors = []
        if outcome not in ("approve", "decline"):
            errors.append({"field": "outcome", "reason": "must be approve or decline"})
        if len(reason.strip()) < 10:
            errors.append({"field": "reason", "reason": "a written reason (10+ characters)"})
        if errors:
            raise InvalidInput("override refused: " + "; ".join(e["reason"] for e in errors),
                               errors=errors)  # fmt: skip
        rec = self.get(application_id)
        if rec["status"] != "referred":
            raise Conflict(f"application {application_id} is {rec['status']}, not referred")
        level = rec["suitability_level"] or 0
        cap = self.policy.suitability_cap.get(level, 0)
        new_tier = None
        if outcome == "approve" and rec["role"] == "borrower":
            if tier is None or tier not in TIERS:
                raise InvalidInput("approving a borrower needs a tier 1..3", field="tier")
            if tier > cap:
                raise RuleViolation(
                    f"tier {tier} exceeds what risk level C{level} allows ({cap}); "
                    "suitability cannot be overridden"
                )
            new_tier = tier
        if outcome == "approve":
            self.compliance.verify(rec["identity_id"], actor=actor, now=at, credit_tier=new_tier)
        else:
            self.compliance.reject(rec["identity_id"], actor=actor, reason=reason, now=at)
        note = {"actor": actor, "reason": reason.strip(), "outcome": outcome, "tier": new_tier,
                "at": at.isoformat(), "policy_outcome": "refer"}  # fmt: skip
        steps = [*rec["steps"], _step("override", outcome, Reason(
            "officer_override", f"decided by the compliance officer: {reason.strip()}",
            f"合规人员人工决定:{reason.strip()}"), actor=actor, tier=new_tier)]  # fmt: skip
        if outcome == "approve":
            steps.append(self._chain_step())
        values = {
            "status": "approved" if outcome == "approve" else "declined", "tier": new_tier,
            "rate_bps": _rate(new_tier, rec["spread_bps"]), "override": note, "steps": steps,
            "version": rec["version"] + 1, "decided_at": at,
        }  # fmt: skip
        with self.engine.begin() as conn:
            done = conn.execute(
                applications.update()
                .where(
                    applications.c.application_id == application_id,
                    applications.c.version == rec["version"],
                )
                .values(**values)
            )
            if done.rowcount != 1:
                raise Conflict(f"application {application_id} changed concurrently; retry")
        self._audit(actor, "onboarding_override", {**rec, **values, "reason": reason.strip()})
        return self.get(application_id)

    def review(
        self, application_id: str, signals: Behaviour, *, actor: str, now: datetime | None = None
    ) -> dict[str, Any]:
        """Re-tier an approved borrower from the platform's behavioural signals."""
        at = now or utcnow()
        rec = self.get(application_id)
        if rec["status"] != "approved" or rec["role"] != "borrower" or rec["tier"] is None:
            raise Conflict(f"application {application_id} is not an approved borrower")
        d = self.policy.review(rec["tier"], rec["spread_bps"] or 0, signals)
        new_tier = d.tier if d.outcome == "approve" else 1
        assert new_tier is not None, "dev: review keeps a tier"
        if new_tier != rec["tier"]:
            self.compliance.set_credit_tier(rec["identity_id"], new_tier, now=at)
        steps = [*rec["steps"], _step("review", d.outcome, *d.reasons, tier=new_tier,
                                      signals=dataclasses.asdict(signals))]  # fmt: skip
        values = {"tier": new_tier, "spread_bps": d.spread_bps,
                  "rate_bps": _rate(new_tier, d.spread_bps), "steps": steps,
                  "version": rec["version"] + 1,
                  "status": "referred" if d.outcome == "refer" else "approved"}  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(applications.update().where(
                applications.c.application_id == application_id,
                applications.c.version == rec["version"]).values(**values))  # fmt: skip
        self._audit(actor, "credit_review", {**rec, **values})
        return self.get(application_id)

    def relay(self, writer: IdentityWriter) -> int:
        """Apply the queued identity writes on chain (called by the platform process)."""
        return self.compliance.relay_outbox(writer)

    # ── reads ───────────────────────────────────────────────────────────────────────────────

    def get(self, application_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(applications).where(applications.c.application_id == application_id)
            ).first()
        if row is None:
            raise NotFound(f"no onboarding application {application_id}")
        return _plain(row)

    def latest_for(self, user_ref: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(applications)
                .where(applications.c.user_ref == user_ref)
                .order_by(applications.c.created_at.desc(), applications.c.application_id.desc())
            ).first()
        if row is None:
            raise NotFound(f"user {user_ref} has no onboarding application")
        return _plain(row)

    def queue(self, status: str | None = "referred", limit: int = 200) -> list[dict[str, Any]]:
        q = sa.select(applications).order_by(applications.c.created_at).limit(limit)
        if status:
            q = q.where(applications.c.status == status)
        with self.engine.connect() as conn:
            return [_plain(r) for r in conn.execute(q)]

    def population(self, *, limit: int = 5000) -> dict[str, Any]:
        """PSI of the model in use: its recent applications against its training data."""
        model = self.model()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(applications.c.credit_inputs)
                .where(applications.c.model_version == model.version)
                .order_by(applications.c.created_at.desc())
                .limit(limit)
            ).all()
        if len(rows) < MIN_PSI_SAMPLE:
            return {"model_version": model.version, "n": len(rows), "status": "too_few",
                    "min_n": MIN_PSI_SAMPLE, "alerts": []}  # fmt: skip
        frame = model.frame_of([r[0] for r in rows])
        report = population_report(
            model.reference, model.scorecard, frame, model.probability(frame)
        )
        return {"model_version": model.version, **report}

    # ── internals ───────────────────────────────────────────────────────────────────────────

    def _validate(self, app: Application, today: date) -> Any:
        """Every field at once: identity, role, questionnaire, financial facts, credit inputs."""
        errors: list[dict[str, Any]] = []
        if app.role not in ROLES:
            errors.append({"field": "role", "reason": "must be investor or borrower"})
        kyc_app = KycApplication(
            app.address, app.name, app.id_number, app.phone, app.bank_card,
            app.document_expiry, ROLES.get(app.role, IdentityRole.INVESTOR),
        )  # fmt: skip
        try:
            _validate_application(kyc_app, today)
        except InvalidInput as exc:
            errors.extend(exc.details.get("errors", []))
        for q in suitability.QUESTIONNAIRE:
            v = app.questionnaire.get(q.qid) if isinstance(app.questionnaire, dict) else None
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < len(q.options):
                errors.append({"field": f"questionnaire.{q.qid}",
                               "reason": f"answer 0..{len(q.options) - 1}"})  # fmt: skip
        for name in ("financial_assets_fen", "avg_annual_income_fen", "experience_years"):
            v = getattr(app, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                errors.append({"field": name, "reason": "a non-negative integer"})
        frame = None
        if app.role == "borrower":
            try:
                frame = self.model().frame_of([app.credit])
            except InvalidInput as exc:
                for e in exc.details.get("errors", []):
                    errors.append({"field": f"credit.{e['field']}", "reason": e["reason"]})
        if errors:
            shown = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:8])
            raise InvalidInput(f"application refused: {shown}", errors=errors)
        return frame

    def _chain_step(self) -> dict[str, Any]:
        how = "queued" if self.compliance.writer is None else "written"
        return _step("chain", how, Reason(
            "identity_on_chain", f"identity, level, tier and expiry {how} for the chain",
            "身份、风险等级、杠杆档位与有效期已提交上链" if how == "queued"
            else "身份、风险等级、杠杆档位与有效期已上链"))  # fmt: skip

    def _store(self, rec: dict[str, Any], action: str) -> dict[str, Any]:
        with self.engine.begin() as conn:
            conn.execute(applications.insert().values(**rec))
        self._audit("onboarding", f"onboarding_{action}", rec)
        return self.get(rec["application_id"])

    def _audit(self, actor: str, action: str, rec: dict[str, Any]) -> None:
        if self.audit is None:
            return
        keep = ("application_id", "user_ref", "role", "status", "tier", "rate_bps",
                "pd", "model_version", "suitability_level", "reason")  # fmt: skip
        details = {k: rec[k] for k in keep if k in rec}
        if details.get("pd") is not None:
            details["pd"] = f"{details['pd']:.6f}"
        self.audit.append(actor, action, details)


def _rate(tier: int | None, spread_bps: int | None) -> int | None:
    if tier is None or spread_bps is None:
        return None
    return TIERS[tier].rate_apr_bps + spread_bps


def _plain(row: sa.Row[Any]) -> dict[str, Any]:
    d = dict(row._mapping)
    for k in ("created_at", "decided_at"):
        d[k] = as_utc(d[k]).isoformat()
    return d


def applicant_view(rec: dict[str, Any]) -> dict[str, Any]:
    """What the applicant sees: each step's result and reasons, without screening details
    (a possible sanctions match is shown as a compliance review: no tipping off)."""
    steps = []
    for s in rec["steps"]:
        if s["step"] == "sanctions" and s["result"] == "hit":
            steps.append(_step("sanctions", "review", Reason(
                "compliance_review", "your application is under compliance review",
                "您的申请正在合规审核中")))  # fmt: skip
            continue
        steps.append({"step": s["step"], "result": s["result"], "reasons": s["reasons"]})
    status = "under_review" if rec["status"] == "blocked" else rec["status"]
    return {
        "application_id": rec["application_id"], "status": status, "tier": rec["tier"],
        "rate_bps": rec["rate_bps"], "decided_at": rec["decided_at"], "steps": steps,
    }  # fmt: skip
