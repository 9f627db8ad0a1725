"""Constants and the served-platform handle of the browser tests (a unique module name:
a bare `conftest` import collides with other directories' conftest modules)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crowdleverage.api import demo
from crowdleverage.api.deps import ApiState
from crowdleverage.api.serve import ReplayDriver

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHOTS = PROJECT_ROOT / "test-output" / "web"
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@dataclass
class Served:
    url: str
    state: ApiState
    ids: demo.DemoIds
    driver: ReplayDriver
