"""A messy credit data set the pipeline has never seen (tests/credit): ';' delimited, grouped
thousands, missing markers, a text target in mixed case, an identifier, a constant column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

MESSY_CONFIG = """name = "loans"
data = "loans.csv"
registry = "models"
[target]
column = "outcome"
positive = "defaulted"
[monotone]
late_payments = "increasing"
debt_ratio = "increasing"
[fairness]
sex = "gender"
age = "age"
[challenger]
n_estimators = 60
learning_rate = 0.1
"""


def messy_csv(path: Path, n: int = 3000) -> None:
    rng = np.random.default_rng(5)
    late = rng.poisson(0.8, n)
    debt = rng.uniform(0, 1.2, n)
    income = rng.lognormal(9, 0.5, n).round(0)
    employment = rng.choice(["salaried", "self-employed", "unemployed", "retired"], n)
    logit = -2.0 + 0.9 * late + 1.8 * debt - 0.4 * np.log(income / 8000)
    logit += np.where(employment == "unemployed", 1.0, 0.0)
    bad = rng.uniform(size=n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame({
        "customer_id": [f"C{i:06d}" for i in range(n)],
        "Income ": [f"{v:,.0f}" if i % 2 else f"{v:.0f}" for i, v in enumerate(income)],
        "employment": employment.astype(object),
        "debt_ratio": debt.round(3),
        "late_payments": late,
        "gender": rng.choice(["F", "M"], n),
        "age": rng.integers(19, 75, n),
        "constant": 1,
        "outcome": np.where(bad, "Defaulted", "Repaid"),
    })  # fmt: skip
    frame.loc[rng.choice(n, 150, replace=False), "Income "] = "?"
    frame.loc[rng.choice(n, 90, replace=False), "employment"] = ""
    frame.loc[rng.choice(n, 20, replace=False), "outcome"] = "NA"
    frame.to_csv(path, index=False, sep=";")  # grouped thousands, ";" as delimiter
