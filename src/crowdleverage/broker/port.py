"""`BrokerPort`: what the platform needs from a broker — submit, cancel, fills, positions.

The simulated broker (broker/simulated.py) implements it on the simulated exchange; a FIX 4.4
session to a real broker would implement the same four calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from crowdleverage.market.rules import Side


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    order_id: str  # the platform's id (the engine's order id), unique for ever
    account: str
    code: str
    side: Side
    quantity: int
    limit_price_fen: int
    liquidation: bool = False


@dataclass(frozen=True, slots=True)
class BrokerFill:
    fill_ref: str  # unique exchange reference; settles at most once
    order_id: str
    account: str
    code: str
    side: Side
    quantity: int
    price_fen: int
    fee_fen: int
    settled: bool


@runtime_checkable
class BrokerPort(Protocol):
    def submit(self, order: BrokerOrder) -> str:
        """Place the order at the venue; returns the venue's order id. A rule violation
        raises RuleViolation and places nothing."""
        ...

    def cancel(self, order_id: str) -> None: ...

    def fills(self, since: int = 0) -> list[BrokerFill]:
        """Fills known to the broker, in the order they happened (index > since)."""
        ...

    def positions(self, account: str) -> dict[str, int]:
        """Shares held for `account` in the broker's custody, by security code."""
        ...
