"""The challenger: gradient-boosted trees (LightGBM) with monotone constraints in the risk
directions the config names (categoricals and "auto" columns are unconstrained), early stopping
on the validation rows.

Reason codes are path attributions (Saabas): in every tree, each split on the applicant's path
credits its feature with the change of the tree's expected output from the node to the child
taken; per applicant these credits plus the trees' root values sum exactly to the model's
log-odds. The features with the largest positive credit (pushing the PD up) are the adverse
factors. LightGBM itself walks the trees (`pred_leaf`, so categorical and missing-value rules
are its own); the per-leaf credit tables are built once from the model dump, so a batch costs
one gather per tree. (Exact TreeSHAP, `pred_contrib`, costs ~2 ms per applicant here: too slow
for batches.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from crowdleverage.credit.config import ChallengerConfig
from crowdleverage.credit.data import Feature, Frame

_SIGN = {"increasing": 1, "decreasing": -1, "auto": 0}


def encode(frame: Frame, features: tuple[Feature, ...]) -> np.ndarray:
    """Numeric columns as floats (NaN = missing); a categorical as its index in the training
    categories (unknown or missing = NaN)."""
    cols = []
    for f in features:
        s = frame[f.name]
        if f.kind == "numeric":
            cols.append(np.asarray(s, dtype=float))
        else:
            codes = {c: float(i) for i, c in enumerate(f.categories)}
            cols.append(np.fromiter((codes.get(v, np.nan) for v in s), dtype=float))
    return np.column_stack(cols)


@dataclass
class Challenger:
    booster: lgb.Booster
    features: tuple[Feature, ...]
    _paths: tuple[float, list[np.ndarray]] | None = None

    def raw(self, frame: Frame) -> np.ndarray:
        x = encode(frame, self.features)
        return np.asarray(self.booster.predict(x, raw_score=True, num_threads=1))

    def contributions(self, frame: Frame) -> tuple[float, np.ndarray]:
        """(bias, per-feature log-odds credits); bias + row sum = the raw score."""
        if self._paths is None:
            self._paths = path_tables(self.booster, len(self.features))
        bias, tables = self._paths
        x = encode(frame, self.features)
        leaves = np.asarray(self.booster.predict(x, pred_leaf=True, num_threads=1))
        leaves = leaves.reshape(x.shape[0], -1)
        contrib = np.zeros((x.shape[0], len(self.features)))
        for t, table in enumerate(tables):
            contrib += table[leaves[:, t]]
        return bias, contrib

    def explain(self, frame: Frame, top: int = 4) -> tuple[np.ndarray, list[list[dict[str, Any]]]]:
        """The raw scores (from the credits, which sum to them) and the top adverse factors."""
        bias, contrib = self.contributions(frame)
        return bias + contrib.sum(axis=1), self._adverse(frame, contrib, top)

    def _adverse(self, frame: Frame, contrib: np.ndarray, top: int) -> list[list[dict[str, Any]]]:
        order = np.argsort(-contrib, axis=1)[:, :top]
        values = [np.asarray(frame[f.name]) for f in self.features]
        out: list[list[dict[str, Any]]] = []
        for i, row in enumerate(order):
            out.append([
                {"feature": self.features[j].name, "value": _plain(values[j][i]),
                 "log_odds_added": round(float(contrib[i, j]), 3)}
                for j in row if contrib[i, j] > 0.005
            ])  # fmt: skip
        return out

    def model_text(self) -> str:
        return str(self.booster.model_to_string())


def path_tables(booster: lgb.Booster, n_features: int) -> tuple[float, list[np.ndarray]]:
    """Per tree, a (leaves × features) table of the credits along the path to each leaf."""
    bias = 0.0
    tables: list[np.ndarray] = []
    for tree in booster.dump_model()["tree_info"]:
        root = tree["tree_structure"]
        table = np.zeros((max(1, tree["num_leaves"]), n_features))
        tables.append(table)
        if "split_feature" not in root:  # a single leaf
            bias += float(root.get("leaf_value", 0.0))
            continue
        bias += float(root["internal_value"])
        stack = [(root, np.zeros(n_features))]
        while stack:
            node, acc = stack.pop()
            for child in (node["left_child"], node["right_child"]):
                leaf = "leaf_index" in child
                value = child["leaf_value"] if leaf else child["internal_value"]
                credit = acc.copy()
                credit[node["split_feature"]] += float(value) - float(node["internal_value"])
                if leaf:
                    table[child["leaf_index"]] = credit
                else:
                    stack.append((child, credit))
    return bias, tables


def _plain(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return None if np.isnan(v) else float(v)
    return v


def fit_challenger(
    frame: pd.DataFrame,
    y: np.ndarray,
    valid: tuple[pd.DataFrame, np.ndarray],
    features: tuple[Feature, ...],
    cfg: ChallengerConfig,
    *,
    seed: int,
) -> Challenger:
    cats = [i for i, f in enumerate(features) if f.kind == "categorical"]
    params: dict[str, Any] = {
        "objective": "binary",
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_child_samples": cfg.min_child_samples,
        "bagging_fraction": cfg.subsample,
        "bagging_freq": 1,
        "feature_fraction": cfg.colsample,
        "lambda_l2": cfg.reg_lambda,
        "monotone_constraints": [
            _SIGN[f.direction] if f.kind == "numeric" else 0 for f in features
        ],
        "monotone_constraints_method": "advanced",
        "seed": seed,
        "num_threads": 1,
        "deterministic": True,
        "verbose": -1,
    }
    train = lgb.Dataset(encode(frame, features), y, categorical_feature=cats, free_raw_data=False)
    vx, vy = valid
    val = lgb.Dataset(encode(vx, features), vy, reference=train, categorical_feature=cats)
    booster = lgb.train(
        params, train, num_boost_round=cfg.n_estimators, valid_sets=[val],
        callbacks=[lgb.early_stopping(30, verbose=False)],
    )  # fmt: skip
    return Challenger(booster, features)


def load_challenger(text: str, features: tuple[Feature, ...]) -> Challenger:
    return Challenger(lgb.Booster(model_str=text), features)
