"""Discrimination and calibration metrics of PD estimates (1 = default)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

ECE_BINS = 10


def auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p))


def ks(y: np.ndarray, p: np.ndarray) -> float:
    """Kolmogorov-Smirnov: the largest gap between the score distributions of defaults and
    non-defaults (max TPR - FPR)."""
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def ece(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error over `bins` equal-count bins of the predicted PD: the mean
    absolute gap between mean predicted PD and observed default rate, weighted by bin size."""
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            total += abs(float(p[chunk].mean()) - float(y[chunk].mean())) * len(chunk)
    return total / len(p)


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(brier_score_loss(y, p))


def summary(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "auc": round(auc(y, p), 4),
        "gini": round(2 * auc(y, p) - 1, 4),
        "ks": round(ks(y, p), 4),
        "ece": round(ece(y, p), 4),
        "brier": round(brier(y, p), 4),
        "default_rate": round(float(y.mean()), 4),
        "mean_pd": round(float(p.mean()), 4),
        "n": len(y),
    }
