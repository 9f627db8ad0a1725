"""`crowdlev screen`, `screen-batch`, `lists load|show` through the real CLI app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowdleverage.cli import app

SDN = Path(__file__).parent / "fixtures" / "sdn_sample.csv"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CROWDLEV_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CROWDLEV_DATABASE_URL", raising=False)
    monkeypatch.delenv("CROWDLEV_CONFIG", raising=False)
    return CliRunner()


def test_screen_hit_exits_7_with_reasons(runner: CliRunner) -> None:
    res = runner.invoke(app, ["screen", "Ho Won Ri", "--dob", "1964-07-17", "--json"])

    assert res.exit_code == 7
    out = json.loads(res.stdout)
    assert out["hit"] is True
    assert out["matches"][0]["reference"] == "KPi.033"
    assert "date of birth matches 1964-07-17" in out["matches"][0]["reasons"]


def test_screen_clear_exits_0(runner: CliRunner) -> None:
    res = runner.invoke(app, ["screen", "张伟", "--json"])

    assert res.exit_code == 0
    assert json.loads(res.stdout)["hit"] is False


def test_screen_bad_dob_is_invalid_input(runner: CliRunner) -> None:
    res = runner.invoke(app, ["screen", "x", "--dob", "1964-13-01", "--json"])

    assert res.exit_code == 2
    assert json.loads(res.stderr)["error"] == "invalid_input"


def test_lists_load_then_batch(runner: CliRunner, tmp_path: Path) -> None:
    batch = tmp_path / "names.csv"
    batch.write_text("name,dob\n陈浩然,1975-02-03\nJohn Smith\n", encoding="utf-8")

    loaded = runner.invoke(app, ["lists", "load", str(SDN), "--json"])
    shown = runner.invoke(app, ["lists", "show", "--json"])
    res = runner.invoke(app, ["screen-batch", str(batch), "--json"])

    assert loaded.exit_code == 0, loaded.stderr
    assert json.loads(loaded.stdout)["entries"] == 4
    assert [x["list"] for x in json.loads(shown.stdout)["lists"]] == ["ofac_sdn"]
    assert res.exit_code == 7
    out = json.loads(res.stdout)
    assert (out["screened"], out["hits"]) == (2, 1)
    assert out["results"][0]["matches"][0]["entry_id"] == "9002"


def test_bad_files_name_the_line(runner: CliRunner, tmp_path: Path) -> None:
    batch = tmp_path / "names.csv"
    batch.write_text("Li Na,1990-02-30\n", encoding="utf-8")

    res = runner.invoke(app, ["screen-batch", str(batch), "--json"])
    bad_list = runner.invoke(app, ["lists", "load", str(batch), "--json"])

    assert res.exit_code == 2
    assert json.loads(res.stderr)["details"]["line"] == 1
    assert bad_list.exit_code == 2
    assert "expected 12 columns" in json.loads(bad_list.stderr)["message"]


def test_cases_commands_walk_an_aml_case_to_an_str(runner: CliRunner, tmp_path: Path) -> None:
    from datetime import UTC, date, datetime, timedelta

    from crowdleverage.compliance.aml import Channel, Transaction, TxnKind
    from crowdleverage.compliance.repository import make_engine
    from crowdleverage.compliance.service import ComplianceService, KycApplication

    (tmp_path / "var").mkdir()
    svc = ComplianceService(make_engine(f"sqlite:///{tmp_path / 'var' / 'custody.db'}"), None)
    now = datetime(2026, 1, 5, tzinfo=UTC)
    app_ = KycApplication(
        "0x" + "44" * 20, "王小明", "110105199001011232", "13800138000",
        "6222021234567890128", date(2030, 1, 1),
    )  # fmt: skip
    ident = svc.onboard(app_, now=now).identity_id
    deposits = [
        Transaction(f"d{i}", ident, TxnKind.DEPOSIT, 4_800_000, now + timedelta(days=i),
                    channel=Channel.CASH)
        for i in range(3)
    ]  # fmt: skip
    (case_id,) = [r["case_id"] for r in svc.monitor(deposits, now=now)]

    listed = runner.invoke(app, ["cases", "list", "--status", "open", "--json"])
    moved = runner.invoke(app, ["cases", "investigate", case_id, "--actor", "officer-li"])
    reported = runner.invoke(
        app, ["cases", "report", case_id, "--actor", "officer-li", "--grounds", "cash just under"]
    )
    bad = runner.invoke(
        app, ["cases", "close", case_id, "--resolution", "maybe", "--actor", "x", "--json"]
    )
    shown = runner.invoke(app, ["cases", "show", case_id, "--json"])
    csv_path = tmp_path / "str.csv"
    exported = runner.invoke(app, ["cases", "str-export", "--csv", str(csv_path), "--json"])

    assert [c["case_id"] for c in json.loads(listed.stdout)["cases"]] == [case_id]
    assert moved.exit_code == 0 and reported.exit_code == 0, reported.stderr
    assert bad.exit_code == 2
    trail = json.loads(shown.stdout)["history"]
    assert [e["to"] for e in trail] == ["open", "investigating", "reported"]
    reports = json.loads(exported.stdout)["reports"]
    assert [(r["case_id"], r["txn_ids"]) for r in reports] == [(case_id, ["d0", "d1", "d2"])]
    assert csv_path.read_text(encoding="utf-8").splitlines()[1].startswith(case_id)


def test_kyc_onboard_verify_and_blocked_applicant(runner: CliRunner, tmp_path: Path) -> None:
    scan = tmp_path / "id_front.jpg"
    scan.write_bytes(b"\xff\xd8 scan")
    common = ["--phone", "13800138000", "--bank-card", "6222021234567890128",
              "--document-expiry", "2030-01-01", "--json"]  # fmt: skip

    clean = runner.invoke(app, ["kyc", "onboard", "--address", "0x" + "55" * 20, "--name",
                                "王小明", "--id-number", "110105199001011232",
                                "--document", str(scan), *common])  # fmt: skip
    blocked = runner.invoke(app, ["kyc", "onboard", "--address", "0x" + "66" * 20, "--name",
                                  "Ri Won Ho", "--id-number", "110105196407170010",
                                  *common])  # fmt: skip
    ident = json.loads(clean.stdout)["identity_id"]
    verified = runner.invoke(app, ["kyc", "verify", ident, "--actor", "officer-li", "--json"])
    refused = runner.invoke(
        app, ["kyc", "verify", json.loads(blocked.stdout)["identity_id"], "--actor", "x", "--json"]
    )

    assert clean.exit_code == 0, clean.stderr
    assert blocked.exit_code == 7 and json.loads(blocked.stdout)["case_id"]
    assert json.loads(verified.stdout)["status"] == "verified"
    assert refused.exit_code == 7
    assert json.loads(refused.stderr)["error"] == "compliance_block"
