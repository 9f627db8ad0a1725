"""The transparent baseline: a points scorecard, logistic regression on the weight of evidence
(WoE) of optimally binned features.

Binning: optbinning's `OptimalBinning` finds the bins of each feature on the training rows
only (monotone in the risk direction the config names, else `auto_asc_desc`); the bins, their
counts and WoE are then kept as plain tables (JSON), so scoring needs no optbinning object and
an auditor can read every bin. WoE here is oriented to risk: ln(share of defaults / share of
non-defaults), +0.5 smoothing; missing values (and categories not seen in training) have their
own bin. Features with an information value below `MIN_IV` are left out, and a feature whose
coefficient comes out negative (collinear with others) is dropped and the regression refitted,
so every point table keeps its bins' order of risk.

Points: score = offset + factor·ln(odds good:bad), factor = pdo / ln 2,
offset = base_points − factor·ln(base_odds); each feature's bin carries
−factor·β·WoE plus its share of the intercept. A higher score is a lower risk.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from crowdleverage.credit.config import ScorecardConfig
from crowdleverage.credit.data import Feature, Frame

MIN_IV = 0.02
_TREND = {"increasing": "ascending", "decreasing": "descending", "auto": "auto_asc_desc"}


@dataclass(frozen=True, slots=True)
class BinTable:
    """One feature's bins; the last bin is the missing/unknown bin."""

    name: str
    kind: str
    splits: tuple[float, ...]  # numeric: bin i is [splits[i-1], splits[i])
    groups: dict[str, int]  # categorical: category → bin
    labels: tuple[str, ...]
    counts: tuple[int, ...]
    bads: tuple[int, ...]
    woe: tuple[float, ...]
    iv: float

    def index(self, col: Any) -> np.ndarray:
        """Bin of each value (a Series or an array); missing and unknown → the last bin."""
        miss = len(self.labels) - 1
        if self.kind == "numeric":
            x = np.asarray(col, dtype=float)
            out = np.searchsorted(np.asarray(self.splits, dtype=float), x, side="right")
            out[np.isnan(x)] = miss
            return out
        return np.fromiter((self.groups.get(v, miss) for v in col), dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "splits": list(self.splits),
            "groups": self.groups, "labels": list(self.labels), "counts": list(self.counts),
            "bads": list(self.bads), "woe": list(self.woe), "iv": self.iv,
        }  # fmt: skip

    @staticmethod
    def from_dict(d: dict[str, Any]) -> BinTable:
        return BinTable(
            d["name"], d["kind"], tuple(d["splits"]), dict(d["groups"]), tuple(d["labels"]),
            tuple(d["counts"]), tuple(d["bads"]), tuple(d["woe"]), d["iv"],
        )  # fmt: skip


def fit_bins(col: pd.Series, y: np.ndarray, feat: Feature, cfg: ScorecardConfig) -> BinTable:
    from optbinning import OptimalBinning  # heavy import: only when training

    kind = feat.kind
    ob = OptimalBinning(
        name=feat.name,
        dtype="numerical" if kind == "numeric" else "categorical",
        monotonic_trend=_TREND[feat.direction] if kind == "numeric" else "auto",
        max_n_bins=cfg.max_bins,
        min_bin_size=cfg.min_bin_size,
    )
    x = col.to_numpy(dtype=float) if kind == "numeric" else col.to_numpy(dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ob.fit(x, y)
    if kind == "numeric":
        splits = tuple(float(s) for s in ob.splits)
        edges = ("-inf", *(f"{s:g}" for s in splits), "inf")
        labels = tuple(f"[{edges[i]}, {edges[i + 1]})" for i in range(len(splits) + 1))
        groups: dict[str, int] = {}
    else:
        splits = ()
        groups = {str(c): i for i, grp in enumerate(ob.splits) for c in grp}
        labels = tuple(
            " | ".join(sorted(c for c, g in groups.items() if g == i))
            for i in range(len(ob.splits))
        )
    labels = (*labels, "missing")
    draft = BinTable(feat.name, kind, splits, groups, labels, (), (), (), 0.0)
    return _with_counts(draft, draft.index(col), y)


def _with_counts(t: BinTable, idx: np.ndarray, y: np.ndarray) -> BinTable:
    n = len(t.labels)
    counts = np.bincount(idx, minlength=n)
    bads = np.bincount(idx, weights=y, minlength=n).astype(int)
    goods = counts - bads
    tb, tg = max(1, int(y.sum())), max(1, len(y) - int(y.sum()))
    bad_share = (bads + 0.5) / (tb + 0.5 * n)
    good_share = (goods + 0.5) / (tg + 0.5 * n)
    woe = np.log(bad_share / good_share)
    woe[counts == 0] = 0.0  # an empty bin (no missing value in training) is neutral
    iv = float(np.sum((bad_share - good_share) * woe))
    return BinTable(
        t.name, t.kind, t.splits, t.groups, t.labels, tuple(int(c) for c in counts),
        tuple(int(b) for b in bads), tuple(round(float(w), 6) for w in woe), round(iv, 5),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Scorecard:
    bins: tuple[BinTable, ...]
    coef: tuple[float, ...]
    intercept: float
    points: tuple[tuple[float, ...], ...]  # per feature, per bin
    factor: float
    offset: float
    dropped: dict[str, str]  # feature → why it is not in the scorecard

    def woe_matrix(self, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        idx = np.column_stack([b.index(frame[b.name]) for b in self.bins])
        woe = np.column_stack([np.asarray(b.woe)[idx[:, j]] for j, b in enumerate(self.bins)])
        return idx, woe

    def raw(self, frame: Frame) -> np.ndarray:
        """Log-odds of default."""
        _, woe = self.woe_matrix(frame)
        return woe @ np.asarray(self.coef) + self.intercept

    def score_points(self, idx: np.ndarray) -> np.ndarray:
        pts = np.column_stack([np.asarray(p)[idx[:, j]] for j, p in enumerate(self.points)])
        return pts.sum(axis=1)

    def adverse(self, idx: np.ndarray, top: int = 4) -> list[list[dict[str, Any]]]:
        """Per row, the features that cost the most points against their best bin."""
        out: list[list[dict[str, Any]]] = []
        best = [max(p) for p in self.points]
        for row in idx:
            lost = [
                (best[j] - self.points[j][k], j, k)
                for j, k in enumerate(row)
                if best[j] - self.points[j][k] > 0.05
            ]
            lost.sort(reverse=True)
            out.append([
                {"feature": self.bins[j].name, "value_bin": self.bins[j].labels[k],
                 "points_lost": round(v, 1)}
                for v, j, k in lost[:top]
            ])  # fmt: skip
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "bins": [b.to_dict() for b in self.bins], "coef": list(self.coef),
            "intercept": self.intercept, "points": [list(p) for p in self.points],
            "factor": self.factor, "offset": self.offset, "dropped": self.dropped,
        }  # fmt: skip

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Scorecard:
        return Scorecard(
            tuple(BinTable.from_dict(b) for b in d["bins"]), tuple(d["coef"]), d["intercept"],
            tuple(tuple(p) for p in d["points"]), d["factor"], d["offset"], dict(d["dropped"]),
        )  # fmt: skip


def fit_scorecard(
    frame: pd.DataFrame, y: np.ndarray, features: tuple[Feature, ...], cfg: ScorecardConfig
) -> Scorecard:
    dropped: dict[str, str] = {}
    tables: list[BinTable] = []
    for f in features:
        t = fit_bins(frame[f.name], y, f, cfg)
        if t.iv < MIN_IV:
            dropped[f.name] = f"information value {t.iv:.4f} < {MIN_IV}"
        else:
            tables.append(t)
    assert tables, "dev: no feature carries information"
    while True:
        woe = np.column_stack([np.asarray(t.woe)[t.index(frame[t.name])] for t in tables])
        lr = LogisticRegression(C=cfg.c, max_iter=1000).fit(woe, y)
        coef = lr.coef_[0]
        worst = int(np.argmin(coef))
        if coef[worst] > 0 or len(tables) == 1:
            break
        dropped[tables[worst].name] = f"negative coefficient {coef[worst]:.3f} (collinear)"
        tables.pop(worst)
    factor = cfg.pdo / math.log(2)
    offset = cfg.base_points - factor * math.log(cfg.base_odds)
    b0 = float(lr.intercept_[0])
    share = (offset - factor * b0) / len(tables)
    points = tuple(
        tuple(round(share - factor * float(coef[j]) * w, 3) for w in t.woe)
        for j, t in enumerate(tables)
    )
    return Scorecard(
        tuple(tables), tuple(float(c) for c in coef), b0, points, factor, offset, dropped
    )
