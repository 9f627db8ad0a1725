"""What the platform publishes beside its own book: the market regime (risk/regime.py), the
latest stress-test result (risk/stress/) and the strategy accounts' liquidity brake
(strategies/brake.py), and the end-of-day stress run that produces those results.

These are analytics on published data: they read the market data file and the stored stress
results under `<data_dir>/stress/`, never the chain or the ledger.
"""

from __future__ import annotations

import datetime as dt
import logging
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
    """Runs the reduced stress suite once per closed trading day, in a background thread so
    that the replay does not wait, and stores the result under `<data_dir>/stress/`. A day
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
        from crowdleverage.risk.stress.suite import reduced_suite, store_result

        try:
            result = reduced_suite(as_of=day)
            path = store_result(result, self.data_dir)
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
