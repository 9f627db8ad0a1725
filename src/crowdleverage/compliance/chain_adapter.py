"""`IdentityWriter` on the deployed `IdentityRegistry`, through any `ChainPort`.

`set_identity` reads the current record and sends only the transactions needed to reach the
asked state, so it is idempotent and a retried relay does not trip the registry's
"unchanged" reverts:

- verified: `register` (roles, suitability, jurisdiction, expiry) when anything differs;
- not verified: `revoke` a registered, still-verified account (an unregistered one is inactive
  already);
- frozen: `set_frozen` on a registered account. A freeze is sent before a registration change
  so an account is never briefly active when it should not be.

Suitability 0 (not yet assessed) is registered as 1 (C1, the most restrictive level), since the
registry only accepts 1..5.

A verified borrower's credit tier is the margin engine's tier: `MarginEngine.open_account(who,
tier)` (compliance role) when the engine's tier differs. The engine refuses a tier change while
the account owes debt; then the tier is left as it is (logged) and applies at the next review,
so that one indebted account cannot stall the relay of every later write.
"""

from __future__ import annotations

import logging

from crowdleverage.chain.identity import register_identity
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.structs import read_account
from crowdleverage.compliance.ports import IdentityRole

REGISTRY = "IdentityRegistry"
ENGINE = "MarginEngine"
log = logging.getLogger("crowdleverage.compliance.chain")


class ChainIdentityWriter:
    def __init__(self, chain: ChainPort, *, actor: str = "compliance", jurisdiction: bytes = b"CN"):
        assert len(jurisdiction) == 2, "dev: ISO 3166-1 alpha-2"
        self.chain = chain
        self.actor = actor
        self.jurisdiction = jurisdiction

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
        cur_roles, cur_verified, cur_suit, cur_jur, cur_expiry, cur_frozen = self.chain.call(
            REGISTRY, "identities", address
        )
        registered = cur_expiry != 0
        if registered and frozen and not cur_frozen:
            self.chain.send(REGISTRY, "set_frozen", address, True, actor=self.actor)
            cur_frozen = True
        suitability = max(1, suitability_level)
        if verified:
            wanted = (int(roles), True, suitability, self.jurisdiction, expiry_s)
            current = (int(cur_roles), cur_verified, cur_suit, _as_bytes(cur_jur), cur_expiry)
            if wanted != current:
                register_identity(
                    self.chain, address, roles=int(roles), suitability=suitability,
                    expiry_s=expiry_s, jurisdiction=self.jurisdiction, actor=self.actor,
                )  # fmt: skip
                registered = True
        elif registered and cur_verified:
            self.chain.send(REGISTRY, "revoke", address, actor=self.actor)
        if registered and frozen != cur_frozen:
            self.chain.send(REGISTRY, "set_frozen", address, frozen, actor=self.actor)
        if verified and tier is not None and IdentityRole.BORROWER in roles:
            self._set_tier(address, tier)

    def _set_tier(self, address: str, tier: int) -> None:
        account = read_account(self.chain, address)
        if account.tier == tier:
            return
        if account.scaled_debt != 0:  # the engine refuses a tier change while it owes
            log.warning("tier change deferred: account owes debt",
                        extra={"address": address, "tier": tier})  # fmt: skip
            return
        self.chain.send(ENGINE, "open_account", address, tier, actor=self.actor)


def _as_bytes(value: bytes | str) -> bytes:
    """ABI decoders give fixed bytes as bytes or as a 0x-hex string, depending on the adapter."""
    if isinstance(value, bytes):
        return value
    if value.startswith("0x"):
        return bytes.fromhex(value[2:])
    return value.encode("latin-1")
