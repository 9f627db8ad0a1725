"""The challenger: gradient-boosted trees (LightGBM) with monotone constraints in the risk
directions the config names (categoricals and "auto" columns are unconstrained), early stopping
on the validation rows. Reason codes come from LightGBM's own TreeSHAP contributions
(`pred_contrib`): the features that pushed this applicant's log-odds of default up the most."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from crowdleverage.credit.config import ChallengerConfig
from crowdleverage.credit.data import Feature

_SIGN = {"increasing": 1, "decreasing": -1, "auto": 0}


def encode(frame: pd.DataFrame, features: tuple[Feature, ...]) -> np.ndarray:
    """Numeric columns as floats (NaN = missing); a categorical as its index in the training
    categories (unknown or missing = NaN)."""
    cols = []
    for f in features:
        s = frame[f.name]
        if f.kind == "numeric":
            cols.append(s.to_numpy(dtype=float))
        else:
            codes = {c: float(i) for i, c in enumerate(f.categories)}
            cols.append(s.map(codes).to_numpy(dtype=float))
    return np.column_stack(cols)


@dataclass
class Challenger:
    booster: lgb.Booster
    features: tuple[Feature, ...]

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(encode(frame, self.features), raw_score=True))

    def adverse(self, frame: pd.DataFrame, top: int = 4) -> list[list[dict[str, Any]]]:
        contrib = np.asarray(self.booster.predict(encode(frame, self.features), pred_contrib=True))[
            :, :-1
        ]  # the last column is the expected value
        out: list[list[dict[str, Any]]] = []
        for i, row in enumerate(contrib):
            order = np.argsort(-row)[:top]
            out.append([
                {"feature": self.features[j].name,
                 "value": _plain(frame.iloc[i][self.features[j].name]),
                 "log_odds_added": round(float(row[j]), 3)}
                for j in order if row[j] > 0.005
            ])  # fmt: skip
        return out

    def model_text(self) -> str:
        return str(self.booster.model_to_string())


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
