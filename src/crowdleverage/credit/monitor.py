"""Population stability (PSI) of new applications against the training data, for the score
and for every scorecard input (on the scorecard's bins).

    PSI = Σ (actual% − expected%) · ln(actual% / expected%)

below 0.10 stable, 0.10–0.25 watch, at or above `ALERT_PSI` (0.25) an alert: the population
has shifted enough that the model should be reviewed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crowdleverage.credit.data import Frame
from crowdleverage.credit.scorecard import Scorecard

WATCH_PSI = 0.10
ALERT_PSI = 0.25
_FLOOR = 1e-4


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(np.asarray(expected, dtype=float), _FLOOR)
    a = np.maximum(np.asarray(actual, dtype=float), _FLOOR)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def reference(scorecard: Scorecard, train_pd: np.ndarray, deciles: int = 10) -> dict[str, Any]:
    """What PSI compares against: the training PD deciles and each input's bin shares."""
    edges = np.quantile(train_pd, np.linspace(0, 1, deciles + 1)[1:-1])
    edges = np.unique(edges)
    shares = np.bincount(np.searchsorted(edges, train_pd, side="right"), minlength=len(edges) + 1)
    return {
        "score_edges": [float(e) for e in edges],
        "score_shares": [float(s) / len(train_pd) for s in shares],
        "inputs": {b.name: [c / max(1, sum(b.counts)) for c in b.counts] for b in scorecard.bins},
    }


def status(value: float, alert: float = ALERT_PSI) -> str:
    return "alert" if value >= alert else "watch" if value >= WATCH_PSI else "stable"


def population_report(
    ref: dict[str, Any], scorecard: Scorecard, frame: Frame, pds: np.ndarray,
    *, alert: float = ALERT_PSI,
) -> dict[str, Any]:  # fmt: skip
    edges = np.asarray(ref["score_edges"])
    actual = np.bincount(np.searchsorted(edges, pds, side="right"), minlength=len(edges) + 1)
    score_psi = psi(np.asarray(ref["score_shares"]), actual)
    idx, _ = scorecard.woe_matrix(frame)
    inputs = {}
    for j, b in enumerate(scorecard.bins):
        counts = np.bincount(idx[:, j], minlength=len(b.labels))
        v = psi(np.asarray(ref["inputs"][b.name]), counts)
        inputs[b.name] = {"psi": round(v, 4), "status": status(v, alert)}
    alerts = [k for k, v in inputs.items() if v["status"] == "alert"]
    if status(score_psi, alert) == "alert":
        alerts.insert(0, "score")
    return {
        "n": len(pds),
        "alert_threshold": alert,
        "score": {"psi": round(score_psi, 4), "status": status(score_psi, alert)},
        "inputs": inputs,
        "alerts": alerts,
    }
