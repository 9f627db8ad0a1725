"""Probability calibration of a raw score (log-odds): Platt scaling or isotonic regression,
chosen on the validation data by a 2-fold cross-fit there (each method is fitted on one half
and scored by log loss on the other), then refitted on the whole validation set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

_EPS = 1e-4


@dataclass(frozen=True, slots=True)
class Calibrator:
    method: str  # "platt" | "isotonic"
    a: float = 1.0  # platt: p = sigmoid(a * raw + b)
    b: float = 0.0
    xs: tuple[float, ...] = ()  # isotonic: knots, interpolated linearly
    ys: tuple[float, ...] = ()
    cv_log_loss: dict[str, float] | None = None

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-(self.a * raw + self.b)))
        p = np.interp(raw, np.asarray(self.xs), np.asarray(self.ys))
        return np.clip(p, _EPS, 1 - _EPS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method, "a": self.a, "b": self.b, "xs": list(self.xs),
            "ys": list(self.ys), "cv_log_loss": self.cv_log_loss,
        }  # fmt: skip

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Calibrator:
        return Calibrator(
            d["method"], d["a"], d["b"], tuple(d["xs"]), tuple(d["ys"]), d.get("cv_log_loss")
        )


def _fit(method: str, raw: np.ndarray, y: np.ndarray) -> Calibrator:
    if method == "platt":
        lr = LogisticRegression(C=1e6).fit(raw.reshape(-1, 1), y)
        return Calibrator("platt", float(lr.coef_[0, 0]), float(lr.intercept_[0]))
    iso = IsotonicRegression(out_of_bounds="clip", y_min=_EPS, y_max=1 - _EPS).fit(raw, y)
    return Calibrator(
        "isotonic",
        xs=tuple(float(x) for x in iso.X_thresholds_),
        ys=tuple(float(v) for v in iso.y_thresholds_),
    )


def fit_calibrator(
    raw: np.ndarray, y: np.ndarray, *, method: str = "auto", seed: int = 0
) -> Calibrator:
    if method != "auto":
        return _fit(method, raw, y)
    losses: dict[str, float] = {}
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    for m in ("platt", "isotonic"):
        scores = []
        for a, b in folds.split(raw, y):
            cal = _fit(m, raw[a], y[a])
            scores.append(log_loss(y[b], np.clip(cal(raw[b]), _EPS, 1 - _EPS)))
        losses[m] = round(float(np.mean(scores)), 5)
    best = min(losses, key=lambda k: losses[k])
    chosen = _fit(best, raw, y)
    return Calibrator(chosen.method, chosen.a, chosen.b, chosen.xs, chosen.ys, losses)
