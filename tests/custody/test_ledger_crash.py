"""Crash test: a worker is killed with SIGKILL in the middle of its batches, several times;
after each restart nothing acknowledged is lost, nothing is doubled, and retrying the same ids
answers `exists` (DESIGN.md §8 invariant 3, issue 5 "Done when")."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from crowdleverage.custody.ledger import Ledger

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ledger_crash_worker as worker  # noqa: E402

N_BATCHES = 10


def run_worker(
    url: str, schema: str | None, kill_at: tuple[int, float] | None
) -> tuple[list[str], int]:
    """Run the worker; with `kill_at=(n, delay_s)`, SIGKILL it `delay_s` after its n-th
    reported batch, i.e. while it is inside the next one."""
    cmd = [sys.executable, str(HERE / "ledger_crash_worker.py"), url, schema or "-", str(N_BATCHES)]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert proc.stdin is not None and proc.stdout is not None
    lines: list[str] = []
    if kill_at is None:
        out, _ = proc.communicate("go\n" * N_BATCHES, timeout=300)
        return lines + out.splitlines(), proc.returncode
    n, delay_s = kill_at
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        proc.stdin.write("go\n")  # the next batch may start
        proc.stdin.flush()
        if len(lines) >= n:
            # inside batch n+1, or done with it and waiting for the next line: never the end
            time.sleep(delay_s)
            proc.send_signal(signal.SIGKILL)
            break
    out, _ = proc.communicate(timeout=300)
    lines += out.splitlines()
    return lines, proc.returncode


def test_sigkill_mid_batch_loses_and_doubles_nothing(engine_factory: Any) -> None:
    url, schema = engine_factory.url_and_schema()
    rng = random.Random(5)
    acknowledged = 0  # batches whose commit the worker reported before dying
    kills = 0
    for _ in range(3):
        kill_at = (acknowledged + rng.randint(1, 2), rng.random() * 0.08)
        lines, rc = run_worker(url, schema, kill_at=kill_at)
        assert not any("mixed" in line for line in lines), lines
        done = [line for line in lines if line.startswith("batch ")]
        # Everything acknowledged by an earlier run answers `exists` now.
        for line in done[:acknowledged]:
            assert line.endswith(" exists"), (line, acknowledged)
        acknowledged = max(acknowledged, len(done))
        kills += rc == -signal.SIGKILL
    assert kills == 3, "every run is killed before the end"
    assert acknowledged < N_BATCHES

    lines, rc = run_worker(url, schema, kill_at=None)
    assert rc == 0, lines
    assert len(lines) == N_BATCHES
    assert all(line.endswith(" exists") for line in lines[:acknowledged])
    assert any(line.endswith(" exists") for line in lines)

    from crowdleverage.custody.db import make_engine

    engine = make_engine(url, schema=schema)
    ledger = Ledger(engine)
    try:
        assert ledger.audit() == []
        [tot] = ledger.totals()
        assert tot.debits_posted == tot.credits_posted
        per_batch = sum(100 + j for j in range(worker.SINGLES))
        investors = ledger.lookup_accounts(worker.INVESTORS)
        assert sum(a.credits_posted for a in investors) == N_BATCHES * per_batch
        [hold] = ledger.lookup_accounts([worker.HOLD])
        # the last batch's pending transfers are still pending; all earlier ones were posted
        assert hold.credits_posted == (N_BATCHES - 1) * worker.PENDINGS * 7
        assert hold.credits_pending == worker.PENDINGS * 7
    finally:
        engine.dispose()
