"""Proof-of-liabilities roots published on chain (LiabilityRoots) and proofs checked against
the public record, on the embedded chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdleverage.audit.proofs import Liabilities, verify_proof
from crowdleverage.audit.publish import ChainRootPublisher
from crowdleverage.chain.deploy import deploy_liability_roots, deploy_system
from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import SYSTEM_ACTORS, ActorKeys
from crowdleverage.custody.db import make_engine
from crowdleverage.domain.errors import ContractRevert, IntegrityFailure

BALANCES = {"inv-001": 1_000_000_00, "inv-002": 250_000_50, "inv-003": 1}


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[EmbeddedChain]:
    port = EmbeddedChain(tmp_path, ActorKeys.dev(20160104, SYSTEM_ACTORS))
    deploy_system(port, tmp_path)
    deploy_liability_roots(port, tmp_path)
    yield port
    port.close()


@pytest.fixture
def liabilities(tmp_path: Path) -> Liabilities:
    lia = Liabilities(make_engine(f"sqlite:///{tmp_path / 'audit.db'}"))
    lia.create_schema()
    return lia


def test_published_root_is_the_snapshot_root(
    chain: EmbeddedChain, liabilities: Liabilities, tmp_path: Path
) -> None:
    root, total = liabilities.snapshot(20160104, BALANCES)
    publisher = ChainRootPublisher(chain)
    ref = liabilities.publish(20160104, publisher)
    assert ref.startswith("0x")
    assert publisher.published_root(20160104) == (root, total)
    assert total == sum(BALANCES.values())
    (event,) = chain.events("LiabilityRoots", "RootPublished")
    assert event.args["epoch"] == 20160104 and event.args["total_fen"] == total
    # publishing again is idempotent: the stored reference, no second transaction
    assert liabilities.publish(20160104, publisher) == ref
    assert len(chain.events("LiabilityRoots", "RootPublished")) == 1
    # deploying again finds the recorded contract
    assert deploy_liability_roots(chain, tmp_path) == chain.contract_address("LiabilityRoots")


def test_proof_checked_against_the_chain(chain: EmbeddedChain, liabilities: Liabilities) -> None:
    liabilities.snapshot(7, BALANCES)
    liabilities.publish(7, ChainRootPublisher(chain))
    proof = liabilities.prove(7, "inv-002")
    root, total = verify_proof(proof)
    ChainRootPublisher(chain).check(7, root, total)
    with pytest.raises(IntegrityFailure, match="differs from the root published"):
        ChainRootPublisher(chain).check(7, root, total + 1)
    with pytest.raises(IntegrityFailure, match="no liabilities root is published"):
        ChainRootPublisher(chain).check(8, root, total)


def test_history_cannot_be_rewritten(chain: EmbeddedChain) -> None:
    pub = ChainRootPublisher(chain)
    pub.publish_liabilities_root(10, b"\x01" * 32, 100)
    with pytest.raises(ContractRevert, match="roots: epoch not after latest"):
        pub.publish_liabilities_root(10, b"\x02" * 32, 100)
    with pytest.raises(ContractRevert, match="roots: epoch not after latest"):
        pub.publish_liabilities_root(9, b"\x02" * 32, 100)
    with pytest.raises(ContractRevert, match="roots: empty root"):
        pub.publish_liabilities_root(11, b"\x00" * 32, 100)
    assert pub.published_root(10) == ("01" * 32, 100)


def test_only_auditor_or_operator_publishes(chain: EmbeddedChain) -> None:
    with pytest.raises(ContractRevert, match="roots: caller is not auditor or operator"):
        ChainRootPublisher(chain, actor="custodian").publish_liabilities_root(1, b"\x01" * 32, 1)
    assert ChainRootPublisher(chain).published_root(1) is None


def test_cli_publish_prove_verify_on_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from crowdleverage.cli import app
    from crowdleverage.config import load_settings
    from crowdleverage.custody.db import engine_from_settings

    monkeypatch.setenv("CROWDLEV_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()
    assert runner.invoke(app, ["chain", "deploy", "--json"]).exit_code == 0
    lia = Liabilities(engine_from_settings(load_settings()))
    lia.create_schema()
    lia.snapshot(3, BALANCES)
    res = runner.invoke(app, ["audit", "publish", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["epoch"] == 3
    res = runner.invoke(app, ["audit", "prove", "--investor", "inv-001", "--json"])
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(res.stdout)
    res = runner.invoke(app, ["audit", "verify-proof", str(proof_file), "--on-chain", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["balance_fen"] == BALANCES["inv-001"]
    tampered = json.loads(proof_file.read_text())
    tampered["leaf"]["balance_fen"] += 100
    proof_file.write_text(json.dumps(tampered))
    res = runner.invoke(app, ["audit", "verify-proof", str(proof_file), "--on-chain", "--json"])
    assert res.exit_code == 11
