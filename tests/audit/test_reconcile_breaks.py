"""Reconciliation on the real embedded chain (CashToken, ShareCertificates) against the custody
ledger (SQLite and PostgreSQL): a clean dual record reconciles; every break kind, injected on
the chain side or on the ledger side, is detected, reported (JSON, HTML) and fails closed
(chain paused, money movements refused, resume refused) until a correcting entry makes the
next run clean."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from crowdleverage.audit.reconcile import BreakKind, ChainGateway, Reconciler, ReconReport
from crowdleverage.chain.codes import code_to_chain, ref_to_bytes32
from crowdleverage.chain.deploy import deploy_system
from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import SYSTEM_ACTORS, ActorKeys
from crowdleverage.chain.roles import Role
from crowdleverage.chain.scenario import open_day
from crowdleverage.custody.bank.simulator import SimulatedBank
from crowdleverage.custody.service import CustodyService, Deposit
from crowdleverage.custody.types import new_id
from crowdleverage.domain.errors import ContractRevert, IntegrityFailure, PlatformPaused

ACCOUNT = "6222020200112233445"
SEED = 20160104
INVESTORS = {"INV-0001": "inv1", "INV-0002": "inv2"}
K = BreakKind


class World:
    """Custody + bank + embedded chain, with the bridge steps done by hand so that tests can
    skip or distort one of them."""

    def __init__(self, engine: Engine, chain_dir: Path) -> None:
        keys = ActorKeys.dev(SEED, (*SYSTEM_ACTORS, *INVESTORS.values()))
        self.chain = EmbeddedChain(chain_dir, keys)
        deploy_system(self.chain, chain_dir)
        expires = self.chain.block_time() + 365 * 86_400
        self.custody = CustodyService(engine, ACCOUNT)
        self.custody.setup()
        self.addresses: dict[str, str] = {}
        for n, (inv, actor) in enumerate(INVESTORS.items(), start=1):
            self.custody.register_investor(
                inv, name=actor, virtual_account=f"VA-{n}", reference=f"CLREF{n}",
                payout_account=f"62170{n}",
            )  # fmt: skip
            addr = self.chain.address_of(actor)
            self.chain.send(
                "IdentityRegistry", "register", addr, int(Role.INVESTOR), 3, b"CN", expires,
                actor="compliance",
            )  # fmt: skip
            self.addresses[inv] = addr
        self.bank = SimulatedBank(ACCOUNT)
        self.gateway = ChainGateway(self.chain)
        self.rec = Reconciler(self.custody)
        self.rec.create_schema()

    def deposit(self, investor: str, amount_fen: int, *, mint_fen: int | None = None) -> Deposit:
        n = list(INVESTORS).index(investor) + 1
        self.bank.receive_transfer(
            amount_fen, payer_name=investor, payer_account=f"62170{n}", virtual_account=f"VA-{n}",
            day=date(2026, 3, 2),
        )  # fmt: skip
        report = self.custody.import_statement(self.bank.close_statement(at=datetime(2026, 3, 2)))
        [dep] = report.deposits
        if mint_fen is None or mint_fen > 0:
            self.mint(investor, mint_fen or amount_fen, dep.transfer_id)
        return dep

    def mint(self, investor: str, amount_fen: int, ref: int) -> None:
        self.chain.send("CashToken", "mint", self.addresses[investor], amount_fen,
                        ref_to_bytes32(ref), actor="custodian")  # fmt: skip

    def redeem(self, investor: str, amount_fen: int, *, burn_fen: int | None = None) -> int:
        """Flow 6: burn with a reference, then custody reserves the payout under it."""
        payout_id = new_id()
        if burn_fen != 0:
            self.chain.send("CashToken", "burn", self.addresses[investor], burn_fen or amount_fen,
                            ref_to_bytes32(payout_id), actor="custodian")  # fmt: skip
        self.custody.request_payout(investor, amount_fen, payout_id=payout_id)
        return payout_id

    def run(self, broker_positions: dict[str, int] | None = None) -> ReconReport:
        return self.rec.run(self.gateway, pauser=self.gateway, addresses=self.addresses,
                            broker_positions=broker_positions)  # fmt: skip


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Iterator[World]:
    w = World(engine, tmp_path / "chain")
    w.deposit("INV-0001", 1_000_000)
    w.deposit("INV-0002", 500_000)
    yield w
    w.chain.close()


def kinds(report: ReconReport) -> list[str]:
    return sorted(b.kind.value for b in report.breaks)


def test_clean_dual_record_reconciles(world: World) -> None:
    world.redeem("INV-0001", 200_000)
    pain = world.custody.export_payouts(at=datetime(2026, 3, 3), execution_date=date(2026, 3, 3))
    assert pain is not None
    world.bank.execute_payment_file(pain, day=date(2026, 3, 3))
    world.custody.import_statement(world.bank.close_statement(at=datetime(2026, 3, 3)))
    report = world.run(broker_positions={})
    assert report.ok, report.to_dict()
    assert report.checked["ledger_deposits"] == 2 and report.checked["chain_movements"] == 3
    assert not world.gateway.is_paused()
    world.rec.require_clean()  # no error
    assert world.gateway.cash_supply_fen() == 1_300_000


def _dup_mint_event(w: World) -> None:
    """The chain's event store reports one mint twice (an indexer replaying a log)."""
    w.chain._db.execute(
        "INSERT INTO events(tx_seq, block, tx_hash, contract, address, event, args_json)"
        " SELECT tx_seq, block, tx_hash, contract, address, event, args_json FROM events"
        " WHERE contract = 'CashToken' AND event = 'Minted' ORDER BY seq LIMIT 1"
    )
    w.chain._db.commit()


def _certificates_without_custody(w: World) -> None:
    open_day(w.chain, 1, 1_000)
    w.chain.send("ShareCertificates", "mint", w.addresses["INV-0001"], code_to_chain("600000"),
                 2_000, ref_to_bytes32("fill-x"), actor="broker")  # fmt: skip


SCENARIOS: dict[str, tuple[Callable[[World], object], list[str], dict[str, int] | None]] = {
    "missing_mint/chain: the bridge never minted a booked deposit": (
        lambda w: w.deposit("INV-0001", 70_000, mint_fen=0),
        ["balance_mismatch", "missing_mint", "supply_drift"],
        None,
    ),
    "missing_mint/ledger: an operator credit to an investor was not bridged": (
        lambda w: w.custody.book_correction(
            new_id(), investor_id="INV-0002", amount_fen=5_000, credit_investor=True
        ),
        ["balance_mismatch", "missing_mint", "supply_drift"],
        None,
    ),
    "double_mint/chain: one reference reported by two mint events": (
        _dup_mint_event,
        ["double_mint"],
        None,
    ),
    "amount_mismatch/chain: minted one fen more than booked": (
        lambda w: w.deposit("INV-0002", 30_000, mint_fen=30_001),
        ["amount_mismatch", "balance_mismatch", "supply_drift"],
        None,
    ),
    "amount_mismatch/ledger: payout reserved for more than was burned": (
        lambda w: w.redeem("INV-0001", 110_000, burn_fen=100_000),
        ["amount_mismatch", "balance_mismatch", "supply_drift"],
        None,
    ),
    "unknown_reference/chain: a mint under a reference the ledger never issued": (
        lambda w: w.mint("INV-0001", 9_999, new_id()),
        ["balance_mismatch", "supply_drift", "unknown_reference"],
        None,
    ),
    "unknown_reference/ledger: the payout twin of a burn was voided": (
        lambda w: w.custody.cancel_payout(w.redeem("INV-0002", 40_000)),
        ["balance_mismatch", "supply_drift", "unknown_reference"],
        None,
    ),
    "orphan_ledger_entry/ledger: a payout with no burn": (
        lambda w: w.redeem("INV-0001", 60_000, burn_fen=0),
        ["balance_mismatch", "orphan_ledger_entry", "supply_drift"],
        None,
    ),
    "orphan_ledger_entry/chain: the burn went out under another reference": (
        lambda w: (
            w.chain.send(
                "CashToken",
                "burn",
                w.addresses["INV-0001"],
                25_000,
                ref_to_bytes32(new_id()),
                actor="custodian",
            ),
            w.custody.request_payout("INV-0001", 25_000, payout_id=new_id()),
        ),
        ["orphan_ledger_entry", "unknown_reference"],
        None,
    ),
    "supply_drift/ledger: a chargeback debited custody but burned nothing": (
        lambda w: w.custody.book_correction(
            new_id(), investor_id="INV-0001", amount_fen=1_234, credit_investor=False
        ),
        ["balance_mismatch", "supply_drift"],
        None,
    ),
    "supply_drift/chain: certificates minted with no broker custody": (
        _certificates_without_custody,
        ["supply_drift"],
        {},
    ),
    "supply_drift/broker: broker custody differs from certificate supply": (
        lambda w: None,
        ["supply_drift"],
        {"600000": 500},
    ),
    "balance_mismatch/chain: an on-chain transfer the ledger did not mirror": (
        lambda w: w.chain.send("CashToken", "transfer", w.addresses["INV-0002"], 100, actor="inv1"),
        ["balance_mismatch", "balance_mismatch"],
        None,
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_break_is_detected_reported_and_fails_closed(world: World, scenario: str) -> None:
    inject, expected, positions = SCENARIOS[scenario]
    assert world.run(broker_positions=positions and {}).ok  # clean before the injection
    inject(world)
    report = world.run(broker_positions=positions)
    assert kinds(report) == expected, report.to_dict()
    assert report.paused and world.gateway.is_paused()
    assert bool(world.chain.call("ShareCertificates", "paused"))
    with pytest.raises(ContractRevert, match="cash: paused"):
        world.mint("INV-0001", 1, new_id())
    with pytest.raises(PlatformPaused):
        world.rec.require_clean()
    with pytest.raises(IntegrityFailure):
        world.rec.resume(world.gateway, operator="operator:wang")
    data = report.to_dict()
    assert data["status"] == "breaks" and sorted(b["kind"] for b in data["breaks"]) == expected
    assert json.loads(json.dumps(data)) == data
    page = report.to_html()
    assert all(k in page for k in expected) and "platform paused" in page


def test_correcting_entry_clears_the_break_and_operator_resumes(world: World) -> None:
    dep = world.deposit("INV-0001", 70_000, mint_fen=0)  # missing mint
    stray_ref = new_id()
    world.mint("INV-0002", 8_000, stray_ref)  # unknown reference
    report = world.run()
    assert {b.kind for b in report.breaks} >= {K.MISSING_MINT, K.UNKNOWN_REFERENCE}
    assert world.gateway.is_paused()
    # Operator: refund the unminted deposit to suspense (reversal naming its reference), and
    # recognise the stray mint as a deposit from suspense under the mint's reference.
    world.custody.book_correction(new_id(), investor_id="INV-0001", amount_fen=70_000,
                                  credit_investor=False, reference=dep.transfer_id)  # fmt: skip
    world.custody.book_correction(new_id(), investor_id="INV-0002", amount_fen=8_000,
                                  credit_investor=True, reference=stray_ref)  # fmt: skip
    again = world.run()
    assert again.ok, again.to_dict()
    world.rec.resume(world.gateway, operator="operator:wang")
    assert not world.gateway.is_paused()
    world.rec.require_clean()
    world.mint("INV-0001", 1, new_id())  # the chain accepts money movements again


def test_cli_reconcile_exit_codes(tmp_path: Path) -> None:
    """`crowdlev reconcile` on the settings' default store (SQLite under the data dir)."""
    from crowdleverage.custody.db import make_engine

    data_dir = tmp_path / "data"
    engine = make_engine(f"sqlite:///{data_dir.resolve() / 'custody.db'}")
    data_dir.mkdir()
    w = World(engine, data_dir)
    w.deposit("INV-0001", 10_000)
    w.chain.close()
    engine.dispose()
    runner = CliRunner(env={"CROWDLEV_DATA_DIR": str(data_dir), "CROWDLEV_DATABASE_URL": "",
                            "CROWDLEV_SEED": str(SEED), "CROWDLEV_CHAIN": "embedded"})  # fmt: skip
    from crowdleverage.audit.reconcile_cli import app

    clean = runner.invoke(app, ["reconcile", "--json"])
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["status"] == "clean"
    engine = make_engine(f"sqlite:///{data_dir.resolve() / 'custody.db'}")
    CustodyService(engine, ACCOUNT).book_correction(
        new_id(), investor_id="INV-0001", amount_fen=500, credit_investor=True
    )
    engine.dispose()
    html = tmp_path / "rec.html"
    broken = runner.invoke(app, ["reconcile", "--json", "--html", str(html)])
    assert broken.exit_code == IntegrityFailure.exit_code, broken.output
    out = json.loads(broken.stdout)
    assert out["status"] == "breaks" and out["paused"] is True
    assert {b["kind"] for b in out["breaks"]} == {"missing_mint", "supply_drift"}
    assert "missing_mint" in html.read_text(encoding="utf-8")
