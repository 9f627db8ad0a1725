"""The one code path that registers an identity on chain (`IdentityRegistry.register`).

Deployment (system actors), the scenario and replay worlds, the platform's enrolment and the
compliance writer all call `register_identity`; nothing else sends `register`, so a change to
the registry's registration (who may call it, which fields it takes) is made here once.
"""

from __future__ import annotations

from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.roles import Role

REGISTRY = "IdentityRegistry"
JURISDICTION_CN = b"CN"


def register_identity(
    port: ChainPort,
    address: str,
    *,
    roles: Role | int,
    suitability: int,
    expiry_s: int,
    jurisdiction: bytes = JURISDICTION_CN,
    actor: str = "compliance",
) -> None:
    """Register (or re-register) `address` as verified with these roles, suitability level
    (1..5 for C1..C5) and expiry (UNIX seconds). Sent by the compliance role (the admin
    registers compliance itself at deployment)."""
    assert 1 <= suitability <= 5, "dev: suitability is C1..C5"
    port.send(
        REGISTRY, "register", address, int(roles), suitability, jurisdiction, expiry_s,
        actor=actor,
    )  # fmt: skip
