"""The onboarding pipeline at the service level (writer in memory) and the officer's CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crowdleverage.audit.log import AuditLog
from crowdleverage.cli import app
from crowdleverage.compliance import samples
from crowdleverage.compliance.onboarding import Application, OnboardingService
from crowdleverage.compliance.ports import IdentityRole, InMemoryIdentityRegistry
from crowdleverage.compliance.repository import make_engine
from crowdleverage.compliance.service import ComplianceService
from crowdleverage.config import SHIPPED_DATA
from crowdleverage.credit.model import ModelRegistry
from crowdleverage.credit.policy import Behaviour
from crowdleverage.credit.registry import SHIPPED_MODELS
from crowdleverage.credit.samples import pick

C5 = {"age": 4, "income": 3, "assets": 3, "experience": 3, "knowledge": 2, "horizon": 2, "loss": 3}
CSV = SHIPPED_DATA / "credit" / "credit_taiwan_default_30000_uci.csv"
MODEL = ModelRegistry(SHIPPED_MODELS).load()


def _app(n: int, role: str, band: tuple[float, float] | None) -> Application:
    return Application(
        user_ref=str(n), role=role, address=f"0x{n:040x}", name="周明",
        id_number=samples.resident_id(n), phone=samples.phone(n), bank_card=samples.bank_card(n),
        document_expiry=dt.date.today() + dt.timedelta(days=900), questionnaire=C5,
        financial_assets_fen=500_000_000, avg_annual_income_fen=60_000_000, experience_years=5,
        credit=pick(MODEL, CSV, [band])[0] if band else {},
    )  # fmt: skip


def _pipeline(url: str, writer: Any, audit: Any = None) -> OnboardingService:
    return OnboardingService(
        ComplianceService(make_engine(url), writer), models=ModelRegistry(SHIPPED_MODELS),
        audit=audit,
    )  # fmt: skip


def test_decisions_write_identity_level_and_tier(tmp_path: Path) -> None:
    registry = InMemoryIdentityRegistry()
    svc = _pipeline(f"sqlite:///{tmp_path / 'c.db'}", registry)

    investor = svc.apply(_app(1, "investor", None))
    best = svc.apply(_app(2, "borrower", (0.0, 0.04)))
    referred = svc.apply(_app(3, "borrower", (0.15, 0.30)))

    assert investor["status"] == "approved" and investor["tier"] is None
    assert registry.records[f"0x{1:040x}"].roles == IdentityRole.INVESTOR
    rec = registry.records[f"0x{2:040x}"]
    assert (best["status"], best["tier"], rec.tier, rec.suitability_level) == ("approved", 3, 3, 5)
    assert best["model_version"] == MODEL.version and best["pd"] < 0.04
    assert referred["status"] == "referred" and f"0x{3:040x}" not in registry.records

    reviewed = svc.review(best["application_id"], Behaviour(liquidations=1), actor="officer")

    assert reviewed["tier"] == 1 and registry.records[f"0x{2:040x}"].tier == 1
    assert reviewed["steps"][-1]["step"] == "review"


def test_the_officer_decides_referrals_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROWDLEV_DATA_DIR", str(tmp_path))
    engine = make_engine(f"sqlite:///{(tmp_path / 'custody.db').resolve()}")
    audit = AuditLog(engine, tmp_path)
    audit.create_schema()
    svc = _pipeline(str(engine.url), None, audit)
    svc.apply(_app(7, "borrower", (0.15, 0.30)))
    runner = CliRunner()

    queued = runner.invoke(app, ["onboarding", "queue", "--json"])
    refused = runner.invoke(
        app, ["onboarding", "override", "7", "--outcome", "approve", "--reason", "ok", "--json"]
    )
    done = runner.invoke(app, [
        "onboarding", "override", "7", "--outcome", "approve", "--tier", "1",
        "--reason", "guarantor documents checked", "--actor", "officer-li", "--json",
    ])  # fmt: skip

    assert [r["user_ref"] for r in json.loads(queued.stdout)] == ["7"]
    assert refused.exit_code == 2
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["status"] == "approved"
    entries = [(e.actor, e.action) for e in audit.entries()]
    assert ("onboarding", "onboarding_referred") in entries
    assert ("officer-li", "onboarding_override") in entries
    assert svc.compliance.identity(svc.latest_for("7")["identity_id"])["credit_tier"] == 1
