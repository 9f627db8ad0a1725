"""KYC onboarding and status workflow: validation, screening, cases, on-chain writes, expiry,
rescreening after a list update. SQLite by default; one run on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from crowdleverage.compliance.cases import CaseStatus, Resolution
from crowdleverage.compliance.ports import IdentityRole, InMemoryIdentityRegistry
from crowdleverage.compliance.repository import make_engine
from crowdleverage.compliance.service import ComplianceService, Document, KycApplication
from crowdleverage.domain.errors import ComplianceBlock, Conflict, DataFileError, InvalidInput

DATA = Path(__file__).resolve().parents[2] / "data" / "compliance"
UN_XML = DATA / "un_sc_consolidated_2018-10-29.xml"
SDN = Path(__file__).parent / "fixtures" / "sdn_sample.csv"
NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

INVESTOR = "0x" + "11" * 20
APPLICANT = "0x" + "22" * 20


def application(address: str = INVESTOR, **overrides: object) -> KycApplication:
    values: dict[str, object] = {
        "address": address,
        "name": "王小明",
        "id_number": "110105199001011232",
        "phone": "13800138000",
        "bank_card": "6222021234567890128",
        "document_expiry": date(2030, 6, 30),
        "roles": IdentityRole.INVESTOR,
        "documents": (Document("id_front", b"front-scan"), Document("id_back", b"back-scan")),
    }
    values.update(overrides)
    return KycApplication(**values)  # type: ignore[arg-type]


@pytest.fixture
def registry() -> InMemoryIdentityRegistry:
    return InMemoryIdentityRegistry()


@pytest.fixture
def svc(tmp_path: Path, registry: InMemoryIdentityRegistry) -> ComplianceService:
    service = ComplianceService(make_engine(f"sqlite:///{tmp_path / 'c.db'}"), registry)
    service.load_list(UN_XML, now=NOW)
    return service


def run_happy_path(svc: ComplianceService, registry: InMemoryIdentityRegistry) -> None:
    result = svc.onboard(application(), now=NOW)
    assert result.status == "pending" and not result.blocked
    assert registry.records == {}  # nothing on chain before verification

    svc.verify(result.identity_id, actor="officer-li", now=NOW)

    ident = svc.identity(result.identity_id)
    assert ident["status"] == "verified"
    assert ident["id_number_masked"] == "110105********1232"
    assert ident["bank_card_masked"] == "622202*********0128"
    now_s = int(NOW.timestamp())
    assert registry.is_active(INVESTOR, now_s)
    assert registry.records[INVESTOR].roles == IdentityRole.INVESTOR
    assert len(svc.document_hashes(result.identity_id)) == 2


def test_clean_applicant_is_verified_and_written_on_chain(
    svc: ComplianceService, registry: InMemoryIdentityRegistry
) -> None:
    run_happy_path(svc, registry)


def test_suitability_assessment_is_stored_and_written_on_chain(
    svc: ComplianceService, registry: InMemoryIdentityRegistry
) -> None:
    ident = svc.onboard(application(), now=NOW).identity_id
    svc.verify(ident, actor="officer-li", now=NOW)
    answers = {
        "age": 4,
        "income": 3,
        "assets": 2,
        "experience": 3,
        "knowledge": 2,
        "horizon": 2,
        "loss": 3,
    }  # 10+12+12+16+14+10+22 = 96 -> C5

    out = svc.assess_suitability(
        ident,
        answers,
        financial_assets_fen=500_000_000,
        avg_annual_income_fen=0,
        experience_years=6,
        now=NOW,
    )

    assert out["level"] == "C5" and out["qualified_investor"] is True
    assert out["max_leverage_tier"] == 3
    assert out["products"] == ["junior", "margin_t1", "margin_t2", "margin_t3", "senior"]
    assert registry.records[INVESTOR].suitability_level == 5
    assert svc.identity(ident)["suitability_level"] == 5


def test_sanctioned_applicant_is_blocked_with_a_case(
    svc: ComplianceService, registry: InMemoryIdentityRegistry
) -> None:
    # 阿不都·哈克 (QDi.268), born 1971-10-10 as his id number says.
    result = svc.onboard(
        application(APPLICANT, name="阿不都·哈克", id_number="110105197110100016"), now=NOW
    )

    assert result.blocked and result.case_id is not None
    assert result.screening.hits[0].entry_id == "2854925"
    assert any("date of birth matches" in r for r in result.screening.hits[0].reasons)
    with pytest.raises(ComplianceBlock, match="open sanctions case"):
        svc.verify(result.identity_id, actor="officer-li", now=NOW)
    assert APPLICANT not in registry.records

    svc.resolve_case(result.case_id, Resolution.CONFIRMED, actor="officer-li", note="same DOB")

    assert svc.identity(result.identity_id)["status"] == "rejected"
    assert APPLICANT not in registry.records


def test_false_positive_case_unblocks_verification(
    svc: ComplianceService, registry: InMemoryIdentityRegistry
) -> None:
    result = svc.onboard(
        application(APPLICANT, name="Ri Won Ho", id_number="110105198505054565"), now=NOW
    )
    assert result.blocked and result.case_id is not None

    svc.resolve_case(
        result.case_id, Resolution.FALSE_POSITIVE, actor="officer-li", note="DOB 1985 vs 1964"
    )
    svc.verify(result.identity_id, actor="officer-li", now=NOW)

    assert registry.is_active(APPLICANT, int(NOW.timestamp()))


def test_bad_application_reports_every_problem_and_writes_nothing(
    svc: ComplianceService,
) -> None:
    bad = application(id_number="110105199001011233", bank_card="6222021234567890129", phone="123")

    with pytest.raises(InvalidInput) as err:
        svc.onboard(bad, now=NOW)

    fields = [e["field"] for e in err.value.details["errors"]]
    assert fields == ["id_number", "phone", "bank_card"]
    assert "check digit is 3, expected 2" in err.value.message
    assert svc.cases() == []
    with svc.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from compliance_identities")).scalar() == 0


def test_duplicate_person_or_address_is_a_conflict(svc: ComplianceService) -> None:
    svc.onboard(application(), now=NOW)

    with pytest.raises(Conflict):
        svc.onboard(application(APPLICANT), now=NOW)  # same id number, other address
    with pytest.raises(Conflict):
        svc.onboard(application(id_number="31010419800202789X"), now=NOW)  # same address


def test_expiry_and_freeze_update_the_chain(
    svc: ComplianceService, registry: InMemoryIdentityRegistry
) -> None:
    result = svc.onboard(application(document_expiry=date(2026, 3, 1)), now=NOW)
    svc.verify(result.identity_id, actor="officer-li", now=NOW)

    svc.set_frozen(result.identity_id, True, actor="officer-li", reason="AML case", now=NOW)
    assert not registry.is_active(INVESTOR, int(NOW.timestamp()))
    svc.set_frozen(result.identity_id, False, actor="officer-li", reason="cleared", now=NOW)
    assert registry.is_active(INVESTOR, int(NOW.timestamp()))

    later = datetime(2026, 3, 2, tzinfo=UTC)
    assert svc.expire_due(now=later) == [result.identity_id]
    assert svc.identity(result.identity_id)["status"] == "expired"
    assert registry.records[INVESTOR].verified is False
    assert svc.expire_due(now=later) == []  # once


def test_outbox_mode_queues_writes_and_relays_them_in_order(tmp_path: Path) -> None:
    svc = ComplianceService(make_engine(f"sqlite:///{tmp_path / 'o.db'}"), None)
    ident = svc.onboard(application(), now=NOW).identity_id
    svc.verify(ident, actor="officer-li", now=NOW)
    svc.set_frozen(ident, True, actor="officer-li", reason="AML case", now=NOW)
    registry = InMemoryIdentityRegistry()

    assert svc.relay_outbox(registry) == 2
    assert svc.relay_outbox(registry) == 0  # each write once

    assert registry.writes == 2
    assert registry.records[INVESTOR].verified and registry.records[INVESTOR].frozen


def test_chain_failure_rolls_back_the_status(svc: ComplianceService) -> None:
    class FailingRegistry(InMemoryIdentityRegistry):
        def set_identity(self, address: str, **kw: object) -> None:  # type: ignore[override]
            raise ConnectionError("node down")

    svc.writer = FailingRegistry()
    result = svc.onboard(application(), now=NOW)

    with pytest.raises(ConnectionError):
        svc.verify(result.identity_id, actor="officer-li", now=NOW)

    assert svc.identity(result.identity_id)["status"] == "pending"


def test_list_update_rescreens_and_freezes_verified_identity(
    svc: ComplianceService, registry: InMemoryIdentityRegistry
) -> None:
    # A verified investor whose name appears on a newly loaded list (SDN fixture: CHEN, Haoran).
    result = svc.onboard(application(name="陈浩然", id_number="31010419800202789X"), now=NOW)
    svc.verify(result.identity_id, actor="officer-li", now=NOW)
    assert registry.is_active(INVESTOR, int(NOW.timestamp()))

    loaded = svc.load_list(SDN, now=NOW)
    again = svc.load_list(SDN, now=NOW)

    assert loaded.created and loaded.rescreened == 1 and len(loaded.new_cases) == 1
    assert not again.created  # the same file loads once
    assert svc.identity(result.identity_id)["frozen"] is True
    assert not registry.is_active(INVESTOR, int(NOW.timestamp()))
    lists = {x["list"] for x in svc.loaded_lists()}
    assert lists == {"un", "ofac_sdn"}


def test_bad_list_file_changes_nothing(svc: ComplianceService, tmp_path: Path) -> None:
    bad = tmp_path / "SDN.CSV"
    bad.write_text('1,"X","individual"\n')

    with pytest.raises(DataFileError):
        svc.load_list(bad, now=NOW)

    assert {x["list"] for x in svc.loaded_lists()} == {"un"}


def test_case_audit_trail_and_illegal_moves(svc: ComplianceService) -> None:
    from crowdleverage.compliance import cases as case_repo

    result = svc.onboard(application(name="Ri Won Ho"), now=NOW)
    assert result.case_id is not None
    with svc.engine.begin() as conn:
        case_repo.transition(
            conn, result.case_id, CaseStatus.INVESTIGATING, actor="officer-li", now=NOW
        )
        with pytest.raises(Conflict, match="cannot move to open"):
            case_repo.transition(conn, result.case_id, CaseStatus.OPEN, actor="officer-li")
        with pytest.raises(InvalidInput, match="needs a resolution"):
            case_repo.transition(conn, result.case_id, CaseStatus.CLOSED, actor="officer-li")
        trail = case_repo.history(conn, result.case_id)

    assert [(e["action"], e["from"], e["to"]) for e in trail] == [
        ("open", None, "open"),
        ("investigating", "open", "investigating"),
    ]
    assert trail[1]["actor"] == "officer-li"


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    schema = f"compliance_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = sa.create_engine(pg_url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.postgres
def test_workflow_on_postgresql(pg_engine: sa.Engine, registry: InMemoryIdentityRegistry) -> None:
    svc = ComplianceService(pg_engine, registry)
    svc.load_list(UN_XML, now=NOW)

    run_happy_path(svc, registry)
    blocked = svc.onboard(
        application(APPLICANT, name="Ri Won Ho", id_number="110105196407170010"), now=NOW
    )

    assert blocked.blocked and blocked.case_id is not None
    assert any("date of birth matches 1964-07-17" in r for r in blocked.screening.hits[0].reasons)
    svc.resolve_case(blocked.case_id, Resolution.CONFIRMED, actor="officer-li", note="match")
    assert svc.identity(blocked.identity_id)["status"] == "rejected"
