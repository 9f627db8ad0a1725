"""`ChainPort`: the one interface the rest of the platform uses to talk to the chain.

Two adapters implement it: `EmbeddedChain` (titanoboa/py-evm in process, persisted in the data
directory) and `RpcChain` (web3.py against any EVM JSON-RPC node). Contracts are addressed by
their deployed name ("CashToken"); actors by role name ("custodian"), never by raw key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class EventLog:
    """One decoded event. `seq` orders events across the chain and is the cursor for
    `ChainPort.events(since=...)`."""

    seq: int
    block: int
    tx_hash: str
    contract: str
    address: str
    event: str
    args: dict[str, Any]

    def key(self) -> tuple[str, str, tuple[tuple[str, Any], ...]]:
        """Adapter-independent identity (no seq/block/hash) for comparing chains."""
        return (self.contract, self.event, tuple(sorted(self.args.items())))


@dataclass(frozen=True, slots=True)
class TxResult:
    tx_hash: str
    block: int
    gas_used: int
    events: tuple[EventLog, ...] = field(default=())


@runtime_checkable
class ChainPort(Protocol):
    kind: str
    chain_id: int

    def address_of(self, actor: str) -> str:
        """Address of a named actor ("admin", "custodian", "reporter1", ...)."""
        ...

    def alias(self, actor: str, address: str) -> None:
        """Name a keyless address (a platform contract acting as a party, e.g. the pool) so
        `address_of(actor)` finds it; nobody can send as it."""
        ...

    def contract_address(self, name: str) -> str: ...

    def deployed(self) -> dict[str, str]:
        """Deployed contract name → address."""
        ...

    def deploy(self, name: str, args: Sequence[Any], *, actor: str) -> str:
        """Deploy contracts/<name>.vy as `actor`; returns its address. (The embedded and RPC
        adapters also take `label=` to deploy one source twice under two names.)"""
        ...

    def nonce(self, actor: str) -> int:
        """The nonce of `actor`'s next transaction (its next CREATE's address follows)."""
        ...

    def deploy_blueprint(self, name: str, *, actor: str) -> str:
        """Deploy contracts/<name>.vy as an ERC-5202 blueprint; returns its address."""
        ...

    def register_at(self, name: str, address: str, source: str) -> None:
        """Know a contract created by another contract (source = its .vy name) as `name`."""
        ...

    def call(self, contract: str, fn: str, *args: Any, actor: str | None = None) -> Any:
        """Run a view; a revert raises ContractRevert."""
        ...

    def send(self, contract: str, fn: str, *args: Any, actor: str) -> TxResult:
        """Send a transaction as `actor`; a revert raises ContractRevert and changes nothing."""
        ...

    def events(
        self, contract: str | None = None, event: str | None = None, since: int = 0
    ) -> list[EventLog]:
        """Stored event logs with seq > since, oldest first, optionally filtered."""
        ...

    def block_number(self) -> int: ...

    def block_time(self) -> int:
        """Timestamp (UNIX s) the next transaction will see."""
        ...

    def set_block_time(self, timestamp_s: int) -> None: ...

    def advance_time(self, seconds: int) -> None: ...

    def state_root(self) -> str: ...

    def snapshot(self) -> None:
        """Make everything so far durable (embedded: a state snapshot; RPC: no-op)."""
        ...

    def close(self) -> None: ...
