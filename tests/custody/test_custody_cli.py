"""`crowdlev custody ...` end to end on the default store (SQLite under the data dir): the
simulated bank's statement is imported once, re-import changes nothing, a payout goes out as
pain.001 and comes back settled; bad files exit with the typed error's code."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from crowdleverage.custody.cli import app
from crowdleverage.domain.errors import DataFileError, RuleViolation


def test_custody_cli_round_trip(tmp_path: Path) -> None:
    runner = CliRunner(env={"CROWDLEV_DATA_DIR": str(tmp_path), "CROWDLEV_DATABASE_URL": ""})

    def ok(*args: str) -> dict:
        res = runner.invoke(app, [*args, "--json"])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    ok("register-investor", "INV-0001", "--name", "张三", "--virtual-account", "VA-1",
       "--reference", "CLZS01", "--payout-account", "6217001")  # fmt: skip
    ok("bank-receive", "15000.00", "--payer", "张三", "--payer-account", "6217001",
       "--virtual-account", "VA-1")  # fmt: skip
    stmt = tmp_path / "camt053-1.xml"
    ok("bank-close", "--out", str(stmt))
    first = ok("import-camt053", str(stmt))
    assert first["already_imported"] is False and first["deposits"][0]["amount_fen"] == 1_500_000
    assert ok("import-camt053", str(stmt))["already_imported"] is True
    assert ok("balances") == {"bank_cash_fen": 1_500_000, "investors_fen": {"INV-0001": 1_500_000}}

    too_much = runner.invoke(app, ["request-payout", "INV-0001", "15000.01", "--json"])
    assert too_much.exit_code == RuleViolation.exit_code
    ok("request-payout", "INV-0001", "4000.00")
    pain = tmp_path / "pain001.xml"
    assert ok("export-pain001", "--out", str(pain))["written"] is True
    assert ok("bank-execute", str(pain)) == {"payments": 1}
    stmt2 = tmp_path / "camt053-2.xml"
    ok("bank-close", "--out", str(stmt2))
    assert ok("import-camt053", str(stmt2))["payouts_settled"] == 1
    assert ok("balances") == {"bank_cash_fen": 1_100_000, "investors_fen": {"INV-0001": 1_100_000}}

    broken = tmp_path / "broken.xml"
    broken.write_bytes(stmt2.read_bytes().replace(b"</Document>", b""))
    bad = runner.invoke(app, ["import-camt053", str(broken), "--json"])
    assert bad.exit_code == DataFileError.exit_code
    assert json.loads(bad.stderr)["error"] == "invalid_data_file"
    missing = runner.invoke(app, ["import-camt053", str(tmp_path / "nope.xml")])
    assert missing.exit_code == DataFileError.exit_code
