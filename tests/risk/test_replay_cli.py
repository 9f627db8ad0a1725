"""`crowdlev replay`: bad input exits with the typed error's code, as text or JSON; `--rpc-url`
runs it on a fresh anvil node, and a node it cannot use is a typed error."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from anvil_node import anvil
from typer.testing import CliRunner, Result

from crowdleverage.chain.deploy import manifest_path
from crowdleverage.cli import app
from crowdleverage.config import SHIPPED_DATA
from crowdleverage.domain.errors import ServiceUnavailable

DATA = SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv"
EARLY = "1420070400"  # 2015-01-01: a node clock before the replay's genesis

runner = CliRunner()


def test_reversed_range_is_invalid_input_in_json():
    result = runner.invoke(app, ["replay", "--from", "2016-01-08", "--to", "2016-01-04", "--json"])
    assert result.exit_code == 2
    err = json.loads(result.stderr.strip().splitlines()[-1])
    assert err["error"] == "invalid_input" and "before" in err["message"]


def test_unknown_reporter_behaviour_and_bad_sizes_are_refused():
    result = runner.invoke(app, ["replay", "--faulty-reporter", "sleepy"])
    assert result.exit_code == 2 and "sleepy" in result.stderr
    result = runner.invoke(app, ["replay", "--stocks", "2"])
    assert result.exit_code == 2


def test_a_missing_data_file_is_a_data_file_error():
    result = runner.invoke(app, ["replay", "--data", "/nonexistent/bars.csv", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stderr.strip().splitlines()[-1])["error"] == "invalid_data_file"


def test_a_bad_book_or_option_is_refused_before_the_replay_starts(tmp_path):
    book = tmp_path / "book.toml"
    book.write_text("[pool]\njunior_yuan = -5\n")
    result = runner.invoke(app, ["replay", "--book", str(book), "--json"])
    assert result.exit_code == 2
    assert "junior_yuan" in json.loads(result.stderr.strip().splitlines()[-1])["message"]
    result = runner.invoke(app, ["replay", "--utilisation", "95"])
    assert result.exit_code == 2 and "90%" in result.stderr
    result = runner.invoke(app, ["replay", "--book", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "not found" in result.stderr


# --rpc-url: the replay on a fresh dev node (anvil), the node refused or unreachable


def _replay_on(url: str, work: Path) -> Result:
    return runner.invoke(app, [
        "replay", "--data", str(DATA), "--from", "2016-01-04", "--to", "2016-01-04",
        "--borrowers-per-tier", "1", "--stocks", "6", "--ticks-per-day", "4",
        "--work-dir", str(work), "--rpc-url", url, "--json",
    ])  # fmt: skip


@pytest.mark.anvil
def test_the_replay_runs_on_a_fresh_anvil_node(tmp_path: Path, anvil_bin: str) -> None:
    with anvil(anvil_bin, "--prune-history", "--timestamp", EARLY) as url:
        result = _replay_on(url, tmp_path / "work")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [d["date"] for d in report["days"]] == ["2016-01-04"]
    assert report["invariants"] and all(report["invariants"].values()), report["violations"]
    # the contracts were deployed on the node: its manifest is in the work dir
    assert manifest_path(tmp_path / "work").exists()


@pytest.mark.anvil
def test_a_node_past_the_replay_start_is_a_config_error(tmp_path: Path, anvil_bin: str) -> None:
    with anvil(anvil_bin) as url:  # the node's clock is now, years after 2016-01-04
        result = _replay_on(url, tmp_path / "work")
    assert result.exit_code == 78 and isinstance(result.exception, SystemExit)
    err = json.loads(result.stderr.strip().splitlines()[-1])
    assert err["error"] == "config_error" and "anvil --timestamp" in err["message"]
    assert "Traceback" not in result.output


def test_an_unreachable_node_is_a_clear_error_without_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    result = _replay_on(f"http://127.0.0.1:{port}", tmp_path / "work")
    assert result.exit_code == ServiceUnavailable.exit_code != 0
    assert isinstance(result.exception, SystemExit)  # a typed error, not an escaped exception
    err = json.loads(result.stderr.strip().splitlines()[-1])
    assert err["error"] == "service_unavailable" and f"127.0.0.1:{port}" in err["message"]
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["replay", "--rpc-url", "localhost:8545"])  # no scheme
    assert result.exit_code == 2 and "http://host:port" in result.stderr
