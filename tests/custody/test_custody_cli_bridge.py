"""Command-line session on the embedded chain: statement → import → `crowdlev custody bridge`
mints → `crowdlev reconcile` is clean; an unbridged deposit makes it exit 11 and pause."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from crowdleverage.audit.reconcile_cli import app as reconcile_app
from crowdleverage.chain.deploy import deploy_system
from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import SYSTEM_ACTORS, ActorKeys
from crowdleverage.chain.roles import Role
from crowdleverage.custody.cli import app
from crowdleverage.domain.errors import IntegrityFailure, PlatformPaused

SEED = 20160104


def test_cli_bridge_then_reconcile(tmp_path: Path) -> None:
    keys = ActorKeys.dev(SEED, (*SYSTEM_ACTORS, "inv1"))
    chain = EmbeddedChain(tmp_path, keys)
    deploy_system(chain, tmp_path)
    investor = chain.address_of("inv1")
    chain.send("IdentityRegistry", "register", investor, int(Role.INVESTOR), 3, b"CN",
               chain.block_time() + 86_400 * 365, actor="compliance")  # fmt: skip
    chain.close()
    addresses = tmp_path / "addresses.json"
    addresses.write_text(json.dumps({"INV-0001": investor}))
    env = {"CROWDLEV_DATA_DIR": str(tmp_path), "CROWDLEV_DATABASE_URL": "",
           "CROWDLEV_SEED": str(SEED), "CROWDLEV_CHAIN": "embedded"}  # fmt: skip
    runner = CliRunner(env=env)

    def run(a: object, *args: str) -> tuple[int, str]:
        res = runner.invoke(a, [*args, "--json"])  # type: ignore[arg-type]
        return res.exit_code, res.stdout

    assert run(app, "register-investor", "INV-0001", "--name", "张三", "--virtual-account",
               "VA-1", "--reference", "CLZS01", "--payout-account", "6217001")[0] == 0  # fmt: skip
    for n in (1, 2):
        assert run(app, "bank-receive", f"{n}000.00", "--payer", "张三", "--payer-account",
                   "6217001", "--virtual-account", "VA-1")[0] == 0  # fmt: skip
        stmt = tmp_path / f"camt053-{n}.xml"
        assert run(app, "bank-close", "--out", str(stmt))[0] == 0
        assert run(app, "import-camt053", str(stmt))[0] == 0
        if n == 1:
            code, out = run(app, "bridge", "--addresses", str(addresses))
            assert code == 0 and json.loads(out)["minted"] == 1
            code, out = run(reconcile_app, "reconcile")
            assert code == 0 and json.loads(out)["status"] == "clean"
    code, out = run(reconcile_app, "reconcile")  # the second deposit is booked but not bridged yet
    assert code == IntegrityFailure.exit_code
    breaks = json.loads(out)["breaks"]
    assert {b["kind"] for b in breaks} == {"missing_mint", "supply_drift"}
    code, _ = run(app, "bridge", "--addresses", str(addresses))
    assert code == PlatformPaused.exit_code  # failed closed: the mint waits for the operator

    # Operator: refund the unbridged deposit to suspense (a correction naming it), reconcile
    # clean, resume; the bridge then skips the refunded deposit instead of minting it.
    [missing] = [b["reference"] for b in breaks if b["kind"] == "missing_mint"]
    assert run(reconcile_app, "resume-after-break", "--operator", "operator:wang")[0] == 11
    code, _ = run(app, "correct", "INV-0001", "2000.00", "--debit", "--reference", missing,
                  "--operator", "operator:wang")  # fmt: skip
    assert code == 0
    code, out = run(reconcile_app, "reconcile")
    assert code == 0, out
    assert run(reconcile_app, "resume-after-break", "--operator", "operator:wang")[0] == 0
    code, out = run(app, "bridge", "--addresses", str(addresses))
    assert code == 0 and json.loads(out)["minted"] == 0
    assert run(reconcile_app, "reconcile")[0] == 0
    from crowdleverage.audit.cli import app as audit_app

    code, out = run(audit_app, "verify-log")
    assert code == 0 and json.loads(out)["entries"] >= 4  # reconciles, correction, resume
