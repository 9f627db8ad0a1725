"""Merkle-sum proof of liabilities: every investor's proof verifies against the root and the
total; any tampered balance, salt, sibling hash or sum fails; `crowdlev audit prove` and
`verify-proof` work end to end from the custody ledger."""

from __future__ import annotations

import copy
import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from crowdleverage.audit.cli import app
from crowdleverage.audit.proofs import Leaf, Liabilities, MerkleSumTree, verify_proof
from crowdleverage.custody.bank.simulator import SimulatedBank
from crowdleverage.custody.service import CustodyService
from crowdleverage.domain.errors import Conflict, IntegrityFailure, InvalidInput

LONG = bool(os.environ.get("CROWDLEV_LONG"))


def proof_for(tree: MerkleSumTree, i: int) -> dict[str, Any]:
    root, total = tree.root
    it = tree.items[i]
    leaf = {"investor_id": it.investor_id, "balance_fen": it.balance_fen, "salt": it.salt.hex()}
    return {"root_hash": root.hex(), "total_fen": total, "leaf": leaf, "path": tree.proof(i)}


@settings(max_examples=300 if LONG else 40, deadline=None)
@given(
    balances=st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=40),
    pick=st.integers(min_value=0),
    data=st.data(),
)
def test_every_proof_verifies_and_any_tamper_fails(
    balances: list[int], pick: int, data: st.DataObject
) -> None:
    items = [Leaf(f"INV-{i:04d}", b, bytes([i % 256]) * 32) for i, b in enumerate(balances)]
    tree = MerkleSumTree(items)
    assert tree.root[1] == sum(balances)
    i = pick % len(items)
    proof = proof_for(tree, i)
    assert verify_proof(proof) == (tree.root[0].hex(), sum(balances))

    bad = copy.deepcopy(proof)
    what = data.draw(
        st.sampled_from(["balance", "salt", "id", "sibling_hash", "sibling_sum", "total"])
    )
    if what in ("sibling_hash", "sibling_sum") and not bad["path"]:
        what = "balance"
    if what == "balance":
        bad["leaf"]["balance_fen"] += 1
    elif what == "salt":
        bad["leaf"]["salt"] = (
            "00" * 31 + "01" if bad["leaf"]["salt"] != "00" * 31 + "01" else "ff" * 32
        )
    elif what == "id":
        bad["leaf"]["investor_id"] += "X"
    elif what == "sibling_hash":
        step = bad["path"][data.draw(st.integers(0, len(bad["path"]) - 1))]
        step["hash"] = ("0" if step["hash"][0] != "0" else "1") + step["hash"][1:]
    elif what == "sibling_sum":
        step = bad["path"][data.draw(st.integers(0, len(bad["path"]) - 1))]
        step["sum_fen"] += 1
    else:
        bad["total_fen"] -= 1
    with pytest.raises(IntegrityFailure):
        verify_proof(bad)


def test_negative_sums_and_malformed_proofs_are_refused() -> None:
    tree = MerkleSumTree([Leaf("A", 100, b"a" * 32), Leaf("B", 50, b"b" * 32)])
    proof = proof_for(tree, 0)
    neg = copy.deepcopy(proof)
    neg["path"][0]["sum_fen"] = -50  # hide a liability by pairing it with a negative one
    with pytest.raises(InvalidInput, match="negative"):
        verify_proof(neg)
    broken = copy.deepcopy(proof)
    del broken["leaf"]["salt"]
    with pytest.raises(InvalidInput, match="malformed"):
        verify_proof(broken)
    with pytest.raises(InvalidInput, match="negative balance"):
        MerkleSumTree([Leaf("A", -1, b"a" * 32)])


class RecordingPublisher:
    """Stands in for the on-chain root registry (written by the chain engineer); records the
    roots it was asked to publish."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bytes, int]] = []

    def publish_liabilities_root(self, epoch: int, root: bytes, total_fen: int) -> str:
        self.calls.append((epoch, root, total_fen))
        return f"0xtx{len(self.calls)}"


def funded_custody(engine: Engine) -> CustodyService:
    svc = CustodyService(engine, "6222020200112233445")
    svc.setup()
    bank = SimulatedBank("6222020200112233445")
    for n, amount in enumerate([1_500_000, 250_050, 0, 42], start=1):
        svc.register_investor(
            f"INV-{n:04d}", name=f"investor {n}", virtual_account=f"VA-{n:04d}",
            reference=f"CLREF{n:02d}", payout_account=f"62170{n}",
        )  # fmt: skip
        if amount:
            bank.receive_transfer(
                amount, payer_name=f"investor {n}", payer_account=f"62170{n}",
                virtual_account=f"VA-{n:04d}", day=date(2026, 3, 2),
            )  # fmt: skip
    svc.import_statement(bank.close_statement(at=datetime(2026, 3, 2, 17)))
    return svc


def test_snapshot_prove_publish_from_custody(engine: Engine) -> None:
    custody = funded_custody(engine)
    lia = Liabilities(engine)
    lia.create_schema()
    root, total = lia.snapshot(20260302, custody.investor_balances())
    assert total == 1_750_092 == custody.bank_cash_fen()
    assert lia.snapshot(20260302, custody.investor_balances()) == (root, total)
    with pytest.raises(Conflict):
        lia.snapshot(20260302, {**custody.investor_balances(), "INV-0004": 0})
    for inv, bal in custody.investor_balances().items():
        proof = lia.prove(20260302, inv)
        assert proof["leaf"]["balance_fen"] == bal
        lia.check_against_published(proof)
    other = Liabilities(engine)
    root2, _ = other.snapshot(20260303, {"INV-0001": 1_500_000})
    proof = lia.prove(20260303, "INV-0001")
    proof["epoch"] = 20260302  # a valid proof, but of another epoch's root
    with pytest.raises(IntegrityFailure, match="recorded root"):
        lia.check_against_published(proof)
    publisher = RecordingPublisher()
    assert lia.publish(20260302, publisher) == "0xtx1"
    assert lia.publish(20260302, publisher) == "0xtx1"  # published once
    assert publisher.calls == [(20260302, bytes.fromhex(root), total)]
    assert root2 != root


def test_cli_prove_and_verify_proof(tmp_path: Path) -> None:
    from crowdleverage.custody.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'custody.db'}")
    funded_custody(engine)
    engine.dispose()
    runner = CliRunner(env={"CROWDLEV_DATA_DIR": str(tmp_path), "CROWDLEV_DATABASE_URL": ""})
    snap = runner.invoke(app, ["snapshot", "--epoch", "20260302", "--json"])
    assert snap.exit_code == 0, snap.output
    assert json.loads(snap.stdout)["total_fen"] == 1_750_092
    res = runner.invoke(app, ["prove", "--investor", "INV-0002", "--json"])
    assert res.exit_code == 0, res.output
    proof = json.loads(res.stdout)
    assert proof["leaf"]["balance_fen"] == 250_050
    good = tmp_path / "proof.json"
    good.write_text(res.stdout)
    ok = runner.invoke(app, ["verify-proof", str(good), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["balance_fen"] == 250_050
    proof["leaf"]["balance_fen"] = 350_050
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(proof))
    assert (
        runner.invoke(app, ["verify-proof", str(tampered)]).exit_code == IntegrityFailure.exit_code
    )
    assert runner.invoke(app, ["verify-proof", str(tampered), "--offline"]).exit_code == 11
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert runner.invoke(app, ["verify-proof", str(garbage)]).exit_code == InvalidInput.exit_code
    missing = runner.invoke(app, ["prove", "--investor", "INV-9999", "--json"])
    assert missing.exit_code == 3
