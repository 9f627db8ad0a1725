"""The training configuration: one TOML file names the data, the target, the column types and
the monotone directions, so a new data set needs no code change.

    name = "taiwan"
    data = "../../data/credit/credit_taiwan_default_30000_uci.csv"   # relative to this file
    registry = "../../var/credit/models"                            # optional
    [target]
    column = "Y"
    positive = "1"             # the label of a default ("bad"); compared as text
    [columns]
    drop = ["ID"]              # identifiers, never inputs
    categorical = ["X3"]       # everything else is typed from the data (numeric if it parses)
    numeric = []
    [monotone]                 # risk direction: "increasing" = a higher value, a higher PD
    X6 = "increasing"
    X1 = "decreasing"
    [fairness]                 # reported only; these columns are never inputs
    sex = "X2"
    sex_labels = { "1" = "male", "2" = "female" }
    age = "X5"
    [split]                    # "stratified" or "out_of_time" (then time_column)
    method = "stratified"
    test = 0.2
    valid = 0.2
    seed = 7
    cv_folds = 5
    [scorecard]                # points to double the odds, points at base odds
    pdo = 20
    base_points = 600
    base_odds = 50
    max_bins = 8
    [challenger]
    n_estimators = 300
    learning_rate = 0.05
    num_leaves = 15
    min_child_samples = 100
    [policy]
    approve_pd = 0.10          # the cut-off used by the fairness report's approval rate
    [labels]                   # how reasons name a column to the applicant
    X6 = { en = "repayment status last month", zh = "上月还款状态" }
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from crowdleverage.domain.errors import ConfigError

Direction = Literal["increasing", "decreasing", "auto"]
_DIRECTIONS = ("increasing", "decreasing", "auto")


@dataclass(frozen=True, slots=True)
class SplitConfig:
    method: Literal["stratified", "out_of_time"] = "stratified"
    time_column: str | None = None
    test: float = 0.2
    valid: float = 0.2
    seed: int = 7
    cv_folds: int = 5


@dataclass(frozen=True, slots=True)
class ScorecardConfig:
    pdo: float = 20.0
    base_points: float = 600.0
    base_odds: float = 50.0
    max_bins: int = 8
    min_bin_size: float = 0.05
    c: float = 1.0  # inverse L2 strength of the logistic regression


@dataclass(frozen=True, slots=True)
class ChallengerConfig:
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 100
    subsample: float = 0.8
    colsample: float = 0.8
    reg_lambda: float = 1.0
    min_gain: float = 0.01  # validation AUC the challenger must add to become champion


@dataclass(frozen=True, slots=True)
class FairnessConfig:
    sex: str | None = None
    sex_labels: dict[str, str] = field(default_factory=dict)
    age: str | None = None
    age_bands: tuple[int, ...] = (25, 35, 45, 55)


@dataclass(frozen=True, slots=True)
class CreditConfig:
    name: str
    data: Path
    target: str
    positive: str
    registry: Path
    drop: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    monotone: dict[str, Direction] = field(default_factory=dict)
    fairness: FairnessConfig = field(default_factory=FairnessConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    scorecard: ScorecardConfig = field(default_factory=ScorecardConfig)
    challenger: ChallengerConfig = field(default_factory=ChallengerConfig)
    approve_pd: float = 0.10
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # column → {en, zh}
    source: Path | None = None

    @property
    def excluded(self) -> tuple[str, ...]:
        """Columns that are never inputs: identifiers, the target, protected attributes."""
        out = [*self.drop, self.target]
        out += [c for c in (self.fairness.sex, self.fairness.age) if c]
        if self.split.time_column:
            out.append(self.split.time_column)
        return tuple(dict.fromkeys(out))


def load_config(path: Path) -> CreditConfig:
    """Read and check a config file; every problem is a ConfigError naming the key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return parse_config(raw, base=path.parent, source=path)


def parse_config(raw: dict[str, Any], *, base: Path, source: Path | None = None) -> CreditConfig:
    def need(table: dict[str, Any], key: str, where: str) -> Any:
        if key not in table:
            raise ConfigError(f"credit config: missing {where}{key}")
        return table[key]

    target = raw.get("target")
    if not isinstance(target, dict):
        raise ConfigError("credit config: missing [target] table (column, positive)")
    cols = raw.get("columns", {})
    monotone = {str(k): str(v) for k, v in raw.get("monotone", {}).items()}
    for col, d in monotone.items():
        if d not in _DIRECTIONS:
            raise ConfigError(f"credit config: monotone.{col} must be one of {_DIRECTIONS}")
    fair = raw.get("fairness", {})
    split = raw.get("split", {})
    method = split.get("method", "stratified")
    if method not in ("stratified", "out_of_time"):
        raise ConfigError("credit config: split.method must be stratified or out_of_time")
    if method == "out_of_time" and not split.get("time_column"):
        raise ConfigError("credit config: an out_of_time split needs split.time_column")
    registry = raw.get("registry")
    try:
        cfg = CreditConfig(
            name=str(need(raw, "name", "")),
            data=(base / str(need(raw, "data", ""))).resolve(),
            target=str(need(target, "column", "target.")),
            positive=_label(need(target, "positive", "target.")),
            registry=(base / registry).resolve() if registry else Path("var/credit/models"),
            drop=tuple(str(c) for c in cols.get("drop", ())),
            categorical=tuple(str(c) for c in cols.get("categorical", ())),
            numeric=tuple(str(c) for c in cols.get("numeric", ())),
            monotone=monotone,  # type: ignore[arg-type]
            fairness=FairnessConfig(
                sex=fair.get("sex"),
                sex_labels={_label(k): str(v) for k, v in fair.get("sex_labels", {}).items()},
                age=fair.get("age"),
                age_bands=tuple(int(x) for x in fair.get("age_bands", (25, 35, 45, 55))),
            ),
            split=SplitConfig(
                method=method,
                time_column=split.get("time_column"),
                test=float(split.get("test", 0.2)),
                valid=float(split.get("valid", 0.2)),
                seed=int(split.get("seed", 7)),
                cv_folds=int(split.get("cv_folds", 5)),
            ),
            scorecard=ScorecardConfig(**raw.get("scorecard", {})),
            challenger=ChallengerConfig(**raw.get("challenger", {})),
            approve_pd=float(raw.get("policy", {}).get("approve_pd", 0.10)),
            labels=_labels(raw.get("labels", {})),
            source=source,
        )
    except TypeError as exc:  # an unknown key in [scorecard] or [challenger]
        raise ConfigError(f"credit config: {exc}") from exc
    if not 0 < cfg.split.test < 0.5 or not 0 < cfg.split.valid < 0.5:
        raise ConfigError("credit config: split.test and split.valid must be in (0, 0.5)")
    overlap = set(cfg.categorical) & set(cfg.numeric)
    if overlap:
        raise ConfigError(f"credit config: columns both categorical and numeric: {sorted(overlap)}")
    return cfg


def _label(value: Any) -> str:
    """Labels are compared as text, ignoring case: 1, 1.0 and "1" are the same label, and so
    are "Bad" and "bad"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().casefold()


def _labels(raw: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in raw.items()}
