"""Where the platform finds its credit models: `CROWDLEV_CREDIT_MODELS`, else the version
shipped in `data/credit/models` (trained from `data/credit/taiwan.toml`)."""

from __future__ import annotations

import os
from pathlib import Path

from crowdleverage.config import SHIPPED_DATA

SHIPPED_MODELS = SHIPPED_DATA / "credit" / "models"


def default_registry() -> Path:
    env = os.environ.get("CROWDLEV_CREDIT_MODELS")
    return Path(env) if env else SHIPPED_MODELS
