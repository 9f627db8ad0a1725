"""Loading a credit data set as the config describes it: the target mapped to 0/1 (1 = the
configured positive label, a default), columns typed (declared, else numeric when every value
parses), identifiers and protected attributes kept apart from the inputs, and the split.

Typing rules (so an unseen data set works from its config alone):
- empty cells and the usual missing markers (NA, N/A, ?, null, none, -) are missing values;
- a declared numeric column must parse (a value that does not is a ConfigError naming it);
- an undeclared column is numeric when every present value parses, else categorical;
- a categorical column with more distinct values than half the rows (an identifier, free text)
  and a column with a single value carry no signal and are left out, with the reason recorded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from crowdleverage.credit.config import CreditConfig, _label
from crowdleverage.domain.errors import ConfigError, DataFileError

# Model inputs by column: a DataFrame in training, plain arrays when scoring (no pandas cost).
Frame = pd.DataFrame | dict[str, np.ndarray]

MISSING_MARKERS = [
    "",
    "NA",
    "N/A",
    "n/a",
    "na",
    "NaN",
    "nan",
    "?",
    "null",
    "NULL",
    "None",
    "none",
    "-",
]


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    kind: str  # "numeric" | "categorical"
    direction: str  # "increasing" | "decreasing" | "auto" (risk direction)
    has_missing: bool
    lo: float | None = None  # numeric range accepted when scoring
    hi: float | None = None
    categories: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "direction": self.direction,
            "has_missing": self.has_missing,
            "lo": self.lo,
            "hi": self.hi,
            "categories": list(self.categories),
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Feature:
        return Feature(
            d["name"], d["kind"], d["direction"], d["has_missing"], d["lo"], d["hi"],
            tuple(d["categories"]),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Dataset:
    frame: pd.DataFrame  # typed inputs: numeric float64, categorical object (str or NaN)
    y: np.ndarray  # 0/1, 1 = default
    protected: pd.DataFrame  # the fairness columns, reported only
    time: pd.Series | None
    features: tuple[Feature, ...]
    sha256: str
    rows_dropped: int  # rows without a target value
    notes: tuple[str, ...] = field(default=())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_dataset(cfg: CreditConfig) -> Dataset:
    try:
        raw = pd.read_csv(
            cfg.data, dtype=str, keep_default_na=False, na_values=MISSING_MARKERS,
            skipinitialspace=True, sep=_delimiter(cfg.data),
        )  # fmt: skip
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataFileError(str(cfg.data), None, str(exc)) from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    named = [cfg.target, *cfg.drop, *cfg.categorical, *cfg.numeric, *cfg.monotone]
    named += [c for c in (cfg.fairness.sex, cfg.fairness.age, cfg.split.time_column) if c]
    missing = sorted({c for c in named if c not in raw.columns})
    if missing:
        raise ConfigError(
            f"credit config: columns not in {cfg.data.name}: {missing}", columns=list(raw.columns)
        )
    target = raw[cfg.target].map(lambda v: v if pd.isna(v) else _label(v))
    keep = target.notna().to_numpy()
    labels = set(target[keep].unique())
    if cfg.positive not in labels:
        raise ConfigError(
            f"credit config: target.positive {cfg.positive!r} is not a value of "
            f"{cfg.target} (found {sorted(labels)[:10]})"
        )
    if len(labels) < 2:
        raise ConfigError(f"credit config: target {cfg.target} has a single value")
    raw = raw.loc[keep].reset_index(drop=True)
    y = (target[keep].to_numpy() == cfg.positive).astype(np.int8)
    excluded = set(cfg.excluded)
    frame = pd.DataFrame(index=raw.index)
    features: list[Feature] = []
    notes: list[str] = []
    for col in raw.columns:
        if col in excluded:
            continue
        typed, kind = _type_column(raw[col], col, cfg)
        nunique = typed.nunique(dropna=True)
        if nunique <= 1:
            notes.append(f"{col}: left out, a single value")
            continue
        if kind == "categorical" and nunique > len(typed) // 2:
            notes.append(f"{col}: left out, {nunique} distinct values (an identifier?)")
            continue
        frame[col] = typed
        features.append(_describe(col, typed, kind, cfg.monotone.get(col, "auto")))
    if not features:
        raise ConfigError("credit config: no input column is left")
    protected = pd.DataFrame(index=raw.index)
    if cfg.fairness.sex:
        protected["sex"] = raw[cfg.fairness.sex].map(
            lambda v: "unknown" if pd.isna(v) else cfg.fairness.sex_labels.get(_label(v), str(v))
        )
    if cfg.fairness.age:
        protected["age"] = pd.to_numeric(raw[cfg.fairness.age], errors="coerce")
    time = raw[cfg.split.time_column] if cfg.split.time_column else None
    return Dataset(
        frame, y, protected, time, tuple(features), file_sha256(cfg.data),
        int((~keep).sum()), tuple(notes),
    )  # fmt: skip


_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
_DECIMAL_COMMA = re.compile(r"^-?\d+,\d+$")


def _clean_number(text: str) -> str:
    """ "1,234.5" → 1234.5 (grouping), "12,5" → 12.5 (decimal comma), "12%" / "¥300" → 12 / 300."""
    t = text.strip().strip("%$¥€£").strip()
    if _THOUSANDS.match(t):
        return t.replace(",", "")
    if _DECIMAL_COMMA.match(t):
        return t.replace(",", ".")
    return t


def _delimiter(path: Path) -> str:
    """Comma, semicolon or tab: whichever the header line has most of."""
    with path.open(encoding="utf-8", errors="replace") as f:
        header = f.readline()
    return max((",", ";", "\t"), key=header.count)


def _type_column(s: pd.Series, col: str, cfg: CreditConfig) -> tuple[pd.Series, str]:
    if col in cfg.categorical:
        return s.astype(object).where(s.notna(), np.nan), "categorical"
    parsed = pd.to_numeric(s, errors="coerce")
    bad = parsed.isna() & s.notna()
    if bad.any():  # thousands separators, a decimal comma, a % or currency sign
        retry = pd.to_numeric(s.map(_clean_number, na_action="ignore"), errors="coerce")
        if not (retry.isna() & s.notna()).any():
            parsed, bad = retry, retry.isna() & s.notna()
    if col in cfg.numeric:
        if bad.any():
            sample = s[bad].iloc[0]
            raise ConfigError(f"credit config: numeric column {col} has the value {sample!r}")
        return parsed.astype(float), "numeric"
    if bad.any():
        return s.astype(object).where(s.notna(), np.nan), "categorical"
    return parsed.astype(float), "numeric"


def _describe(col: str, s: pd.Series, kind: str, direction: str) -> Feature:
    has_missing = bool(s.isna().any())
    if kind == "numeric":
        lo, hi = float(s.min()), float(s.max())
        span = hi - lo
        # Scoring accepts the training range widened by its span; a non-negative input stays so.
        low = max(0.0, lo - span) if lo >= 0 else lo - span
        return Feature(col, kind, direction, has_missing, low, hi + span)
    cats = tuple(sorted(str(v) for v in s.dropna().unique()))
    return Feature(col, kind, "auto", has_missing, categories=cats)


@dataclass(frozen=True, slots=True)
class Split:
    train: np.ndarray  # row indices
    valid: np.ndarray
    test: np.ndarray
    description: str


def split_rows(ds: Dataset, cfg: CreditConfig) -> Split:
    """Stratified by the target (seeded), or out of time: the newest rows are the test set,
    the ones before them the validation set."""
    n = len(ds.y)
    idx = np.arange(n)
    sc = cfg.split
    if sc.method == "out_of_time":
        assert ds.time is not None, "dev: config checked the time column"
        order = np.argsort(pd.to_datetime(ds.time, errors="coerce").to_numpy(), kind="stable")
        n_test, n_valid = int(n * sc.test), int(n * sc.valid)
        test = order[n - n_test :]
        valid = order[n - n_test - n_valid : n - n_test]
        train = order[: n - n_test - n_valid]
        desc = f"out of time on {sc.time_column}: oldest {len(train)} train, next {len(valid)} " \
               f"validation, newest {len(test)} test"  # fmt: skip
        return Split(np.sort(train), np.sort(valid), np.sort(test), desc)
    rest, test = train_test_split(idx, test_size=sc.test, stratify=ds.y, random_state=sc.seed)
    train, valid = train_test_split(
        rest, test_size=sc.valid / (1 - sc.test), stratify=ds.y[rest], random_state=sc.seed + 1
    )
    desc = (
        f"stratified by the target, seed {sc.seed}: {len(train)} train, {len(valid)} validation "
        f"(calibration, champion choice), {len(test)} held-out test"
    )
    return Split(np.sort(train), np.sort(valid), np.sort(test), desc)
