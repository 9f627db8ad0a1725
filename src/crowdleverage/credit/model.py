"""A trained credit model as stored in the registry, and scoring with it.

A version is a folder `<registry>/<version>/` holding `card.json` (the model card) and the
files it names with their SHA-256: `scorecard.json`, `challenger.txt` (LightGBM),
`calibration.json`, `features.json`, `reference.json` (the training distributions PSI
compares against). Loading re-hashes every file and refuses (IntegrityFailure) a file that does
not match its card.
`CURRENT` names the version in use; every decision records the version that scored it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crowdleverage.credit.calibration import Calibrator
from crowdleverage.credit.data import Feature, Frame
from crowdleverage.credit.scorecard import Scorecard
from crowdleverage.domain.errors import IntegrityFailure, InvalidInput, NotFound

CARD = "card.json"
CURRENT = "CURRENT"
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Score:
    """One application's score: calibrated PD, scorecard points, the top adverse factors."""

    pd: float
    points: int
    model: str  # "scorecard" | "challenger": which model gave the PD
    version: str
    reasons: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pd": round(self.pd, 6), "points": self.points, "model": self.model,
            "version": self.version, "reasons": self.reasons,
        }  # fmt: skip


@dataclass
class CreditModel:
    version: str
    card: dict[str, Any]
    features: tuple[Feature, ...]
    scorecard: Scorecard
    challenger: Any  # boosted.Challenger | None (LightGBM imported lazily)
    calibrators: dict[str, Calibrator]
    reference: dict[str, Any]
    labels: dict[str, dict[str, str]]

    @property
    def champion(self) -> str:
        return str(self.card["champion"]["model"])

    def probability(self, frame: Frame, model: str | None = None) -> np.ndarray:
        which = model or self.champion
        raw = self.scorecard.raw(frame) if which == "scorecard" else self.challenger.raw(frame)
        return np.asarray(self.calibrators[which](raw))

    def score_frame(self, frame: Frame, *, reasons: bool = True) -> list[Score]:
        idx, _ = self.scorecard.woe_matrix(frame)
        points = self.scorecard.score_points(idx)
        why: list[list[dict[str, Any]]]
        if self.champion == "challenger" and reasons:
            raw, why = self.challenger.explain(frame)
            pds = np.asarray(self.calibrators["challenger"](raw))
        else:
            pds = self.probability(frame)
            why = self.scorecard.adverse(idx) if reasons else [[] for _ in pds]
        return [
            Score(float(p), round(float(pt)), self.champion, self.version, self._labelled(w))
            for p, pt, w in zip(pds, points, why, strict=True)
        ]

    def score(self, application: dict[str, Any]) -> Score:
        return self.score_frame(self.frame_of([application]))[0]

    def _labelled(self, reasons: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for r in reasons:
            lab = self.labels.get(r["feature"], {})
            out.append({**r, "en": lab.get("en", r["feature"]), "zh": lab.get("zh", r["feature"])})
        return out

    def frame_of(self, applications: list[dict[str, Any]]) -> Frame:
        """Typed input rows; every field's problem of every application is reported at once."""
        errors: list[dict[str, Any]] = []
        rows: dict[str, list[Any]] = {f.name: [] for f in self.features}
        for i, app in enumerate(applications):
            if not isinstance(app, dict):
                errors.append({"field": f"[{i}]", "reason": "an application is a JSON object"})
                continue
            for f in self.features:
                value, problem = check_field(f, app)
                if problem:
                    where = f.name if len(applications) == 1 else f"[{i}].{f.name}"
                    errors.append({"field": where, "reason": problem})
                rows[f.name].append(value)
        if errors:
            msg = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:10])
            raise InvalidInput(f"credit application refused: {msg}", errors=errors)
        return {
            f.name: np.asarray(rows[f.name], dtype=float if f.kind == "numeric" else object)
            for f in self.features
        }


def check_field(f: Feature, app: dict[str, Any]) -> tuple[Any, str | None]:
    if f.name not in app:
        return None, "missing"
    v = app[f.name]
    if v is None:
        return (np.nan, None) if f.has_missing else (None, "must not be empty")
    if f.kind == "numeric":
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return None, "must be a number"
        assert f.lo is not None and f.hi is not None, "dev: numeric features have a range"
        if not f.lo <= v <= f.hi:
            return None, f"{v:g} is outside [{f.lo:g}, {f.hi:g}]"
        return float(v), None
    text = str(v).strip()
    if isinstance(v, float) and v.is_integer():
        text = str(int(v))
    if text not in f.categories:
        shown = ", ".join(f.categories[:12])
        return None, f"{text!r} is not one of: {shown}"
    return text, None


# ── registry ────────────────────────────────────────────────────────────────────────────────


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, version: str, files: dict[str, bytes], card: dict[str, Any]) -> Path:
        assert _VERSION.match(version), f"dev: bad version name {version}"
        folder = self.root / version
        folder.mkdir(parents=True, exist_ok=False)
        card = {**card, "version": version,
                "files": {name: sha256_bytes(body) for name, body in files.items()}}  # fmt: skip
        for name, body in files.items():
            (folder / name).write_bytes(body)
        (folder / CARD).write_text(json.dumps(card, indent=2, ensure_ascii=False), "utf-8")
        return folder

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / CARD).is_file())

    def current(self) -> str | None:
        marker = self.root / CURRENT
        if marker.is_file():
            return marker.read_text("utf-8").strip() or None
        found = self.versions()
        return found[-1] if found else None

    def promote(self, version: str) -> None:
        if version not in self.versions():
            raise NotFound(f"no model version {version} in {self.root}")
        tmp = self.root / (CURRENT + ".tmp")
        tmp.write_text(version + "\n", "utf-8")
        tmp.replace(self.root / CURRENT)

    def load(self, version: str | None = None) -> CreditModel:
        chosen = version or self.current()
        if chosen is None or not _VERSION.match(chosen) or chosen not in self.versions():
            raise NotFound(f"no model version {chosen or '(none trained)'} in {self.root}")
        folder = self.root / chosen
        card = json.loads((folder / CARD).read_text("utf-8"))
        bodies: dict[str, bytes] = {}
        for name, digest in card["files"].items():
            path = folder / name
            body = path.read_bytes() if path.is_file() else b""
            if sha256_bytes(body) != digest:
                raise IntegrityFailure(
                    f"model {chosen}: {name} does not match the hash on its card; refused",
                    version=chosen,
                    file=name,
                )
            bodies[name] = body
        return _assemble(chosen, card, bodies)


def _assemble(version: str, card: dict[str, Any], bodies: dict[str, bytes]) -> CreditModel:
    features = tuple(Feature.from_dict(d) for d in json.loads(bodies["features.json"]))
    scorecard = Scorecard.from_dict(json.loads(bodies["scorecard.json"]))
    cal = json.loads(bodies["calibration.json"])
    challenger = None
    if "challenger.txt" in bodies:
        from crowdleverage.credit.boosted import load_challenger

        challenger = load_challenger(bodies["challenger.txt"].decode("utf-8"), features)
    return CreditModel(
        version, card, features, scorecard, challenger,
        {k: Calibrator.from_dict(v) for k, v in cal.items()},
        json.loads(bodies["reference.json"]), card.get("labels", {}),
    )  # fmt: skip
