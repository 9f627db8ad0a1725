"""Which data dir the read commands use (`--data-dir`, `CROWDLEV_DATA_DIR`, the newest
`var/demo-*`), that they say so, and that they only read: on an empty directory they exit
with NotFound and create nothing; on a platform's directory they work and change no file,
no mtime, and create no `-wal`/`-shm`, signing key or chain journal. `audit verify-log`
refuses an empty log beside a ledger with activity."""

from __future__ import annotations

import datetime as dt
import gc
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowdleverage.cli import app
from crowdleverage.cliutil import choose_data_dir, has_platform_data
from crowdleverage.domain.errors import IntegrityFailure, NotFound

READ_COMMANDS = [
    ["chain", "status"],
    ["chain", "events", "--limit", "3"],
    ["audit", "verify-log"],
    ["reconcile", "--read-only"],
    ["reconcile"],  # refuses before writing anything: no data
    ["custody", "balances"],
]


def runner(**env: str | None) -> CliRunner:
    return CliRunner(env={"CROWDLEV_DATA_DIR": None, "CROWDLEV_DATABASE_URL": "", **env})


def invoke(args: list[str], **env: str | None):  # type: ignore[no-untyped-def]
    return runner(**env).invoke(app, args)


def tree(path: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under `path` → (mtime ns, size)."""
    return {
        str(p.relative_to(path)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in [path, *path.rglob("*")]
    }


def _ok(args: list[str], data: Path) -> dict:  # type: ignore[type-arg]
    res = invoke([*args, "--json"], CROWDLEV_DATA_DIR=str(data))
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout) if res.stdout.strip() else {}


def _deposit(data: Path) -> None:
    """A custody investor and a booked 15,000.00 元 deposit (a ledger transfer)."""
    _ok(["custody", "register-investor", "INV-0001", "--name", "张三", "--virtual-account",
         "VA-1", "--reference", "CLZS01", "--payout-account", "6217001"], data)  # fmt: skip
    _ok(["custody", "bank-receive", "15000.00", "--payer", "张三", "--payer-account",
         "6217001", "--virtual-account", "VA-1"], data)  # fmt: skip
    _ok(["custody", "bank-close", "--out", str(data / "camt053.xml")], data)
    _ok(["custody", "import-camt053", str(data / "camt053.xml")], data)


@pytest.fixture(scope="module")
def platform_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir written by the platform's own commands: chain deployed, a deposit booked in
    the ledger (not yet minted: reconciliation finds a break), one audit entry."""
    data = tmp_path_factory.mktemp("platform")
    _ok(["chain", "deploy"], data)
    _deposit(data)
    _ok(["audit", "record", "--actor", "operator:wang", "--action", "set_params"], data)
    gc.collect()  # the commands ran in this process: close their SQLite connections
    assert not list(data.rglob("*-wal")), "a stopped platform leaves no WAL behind"
    return data


def test_read_commands_on_an_empty_dir_fail_and_create_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in READ_COMMANDS:
        res = invoke([*args, "--data-dir", str(empty)])
        assert res.exit_code == NotFound.exit_code, (args, res.output)
        assert f"data dir: {empty} (from --data-dir)" in res.stderr
        assert "no platform data" in res.stderr
        assert list(empty.iterdir()) == [], args
    missing = tmp_path / "missing"
    res = invoke(["audit", "verify-log", "--json"], CROWDLEV_DATA_DIR=str(missing))
    assert res.exit_code == NotFound.exit_code
    assert json.loads(res.stderr)["error"] == "not_found"  # --json: stderr is the JSON error only
    assert not missing.exists()


def test_read_commands_on_a_platform_dir_change_nothing(platform_dir: Path) -> None:
    before = tree(platform_dir)
    out = {}
    prove = ["audit", "prove", "--investor", "INV-0001"]
    for args in [*READ_COMMANDS[:-2], ["custody", "balances"], prove]:
        res = invoke([*args, "--data-dir", str(platform_dir)])
        out[args[1] if len(args) > 1 else args[0]] = res
        assert tree(platform_dir) == before, args
    assert out["status"].exit_code == 0, out["status"].output
    assert "trading day:  none open yet" in out["status"].stdout
    assert "cash supply:  0.00元" in out["status"].stdout
    assert out["verify-log"].exit_code == 0 and "1 entries" in out["verify-log"].stdout
    rec = out["--read-only"]
    assert rec.exit_code == IntegrityFailure.exit_code, rec.output
    assert "missing mint" in rec.stdout and "ledger 1.50万元" in rec.stdout
    assert "read-only: nothing recorded, nothing paused" in rec.stdout
    assert "{" not in rec.stdout
    bal = out["balances"]
    assert bal.exit_code == 0 and "INV-0001" in bal.stdout and "1.50万元" in bal.stdout
    assert out["prove"].exit_code == NotFound.exit_code  # no epoch snapshotted: nothing created
    for res in out.values():
        assert f"data dir: {platform_dir} (from --data-dir)" in res.stderr


def test_chain_status_names_the_trading_day_by_its_date() -> None:
    from crowdleverage.chain.cli import render_status
    from crowdleverage.oracle.feeder import session_index

    out = {"chain": "embedded", "chain_id": 31337, "block": 1234, "deployed_block": 12,
           "block_time_s": 1452149940, "state_root": "0xab", "trading_day":
           session_index(dt.date(2016, 1, 7)), "cash_supply_fen": 123_456_789_00,
           "cash_paused": False, "events": 6815, "last_event_seq": 6815,
           "contracts": {}}  # fmt: skip
    text = "\n".join(render_status(out))
    assert "trading day:  2016-01-07 (oracle day #" in text
    assert "chain clock:  2016-01-07 14:59:00 Asia/Shanghai" in text
    assert "cash supply:  1.23亿元" in text and "block 1,234" in text
    assert all(len(line) <= 100 for line in text.splitlines())


def test_verify_log_refuses_an_empty_log_beside_ledger_activity(tmp_path: Path) -> None:
    _deposit(tmp_path)  # ledger transfers, no audit entry
    gc.collect()  # the commands ran in this process: close their SQLite connections (and WAL)
    assert not list(tmp_path.rglob("*-wal"))
    before = tree(tmp_path)
    res = invoke(["audit", "verify-log"], CROWDLEV_DATA_DIR=str(tmp_path))
    assert res.exit_code == IntegrityFailure.exit_code, res.output
    assert "0 entries" in res.stdout and "ledger transfers" in res.stdout
    assert "verified" not in res.stdout
    res = invoke(["audit", "verify-log", "--json"], CROWDLEV_DATA_DIR=str(tmp_path))
    assert res.exit_code == IntegrityFailure.exit_code
    assert json.loads(res.stdout)["ok"] is False
    assert tree(tmp_path) == before


def test_choose_data_dir(tmp_path: Path) -> None:
    var = tmp_path / "var"
    flag = choose_data_dir(tmp_path / "x", var, None)
    assert (flag.path, flag.why) == (tmp_path / "x", "from --data-dir")
    assert choose_data_dir(None, var, None).path == var  # nothing there: the default
    (var / "demo-20260101-090000").mkdir(parents=True)  # an old run
    (var / "demo-20260101-090000" / "custody.db").touch()
    (var / "demo-20260102-090000").mkdir()  # newest, but holds no data yet
    chosen = choose_data_dir(None, var, None)
    assert chosen.path == var / "demo-20260101-090000"
    assert "newest of 2 demo run(s)" in chosen.why
    (var / "demo-20260102-090000" / "chain").mkdir()
    (var / "demo-20260102-090000" / "chain" / "journal.sqlite").touch()
    assert choose_data_dir(None, var, None).path == var / "demo-20260102-090000"
    env = choose_data_dir(None, var, "CROWDLEV_DATA_DIR")  # configured dir without data
    assert env.path == var / "demo-20260102-090000" and "CROWDLEV_DATA_DIR" in env.why
    (var / "custody.db").touch()  # configured dir with data: used as is
    assert choose_data_dir(None, var, "CROWDLEV_DATA_DIR").path == var
    assert has_platform_data(var)


def test_the_newest_demo_run_is_found_from_the_working_directory(
    platform_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(platform_dir, tmp_path / "var" / "demo-20260102-090000")
    (tmp_path / "var" / "demo-20260101-090000").mkdir()
    monkeypatch.chdir(tmp_path)
    res = invoke(["custody", "balances"])
    assert res.exit_code == 0, res.output
    assert "data dir: var/demo-20260102-090000 (newest of 2 demo run(s) under var/" in res.stderr
    assert "INV-0001" in res.stdout
