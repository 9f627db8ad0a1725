"""The margin system on chain: the MarginEngine (accounts, cash, positions, debt), its
OrderBook (orders and fills) and its Liquidator (the keeper's entry points), read as one event
stream by the off-chain side."""

from __future__ import annotations

from typing import Any

from crowdleverage.chain.port import EventLog

ENGINE = "MarginEngine"
LIQUIDATOR = "Liquidator"
ORDERBOOK = "OrderBook"
# Events the Liquidator and the OrderBook emit; every other margin event is the engine's.
LIQUIDATOR_EVENTS = frozenset(
    {
        "MarginWarning",
        "ToppedUp",
        "LiquidationStarted",
        "LiquidationEnded",
        "StressedPolicySet",
        "LiquiditySet",
        "KeeperSkipped",
    }
)
ORDERBOOK_EVENTS = frozenset({"OrderRequested", "LiquidationOrder", "Filled", "OrderClosed"})
MARGIN_CONTRACTS = (ENGINE, LIQUIDATOR, ORDERBOOK)
# Keeper actions (entry points of the Liquidator).
KEEPER_ACTIONS = frozenset({"warn", "top_up", "start_liquidation", "end_liquidation", "keep"})


def contract_of(event: str) -> str:
    """The margin contract that emits `event`."""
    if event in LIQUIDATOR_EVENTS:
        return LIQUIDATOR
    return ORDERBOOK if event in ORDERBOOK_EVENTS else ENGINE


def margin_events(chain: Any, event: str | None = None, since: int = 0) -> list[EventLog]:
    """Events of the engine and the liquidator with seq > since, oldest first (one kind if
    `event` is given)."""
    if event is not None:
        return list(chain.events(contract_of(event), event, since))
    every = [e for c in MARGIN_CONTRACTS for e in chain.events(c, since=since)]
    return sorted(every, key=lambda e: e.seq)


def placed_order_id(tx: Any) -> int:
    """The order id a `request_buy` / `request_sell` transaction placed (its
    `OrderRequested`). Order ids are not sequential: an account's closed order slot is
    reused under a new generation, so the id comes from the event, never from a counter."""
    [req] = [e.args for e in tx.events if e.event == "OrderRequested"]
    return int(req["order_id"])
