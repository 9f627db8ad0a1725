"""Credit model benchmark: discrimination and calibration on the held-out Taiwan test split and
German credit cross-validation, against a plain logistic regression on the raw inputs trained
in the same run (the baseline); then scoring speed of the shipped model, batched against one
application at a time, and the latency of one score.

Targets (issue 15): Taiwan test AUC ≥ 0.78, KS ≥ 0.42, ECE ≤ 0.02, the challenger ≥ 0.01 AUC
over the scorecard (or the scorecard kept, with the reason); German CV AUC ≥ 0.77; ≥ 5,000
applications/s batched; p99 of one score ≤ 20 ms.

    .venv/bin/python bench/credit.py
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from crowdleverage.credit import metrics, train
from crowdleverage.credit.config import CreditConfig, load_config
from crowdleverage.credit.data import Dataset, load_dataset, split_rows
from crowdleverage.credit.model import ModelRegistry
from crowdleverage.credit.registry import SHIPPED_MODELS
from crowdleverage.credit.samples import rows_as_applications

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "credit"


def _design(ds: Dataset, rows: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Baseline inputs: numerics standardised (train medians/scales), categoricals one-hot."""
    cols = []
    for f in ds.features:
        s, r = ds.frame[f.name].iloc[rows], ds.frame[f.name].iloc[ref]
        if f.kind == "numeric":
            med, sd = float(r.median()), float(r.std()) or 1.0
            cols.append(((s.fillna(med) - med) / sd).to_numpy()[:, None])
        else:
            cats = sorted(r.dropna().unique())
            cols.append(pd.get_dummies(pd.Categorical(s, categories=cats)).to_numpy(float))
    return np.hstack(cols)


def baseline_lr(ds: Dataset, train_rows: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
    x_tr, x_te = _design(ds, train_rows, train_rows), _design(ds, test_rows, train_rows)
    lr = LogisticRegression(max_iter=2000).fit(x_tr, ds.y[train_rows])
    return np.asarray(lr.predict_proba(x_te)[:, 1])


def mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def taiwan(cfg: CreditConfig) -> None:
    print("== Taiwan default (30,000 rows), held-out stratified test split")
    t = time.perf_counter()
    card = train.run(cfg, save=False)
    print(f"training (scorecard + challenger + calibration): {time.perf_counter() - t:.1f} s")
    ds = load_dataset(cfg)
    sp = split_rows(ds, cfg)
    base = metrics.summary(ds.y[sp.test], baseline_lr(ds, np.r_[sp.train, sp.valid], sp.test))
    rows: dict[str, Any] = {**{m: v["test"] for m, v in card["metrics"].items()},
                            "baseline LR (raw)": base}  # fmt: skip
    print(f"{'model':20} {'AUC':>7} {'KS':>7} {'ECE':>7} {'Brier':>7}")
    for name, m in rows.items():
        print(f"{name:20} {m['auc']:7.4f} {m['ks']:7.4f} {m['ece']:7.4f} {m['brier']:7.4f}")
    champ = card["champion"]["model"]
    c = card["metrics"][champ]["test"]
    print(f"champion: {champ} ({card['champion']['reason']})")
    print(f"  AUC {c['auc']:.4f} vs 0.78: {mark(c['auc'] >= 0.78)} ({c['auc'] - 0.78:+.4f})")
    print(f"  KS  {c['ks']:.4f} vs 0.42: {mark(c['ks'] >= 0.42)} ({c['ks'] - 0.42:+.4f})")
    print(f"  ECE {c['ece']:.4f} vs 0.02: {mark(c['ece'] <= 0.02)} ({0.02 - c['ece']:+.4f})")
    gain = c["auc"] - card["metrics"]["scorecard"]["test"]["auc"]
    print(f"  champion over scorecard, test AUC: {gain:+.4f}; over the baseline LR: "
          f"{c['auc'] - base['auc']:+.4f}")  # fmt: skip


def german(cfg: CreditConfig) -> None:
    print("\n== German credit (1,000 rows), stratified 5-fold cross-validation")
    cv = train.cross_validate(cfg)
    ds = load_dataset(cfg)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=cfg.split.seed)
    base = [metrics.auc(ds.y[b], baseline_lr(ds, a, b)) for a, b in folds.split(ds.frame, ds.y)]
    for m in ("scorecard", "challenger"):
        a = cv[m]["auc"]
        print(f"{m:20} AUC {a['mean']:.4f} ± {a['std']:.4f}  KS {cv[m]['ks']['mean']:.4f}")
    print(f"{'baseline LR (raw)':20} AUC {np.mean(base):.4f} ± {np.std(base):.4f}")
    best = max(cv["scorecard"]["auc"]["mean"], cv["challenger"]["auc"]["mean"])
    print(f"best CV AUC {best:.4f} vs 0.77: {mark(best >= 0.77)} ({best - 0.77:+.4f})")


def speed() -> None:
    print("\n== scoring speed (shipped model, reasons included)")
    model = ModelRegistry(SHIPPED_MODELS).load()
    apps = rows_as_applications(model, DATA / "credit_taiwan_default_30000_uci.csv")
    model.score_frame(model.frame_of(apps[:100]))  # warm up
    t = time.perf_counter()
    model.score_frame(model.frame_of(apps))
    batched = len(apps) / (time.perf_counter() - t)
    lat = []
    for app in apps[:1000]:
        t = time.perf_counter()
        model.score(app)
        lat.append(time.perf_counter() - t)
    single = 1 / float(np.mean(lat))
    p50, p99 = (float(np.percentile(lat, q)) * 1000 for q in (50, 99))
    print(f"batched ({len(apps)} applications): {batched:,.0f} applications/s "
          f"vs 5,000: {mark(batched >= 5000)}")  # fmt: skip
    print(f"baseline, one at a time:           {single:,.0f} applications/s "
          f"(batched is {batched / single:.1f}x)")  # fmt: skip
    print(f"one score: p50 {p50:.2f} ms, p99 {p99:.2f} ms vs 20 ms: {mark(p99 <= 20)}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tw = dataclasses.replace(load_config(DATA / "taiwan.toml"), registry=Path(tmp))
        taiwan(tw)
        german(load_config(DATA / "german.toml"))
    speed()


if __name__ == "__main__":
    main()
