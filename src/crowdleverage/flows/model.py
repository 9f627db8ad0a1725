"""Words of the platform's record that are not the contracts': tranches, account status as
the dashboards show it, and the risk panel's events."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Tranche(StrEnum):
    SENIOR = "senior"  # 优先级
    JUNIOR = "junior"  # 劣后级


class AccountStatus(StrEnum):
    HEALTHY = "healthy"
    WARNING = "warning"
    LIQUIDATING = "liquidating"


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    at: str
    kind: str
    account_id: int | None
    message: str
