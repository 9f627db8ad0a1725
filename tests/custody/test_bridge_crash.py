"""Crash test of the bridge: a worker importing statements, minting and redeeming is killed
with SIGKILL mid-flight several times; after a final run, every deposit is minted exactly once,
every redemption burned once with its payout reserved once, and reconciliation is clean."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from crowdleverage.audit.reconcile import ChainGateway, Reconciler

HERE = Path(__file__).resolve().parent
ROUNDS = 6


def run(
    url: str, schema: str | None, data_dir: Path, kill_after: tuple[int, float] | None
) -> tuple[list[str], int]:
    cmd = [sys.executable, str(HERE / "bridge_crash_worker.py"), url, schema or "-",
           str(data_dir), str(ROUNDS)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    assert proc.stdout is not None
    lines: list[str] = []
    if kill_after is not None:
        n, delay_s = kill_after
        for line in proc.stdout:
            lines.append(line.strip())
            if len(lines) >= n:
                time.sleep(delay_s)
                proc.send_signal(signal.SIGKILL)
                break
    out, _ = proc.communicate(timeout=300)
    return lines + out.splitlines(), proc.returncode


def test_sigkill_during_bridge_steps(engine_factory: Any, tmp_path: Path) -> None:
    url, schema = engine_factory.url_and_schema()
    rng = random.Random(7)
    kills = 0
    for n in (1, 3):
        _, rc = run(url, schema, tmp_path, (n, rng.random() * 0.15))
        kills += rc == -signal.SIGKILL
    assert kills >= 2
    lines, rc = run(url, schema, tmp_path, None)
    assert rc == 0 and len(lines) == ROUNDS, lines

    sys.path.insert(0, str(HERE))
    import bridge_crash_worker as w

    custody, chain, _bridge = w.open_world(url, schema, tmp_path)
    try:
        mints = [e.args["ref"] for e in chain.events("CashToken", "Minted")]
        burns = [e.args["ref"] for e in chain.events("CashToken", "Burned")]
        assert len(mints) == len(set(mints)) == 3 * ROUNDS
        assert len(burns) == len(set(burns)) == ROUNDS
        report = Reconciler(custody).check(ChainGateway(chain))
        assert report.ok, report.to_dict()
        deposited = sum(10_000 * n + j for j in range(ROUNDS) for n in (1, 2, 3))
        redeemed = sum(1_000 + k for k in range(ROUNDS))
        assert chain.call("CashToken", "totalSupply") == deposited - redeemed
        assert custody.ledger.audit() == []
    finally:
        chain.close()
        custody.engine.dispose()
