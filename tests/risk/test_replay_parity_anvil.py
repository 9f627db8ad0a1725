"""The crash replay on a real JSON-RPC node (anvil, through `DevNodeChain`) gives the same
report as on the embedded chain: the same liquidations, fills, losses by layer, NAVs and
invariants (bench/replay.py times the 300-borrower week on both)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from anvil_node import anvil

from crowdleverage.config import SHIPPED_DATA
from crowdleverage.domain.errors import ConfigError
from crowdleverage.risk.replay import Replay, ReplayConfig, run_replay

pytestmark = pytest.mark.anvil

DATA = SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv"
EARLY = "1420070400"  # 2015-01-01: a node clock before the replay's genesis


def config(tmp: Path, rpc_url: str | None = None) -> ReplayConfig:
    return ReplayConfig(
        DATA, dt.date(2016, 1, 4), dt.date(2016, 1, 5), work_dir=tmp, borrowers_per_tier=2,
        stocks=12, ticks_per_day=4, rpc_url=rpc_url,
    )  # fmt: skip


@pytest.mark.slow
def test_the_crash_replay_on_anvil_reports_what_the_embedded_chain_does(
    tmp_path: Path, anvil_bin: str
):
    with anvil(anvil_bin, "--prune-history", "--timestamp", EARLY) as url:
        on_node = run_replay(config(tmp_path / "node", url)).as_dict()
    embedded = run_replay(config(tmp_path / "embedded")).as_dict()

    # the week hurt on both: liquidations, liquidation fills and losses to compare
    assert sum(d["liquidations_started"] for d in embedded["days"]) > 0
    assert sum(d["liquidation_fills"] for d in embedded["days"]) > 0
    assert embedded["accounting"]["total_loss_fen"] > 0
    assert all(embedded["invariants"].values()), embedded["violations"]
    assert on_node == embedded


def test_a_node_whose_clock_is_past_the_replay_start_is_refused(tmp_path: Path, anvil_bin: str):
    with anvil(anvil_bin) as url, pytest.raises(ConfigError, match="anvil --timestamp"):
        Replay(config(tmp_path, url))
