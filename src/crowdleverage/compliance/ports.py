"""The port through which compliance writes identities on chain (`IdentityRegistry`).

The KYC workflow only knows this protocol. The chain adapter maps it onto the registry's
functions; `InMemoryIdentityRegistry` implements it in process (demo, tests of the workflow) and
keeps the same state the contract keeps, so that the workflow's writes can be checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import Protocol


class IdentityRole(IntFlag):
    """Mirrors the registry's role flag (one bit per role)."""

    INVESTOR = 1
    BORROWER = 2


@dataclass(frozen=True, slots=True)
class OnChainIdentity:
    verified: bool
    frozen: bool
    expiry_s: int  # UNIX seconds; the registry treats the identity as inactive after it
    suitability_level: int  # 0 unknown, 1..5 for C1..C5
    roles: IdentityRole
    tier: int | None = None  # borrowers: the margin engine's leverage tier

    @property
    def active(self) -> bool:
        return self.verified and not self.frozen


class IdentityWriter(Protocol):
    def set_identity(
        self,
        address: str,
        *,
        verified: bool,
        frozen: bool,
        expiry_s: int,
        suitability_level: int,
        roles: IdentityRole,
        tier: int | None = None,
    ) -> None:
        """Make the on-chain record of `address` equal to these values (idempotent); a
        borrower's `tier` is the margin engine's tier for the address (None: leave it).
        Raises a CrowdLevError (e.g. ContractRevert, ServiceUnavailable) when it cannot."""
        ...


class InMemoryIdentityRegistry:
    """IdentityWriter kept in memory, with the registry's view: is the address active now?"""

    def __init__(self) -> None:
        self.records: dict[str, OnChainIdentity] = {}
        self.writes = 0

    def set_identity(
        self,
        address: str,
        *,
        verified: bool,
        frozen: bool,
        expiry_s: int,
        suitability_level: int,
        roles: IdentityRole,
        tier: int | None = None,
    ) -> None:
        self.records[address.lower()] = OnChainIdentity(
            verified, frozen, expiry_s, suitability_level, roles, tier
        )
        self.writes += 1

    def is_active(self, address: str, now_s: int) -> bool:
        rec = self.records.get(address.lower())
        return rec is not None and rec.active and now_s < rec.expiry_s
