"""What the platform publishes beside its own book: the market regime (risk/regime.py), the
latest stress-test result (risk/stress/) and the strategy accounts' liquidity brake
(strategies/brake.py), and the end-of-day stress run that produces those results.

These are analytics on published data: they read the market data file and the stored stress
results under `<data_dir>/stress/`, never the chain or the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from crowdleverage.domain.errors import NotFound

log = logging.getLogger("crowdleverage.published")


def regime_summary(market_data: Path, on: dt.date) -> dict[str, Any] | None:
    """The regime at the last close before `on` (what was published before that day's open:
    no look-ahead), its last 20 closes and parameters."""
    from crowdleverage.risk.regime import RegimeParams, published_history

    points = [p.as_dict() for p in published_history(str(market_data)) if p.date < on]
    if not points:
        return None
    return {"now": points[-1], "history": points[-20:], "params": RegimeParams().as_dict()}


def stress_summary(data_dir: Path) -> dict[str, Any] | None:
    """The newest stored stress result without the per-account histograms, or None."""
    from crowdleverage.risk.stress.suite import latest_result

    try:
        r = latest_result(data_dir)
    except NotFound:
        return None
    scenarios = []
    for name, s in r["scenarios"].items():
        scenarios.append(
            {
                "name": name,
                "title": s.get("title", name),
                "start": s.get("start"),
                "end": s.get("end"),
                "paths": s.get("paths"),
                "p_senior_loss": s.get("p_senior_loss"),
                "p_insurance_exhausted": s.get("p_insurance_exhausted"),
                "layers": {
                    k: {m: v[m] for m in ("mean", "var99", "es99")}
                    for k, v in s.get("layers", {}).items()
                },
                "tier_median_loss": {
                    t: v.get("median_account_loss") for t, v in s.get("tiers", {}).items()
                },
                "umbrella": s.get("umbrella"),
            }
        )
    return {
        "date": r["date"],
        "suite": r["suite"],
        "created_at": r["created_at"],
        "params_hash": r["params_hash"],
        "book": r["book"],
        "all_targets_met": r["all_targets_met"],
        "targets": [{"name": k, **v} for k, v in r["targets"].items()],
        "scenarios": scenarios,
    }


def brake_summary(chain: Any = None) -> dict[str, Any]:
    """The strategy accounts' liquidity-reversal brake: its stage on chain and the live
    strategy accounts (strategies/live.py `brake_panel`); without a chain, the brake's
    resting state and its parameters."""
    from crowdleverage.strategies.brake import brake_state
    from crowdleverage.strategies.live import brake_panel

    if chain is not None:
        return brake_panel(chain)
    out = brake_state(None)
    out["strategy_accounts_open"] = 0
    return out


class EndOfDayStress:
    """Runs the reduced stress suite once per closed trading day and stores the result under
    `<data_dir>/stress/`, in a child process (at a lower CPU priority) watched by a
    background thread: neither the replay nor the platform process's writer waits for it,
    and it holds no lock or GIL of theirs (it reads only the shipped market data). A day
    that closes while the previous run is still going is skipped (and logged)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.skipped = 0

    def day_closed(self, day: dt.date) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.skipped += 1
            log.info("stress run skipped", extra={"day": day.isoformat(), "reason": "busy"})
            return
        self._thread = threading.Thread(
            target=self._run, args=(day,), name="eod-stress", daemon=True
        )
        self._thread.start()

    def _run(self, day: dt.date) -> None:
        from crowdleverage.risk.stress.suite import list_results

        code = (
            "from crowdleverage.api.published import run_reduced_suite; "
            f"run_reduced_suite({str(self.data_dir)!r}, {day.isoformat()!r})"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            before = set(list_results(self.data_dir))
            child = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True
            )
            if child.returncode != 0:
                log.error("end-of-day stress run failed",
                          extra={"day": day.isoformat(), "rc": child.returncode,
                                 "stderr": child.stderr[-2000:]})  # fmt: skip
                return
            path = sorted(set(list_results(self.data_dir)) - before)[-1]
            result = json.loads(path.read_text(encoding="utf-8"))
            self.runs += 1
            log.info(
                "stress run stored",
                extra={"day": day.isoformat(), "path": str(path), "ok": result["all_targets_met"]},
            )
        except Exception:  # the service keeps serving; the page shows the last stored result
            log.exception("end-of-day stress run failed")

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


def run_reduced_suite(data_dir: str, day: str) -> None:
    """The end-of-day stress run in its own process (`EndOfDayStress`): the reduced suite as
    of `day`, stored under `<data_dir>/stress/`, at a lower CPU priority than the platform."""
    from crowdleverage.risk.stress.suite import reduced_suite, store_result

    os.nice(10)
    store_result(reduced_suite(as_of=dt.date.fromisoformat(day)), Path(data_dir))
