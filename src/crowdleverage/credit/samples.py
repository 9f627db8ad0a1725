"""Real rows of a credit data set as applications: the demo's borrowers and the tests pick
applicants from the shipped data whose PD (under the model in use) falls in a wanted band."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crowdleverage.credit.data import MISSING_MARKERS
from crowdleverage.credit.model import CreditModel
from crowdleverage.domain.errors import NotFound


def rows_as_applications(
    model: CreditModel, csv: Path, *, limit: int | None = None
) -> list[dict[str, Any]]:
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=MISSING_MARKERS, nrows=limit)
    out: list[dict[str, Any]] = []
    for rec in raw.to_dict("records"):
        app: dict[str, Any] = {}
        for f in model.features:
            v = rec.get(f.name)
            if v is None or (isinstance(v, float) and np.isnan(v)):
                app[f.name] = None
            elif f.kind == "numeric":
                app[f.name] = float(v)
            else:
                app[f.name] = str(v)
        out.append(app)
    return out


def pick(
    model: CreditModel, csv: Path, bands: list[tuple[float, float]], *, limit: int = 5000
) -> list[dict[str, Any]]:
    """For each (low, high) band, the first row of the file (among the first `limit`) whose PD
    is in [low, high)."""
    apps = rows_as_applications(model, csv, limit=limit)
    pds = model.probability(model.frame_of(apps))
    chosen: list[dict[str, Any]] = []
    used: set[int] = set()
    for lo, hi in bands:
        hits = [i for i in np.flatnonzero((pds >= lo) & (pds < hi)) if i not in used]
        if not hits:
            raise NotFound(f"no row of {csv.name} has a PD in [{lo}, {hi})")
        used.add(int(hits[0]))
        chosen.append(apps[int(hits[0])])
    return chosen
