"""Platform state that is not cash: tranches, margin accounts, positions, orders, events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum


class Tranche(StrEnum):
    SENIOR = "senior"  # 优先级
    JUNIOR = "junior"  # 劣后级


class AccountStatus(StrEnum):
    HEALTHY = "healthy"
    WARNING = "warning"
    LIQUIDATING = "liquidating"
    LIQUIDATED = "liquidated"


class OrderStatus(StrEnum):
    FILLED = "filled"
    WAITING = "waiting"  # a liquidation sell behind a limit-down seal
    REJECTED = "rejected"


@dataclass
class TrancheState:
    claim_fen: int = 0  # what the tranche's holders are owed in total
    units: int = 0  # outstanding units; NAV per unit = claim / units
    nav_history: list[tuple[dt.date, int]] = field(default_factory=list)  # NAV ×10^4

    def nav_e4(self) -> int:
        return 10_000 if self.units == 0 else self.claim_fen * 10_000 // self.units


@dataclass
class Lot:
    trade_date: dt.date
    quantity: int


@dataclass
class Position:
    code: str
    lots: list[Lot] = field(default_factory=list)
    cost_fen: int = 0

    @property
    def quantity(self) -> int:
        return sum(lot.quantity for lot in self.lots)

    def sellable(self, today: dt.date) -> int:
        return sum(lot.quantity for lot in self.lots if lot.trade_date < today)

    def remove(self, quantity: int) -> None:
        """Take `quantity` from the oldest lots first (FIFO)."""
        assert quantity <= self.quantity, "dev: cannot remove more than held"
        before = self.quantity
        left = quantity
        while left:
            lot = self.lots[0]
            take = min(lot.quantity, left)
            lot.quantity -= take
            left -= take
            if lot.quantity == 0:
                self.lots.pop(0)
        self.cost_fen = self.cost_fen * (before - quantity) // before if before else 0


@dataclass
class Order:
    id: int
    account_id: int
    side: str
    code: str
    quantity: int
    limit_price_fen: int
    status: OrderStatus
    fill_price_fen: int | None
    fees_fen: int
    financing_fen: int
    liquidation: bool
    trade_date: dt.date
    reason: str = ""


@dataclass
class MarginAccount:
    id: int
    owner_id: int
    tier: int
    debt_fen: int = 0  # principal plus accrued interest, rounded up
    status: AccountStatus = AccountStatus.HEALTHY
    positions: dict[str, Position] = field(default_factory=dict)
    interest_paid_fen: int = 0
    last_ratio_bps: int | None = None


@dataclass
class Subscription:
    id: int
    user_id: int
    tranche: Tranche
    amount_fen: int
    pending_transfer_id: int
    requested_on: dt.date


@dataclass
class Redemption:
    id: int
    user_id: int
    tranche: Tranche
    units: int
    requested_on: dt.date


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    at: str
    kind: str
    account_id: int | None
    message: str
