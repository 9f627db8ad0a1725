"""Fairness report: approval and default rates by age band and by sex on the held-out rows.
Age and sex are never model inputs (the config's fairness columns are excluded from the
features); they are only joined back here to report outcomes per group."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def age_band(age: float, bands: tuple[int, ...]) -> str:
    if np.isnan(age):
        return "unknown"
    lo = None
    for b in bands:
        if age < b:
            return f"<{b}" if lo is None else f"{lo}-{b - 1}"
        lo = b
    return f"{bands[-1]}+"


def report(
    protected: pd.DataFrame, y: np.ndarray, pd_: np.ndarray, *, approve_pd: float,
    bands: tuple[int, ...],
) -> dict[str, Any]:  # fmt: skip
    approved = pd_ < approve_pd
    out: dict[str, Any] = {"approve_if_pd_below": approve_pd, "groups": {}}
    groups: dict[str, pd.Series] = {}
    if "age" in protected:
        groups["age_band"] = protected["age"].map(lambda a: age_band(float(a), bands))
    if "sex" in protected:
        groups["sex"] = protected["sex"].astype(str)
    for name, g in groups.items():
        rows = []
        for value in sorted(g.unique()):
            m = (g == value).to_numpy()
            n = int(m.sum())
            appr = approved[m]
            rows.append({
                "group": value, "n": n,
                "approval_rate": round(float(appr.mean()), 4),
                "default_rate": round(float(y[m].mean()), 4),
                "mean_pd": round(float(pd_[m].mean()), 4),
                "default_rate_approved": round(float(y[m][appr].mean()), 4) if appr.any() else None,
            })  # fmt: skip
        rates = [r["approval_rate"] for r in rows if r["n"] >= 30]
        ratio = round(min(rates) / max(rates), 4) if rates and max(rates) > 0 else None
        out["groups"][name] = {"rows": rows, "approval_ratio_min_max": ratio}
    return out
