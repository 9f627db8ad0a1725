"""The training pipeline: config → data → split → scorecard and challenger → calibration →
metrics, champion choice, fairness → model card and registry version. `evaluate` runs the same
pipeline without saving and adds stratified k-fold cross-validation.

Champion rule: the challenger becomes champion only if its validation AUC beats the
scorecard's by at least `challenger.min_gain`; otherwise the scorecard (transparent, fewer
moving parts) is kept and the card says why. The test rows are used for nothing but the
reported metrics and the fairness report.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from crowdleverage.credit import fairness, metrics, monitor
from crowdleverage.credit.boosted import Challenger, fit_challenger
from crowdleverage.credit.calibration import Calibrator, fit_calibrator
from crowdleverage.credit.config import CreditConfig
from crowdleverage.credit.data import Dataset, load_dataset, split_rows
from crowdleverage.credit.model import ModelRegistry
from crowdleverage.credit.scorecard import Scorecard, fit_scorecard

log = logging.getLogger("crowdleverage.credit")

LIMITS = (
    "Trained on one historical portfolio; PDs hold for a population like it (PSI monitors "
    "drift). Age and sex are excluded from the inputs but proxies may remain: read the fairness "
    "report. A score supports, and never replaces, the credit officer's review; a referral or "
    "an override is decided by a person."
)


@dataclass
class Fitted:
    scorecard: Scorecard
    challenger: Challenger
    calibrators: dict[str, Calibrator]


def _fit(cfg: CreditConfig, ds: Dataset, train: np.ndarray, valid: np.ndarray) -> Fitted:
    xt, yt = ds.frame.iloc[train].reset_index(drop=True), ds.y[train]
    xv, yv = ds.frame.iloc[valid].reset_index(drop=True), ds.y[valid]
    sc = fit_scorecard(xt, yt, ds.features, cfg.scorecard)
    ch = fit_challenger(xt, yt, (xv, yv), ds.features, cfg.challenger, seed=cfg.split.seed)
    cals = {
        "scorecard": fit_calibrator(sc.raw(xv), yv, seed=cfg.split.seed),
        "challenger": fit_calibrator(ch.raw(xv), yv, seed=cfg.split.seed),
    }
    return Fitted(sc, ch, cals)


def _pd(f: Fitted, which: str, frame: pd.DataFrame) -> np.ndarray:
    raw = f.scorecard.raw(frame) if which == "scorecard" else f.challenger.raw(frame)
    return np.asarray(f.calibrators[which](raw))


def _champion(cfg: CreditConfig, valid_auc: dict[str, float]) -> dict[str, Any]:
    gain = valid_auc["challenger"] - valid_auc["scorecard"]
    need = cfg.challenger.min_gain
    if gain >= need:
        why = f"challenger validation AUC {gain:+.4f} over the scorecard (≥ {need})"
        return {"model": "challenger", "reason": why, "validation_auc_gain": round(gain, 4)}
    why = (
        f"scorecard kept: the challenger adds {gain:+.4f} validation AUC, less than the "
        f"{need} required to give up the transparent scorecard"
    )
    return {"model": "scorecard", "reason": why, "validation_auc_gain": round(gain, 4)}


def run(cfg: CreditConfig, *, save: bool = True, promote: bool = True,
        now: dt.datetime | None = None) -> dict[str, Any]:  # fmt: skip
    """Train, evaluate on the held-out test rows, and (with `save`) store a registry version.
    Returns the model card."""
    at = now or dt.datetime.now(dt.UTC)
    ds = load_dataset(cfg)
    sp = split_rows(ds, cfg)
    fitted = _fit(cfg, ds, sp.train, sp.valid)
    xv, yv = ds.frame.iloc[sp.valid].reset_index(drop=True), ds.y[sp.valid]
    xs, ys = ds.frame.iloc[sp.test].reset_index(drop=True), ds.y[sp.test]
    per_model: dict[str, Any] = {}
    for m in ("scorecard", "challenger"):
        per_model[m] = {
            "validation": metrics.summary(yv, _pd(fitted, m, xv)),
            "test": metrics.summary(ys, _pd(fitted, m, xs)),
            "calibration": fitted.calibrators[m].method,
            "calibration_cv_log_loss": fitted.calibrators[m].cv_log_loss,
        }
    champ = _champion(cfg, {m: per_model[m]["validation"]["auc"] for m in per_model})
    test_pd = _pd(fitted, champ["model"], xs)
    train_pd = _pd(fitted, champ["model"], ds.frame.iloc[sp.train].reset_index(drop=True))
    fair = fairness.report(
        ds.protected.iloc[sp.test].reset_index(drop=True), ys, test_pd,
        approve_pd=cfg.approve_pd, bands=cfg.fairness.age_bands,
    )  # fmt: skip
    version = f"{cfg.name}-{at:%Y%m%dT%H%M%S}-{ds.sha256[:8]}"
    card: dict[str, Any] = {
        "name": cfg.name,
        "created_at": at.isoformat(timespec="seconds"),
        "data": {
            "file": cfg.data.name, "sha256": ds.sha256, "rows": len(ds.y),
            "rows_without_target": ds.rows_dropped, "default_rate": round(float(ds.y.mean()), 4),
            "target": cfg.target, "positive_label": cfg.positive,
        },
        "features": [f.to_dict() for f in ds.features],
        "excluded_columns": list(cfg.excluded),
        "typing_notes": list(ds.notes),
        "scorecard_dropped": fitted.scorecard.dropped,
        "split": sp.description,
        "metrics": per_model,
        "champion": champ,
        "fairness": fair,
        "limits": LIMITS,
        "labels": cfg.labels,
        "config": str(cfg.source) if cfg.source else None,
    }  # fmt: skip
    if save:
        files = {
            "features.json": json.dumps([f.to_dict() for f in ds.features]).encode(),
            "scorecard.json": json.dumps(fitted.scorecard.to_dict()).encode(),
            "challenger.txt": fitted.challenger.model_text().encode(),
            "calibration.json": json.dumps(
                {k: c.to_dict() for k, c in fitted.calibrators.items()}
            ).encode(),
            "reference.json": json.dumps(monitor.reference(fitted.scorecard, train_pd)).encode(),
        }
        registry = ModelRegistry(cfg.registry)
        folder = registry.save(version, files, card)
        if promote:
            registry.promote(version)
        card = json.loads((folder / "card.json").read_text("utf-8"))
        log.info("credit model trained", extra={"version": version, "champion": champ["model"]})
    else:
        card["version"] = version
    return card


def cross_validate(cfg: CreditConfig) -> dict[str, Any]:
    """Stratified k-fold: each fold's training part is split again (a stratified 25%) for early
    stopping and calibration; AUC, KS and ECE are measured on the held-out fold."""
    ds = load_dataset(cfg)
    k = cfg.split.cv_folds
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=cfg.split.seed)
    scores: dict[str, list[dict[str, float]]] = {"scorecard": [], "challenger": []}
    for rest, held in folds.split(ds.frame, ds.y):
        inner = StratifiedKFold(n_splits=4, shuffle=True, random_state=cfg.split.seed + 1)
        a, b = next(inner.split(rest, ds.y[rest]))
        fitted = _fit(cfg, ds, rest[a], rest[b])
        xh, yh = ds.frame.iloc[held].reset_index(drop=True), ds.y[held]
        for m in scores:
            p = _pd(fitted, m, xh)
            scores[m].append({"auc": metrics.auc(yh, p), "ks": metrics.ks(yh, p),
                              "ece": metrics.ece(yh, p)})  # fmt: skip
    out: dict[str, Any] = {"folds": k}
    for m, rows in scores.items():
        out[m] = {
            key: {"mean": round(float(np.mean([r[key] for r in rows])), 4),
                  "std": round(float(np.std([r[key] for r in rows])), 4)}
            for key in ("auc", "ks", "ece")
        }  # fmt: skip
    return out


def evaluate(cfg: CreditConfig, *, cv: bool = True) -> dict[str, Any]:
    card = run(cfg, save=False)
    out = {"name": cfg.name, "split": card["split"], "metrics": card["metrics"],
           "champion": card["champion"], "fairness": card["fairness"]}  # fmt: skip
    if cv:
        out["cross_validation"] = cross_validate(cfg)
    return out
