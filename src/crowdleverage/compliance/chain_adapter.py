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
"""

from __future__ import annotations

from crowdleverage.chain.port import ChainPort
from crowdleverage.compliance.ports import IdentityRole

REGISTRY = "IdentityRegistry"


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
                self.chain.send(
                    REGISTRY, "register", address, int(roles), suitability, self.jurisdiction,
                    expiry_s, actor=self.actor,
                )  # fmt: skip
                registered = True
        elif registered and cur_verified:
            self.chain.send(REGISTRY, "revoke", address, actor=self.actor)
        if registered and frozen != cur_frozen:
            self.chain.send(REGISTRY, "set_frozen", address, frozen, actor=self.actor)


def _as_bytes(value: bytes | str) -> bytes:
    """ABI decoders give fixed bytes as bytes or as a 0x-hex string, depending on the adapter."""
    if isinstance(value, bytes):
        return value
    if value.startswith("0x"):
        return bytes.fromhex(value[2:])
    return value.encode("latin-1")
