"""End to end through the contracts on the embedded chain: the KYC workflow writes the
IdentityRegistry via ChainIdentityWriter; CashToken enforces it. A sanctioned applicant is
blocked and cannot receive a deposit; a verified investor frozen after an AML alert can no longer
move money or receive deposits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from crowdleverage.chain.codes import ref_to_bytes32
from crowdleverage.chain.deploy import deploy_system
from crowdleverage.chain.embedded import DEFAULT_GENESIS_TIME_S, EmbeddedChain
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.roles import Role
from crowdleverage.chain.scenario import SCENARIO_ACTORS
from crowdleverage.compliance.aml_sources import transactions_from_cash_events
from crowdleverage.compliance.chain_adapter import ChainIdentityWriter
from crowdleverage.compliance.repository import make_engine
from crowdleverage.compliance.service import ComplianceService, KycApplication
from crowdleverage.domain.errors import ComplianceBlock, ContractRevert

UN_XML = Path(__file__).resolve().parents[2] / "data" / "compliance"
UN_XML = UN_XML / "un_sc_consolidated_2018-10-29.xml"
NOW = datetime.fromtimestamp(DEFAULT_GENESIS_TIME_S, UTC) + timedelta(hours=1)
WAN = 1_000_000  # 1万元 in fen


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[EmbeddedChain]:
    keys = ActorKeys.dev(20160104, (*SCENARIO_ACTORS, "applicant"))
    port = EmbeddedChain(tmp_path, keys)
    deploy_system(port, tmp_path)
    yield port
    port.close()


@pytest.fixture
def svc(chain: EmbeddedChain, tmp_path: Path) -> ComplianceService:
    service = ComplianceService(
        make_engine(f"sqlite:///{tmp_path / 'compliance.db'}"), ChainIdentityWriter(chain)
    )
    service.load_list(UN_XML, now=NOW)
    return service


def mint(chain: EmbeddedChain, actor: str, amount_fen: int, ref: str) -> None:
    chain.send(
        "CashToken", "mint", chain.address_of(actor), amount_fen, ref_to_bytes32(ref),
        actor="custodian",
    )  # fmt: skip


def test_sanctioned_applicant_blocked_on_chain(
    chain: EmbeddedChain, svc: ComplianceService
) -> None:
    applicant = chain.address_of("applicant")
    app = KycApplication(
        applicant, "阿不都·哈克", "110105197110100016", "13800138000", "6222021234567890128",
        date(2030, 1, 1),
    )  # fmt: skip

    result = svc.onboard(app, now=NOW)

    assert result.blocked
    with pytest.raises(ComplianceBlock):
        svc.verify(result.identity_id, actor="officer-li", now=NOW)
    assert chain.call("IdentityRegistry", "is_verified", applicant) is False
    with pytest.raises(ContractRevert, match="cash: receiver not verified"):
        mint(chain, "applicant", 10 * WAN, "dep-applicant-1")


def test_verified_investor_frozen_after_alert_cannot_move_money(
    chain: EmbeddedChain, svc: ComplianceService
) -> None:
    investor = chain.address_of("investor")
    pool = chain.address_of("pool")
    chain.send(
        "IdentityRegistry", "register", pool, int(Role.PLATFORM), 3, b"CN",
        chain.block_time() + 86_400 * 365, actor="compliance",
    )  # fmt: skip
    app = KycApplication(
        investor, "王小明", "110105199001011232", "13800138000", "6222021234567890128",
        date(2030, 1, 1),
    )  # fmt: skip
    ident = svc.onboard(app, now=NOW).identity_id
    svc.verify(ident, actor="officer-li", now=NOW)
    assert chain.call("IdentityRegistry", "is_verified", investor) is True
    for i in range(3):  # three deposits just under the 50万元 reporting threshold
        mint(chain, "investor", 48 * WAN, f"dep-{i}")
    chain.send(
        "CashToken", "transfer", pool, 10 * WAN, actor="investor"
    )  # paying the pool: allowed

    # The monitor reads the chain's CashToken events (mints are deposits, the pool payment a
    # subscription); blocks are stamped a day apart for the window arithmetic.
    txns = transactions_from_cash_events(
        chain.events("CashToken"),
        {investor: ident},
        [pool],
        lambda block: NOW + timedelta(days=block % 7),
    )
    assert sorted(t.kind.value for t in txns) == ["deposit", "deposit", "deposit", "subscribe"]
    alerts = svc.monitor(txns, now=NOW)

    assert [a["alert"]["rule"] for a in alerts] == ["structuring"]
    assert svc.identity(ident)["frozen"] is True
    assert chain.call("IdentityRegistry", "is_verified", investor) is False
    with pytest.raises(ContractRevert, match="cash: sender not verified"):
        chain.send("CashToken", "transfer", pool, 10 * WAN, actor="investor")
    with pytest.raises(ContractRevert, match="cash: receiver not verified"):
        mint(chain, "investor", WAN, "dep-after-freeze")

    # Cleared after investigation: unfrozen, active again (the writer is idempotent).
    svc.set_frozen(ident, False, actor="officer-li", reason="source of funds documented")
    chain.send("CashToken", "transfer", pool, WAN, actor="investor")
    assert chain.call("CashToken", "balanceOf", pool) == 11 * WAN


def test_expiry_revokes_on_chain_and_writes_are_idempotent(
    chain: EmbeddedChain, svc: ComplianceService
) -> None:
    investor = chain.address_of("investor")
    app = KycApplication(
        investor, "王小明", "110105199001011232", "13800138000", "6222021234567890128",
        date(2016, 6, 30),
    )  # fmt: skip
    ident = svc.onboard(app, now=NOW).identity_id
    svc.verify(ident, actor="officer-li", now=NOW)
    before = len(chain.events("IdentityRegistry"))

    with svc.engine.begin() as conn:
        svc._write_chain(conn, ident)  # same state again: no transaction sent
    assert len(chain.events("IdentityRegistry")) == before

    assert svc.expire_due(now=datetime(2016, 7, 1, tzinfo=UTC)) == [ident]
    assert chain.call("IdentityRegistry", "is_verified", investor) is False
    assert [e.event for e in chain.events("IdentityRegistry")][-1] == "Revoked"
