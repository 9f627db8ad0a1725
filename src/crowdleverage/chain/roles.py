"""Python mirror of the on-chain `Role` flag (contracts/interfaces/IIdentityRegistry.vyi).

Vyper numbers flag members 1, 2, 4, ... in declaration order; this IntFlag must list them in
the same order. `tests/contracts/test_contract_identity.py` checks the two agree."""

from __future__ import annotations

from enum import IntEnum, IntFlag


class Role(IntFlag):
    INVESTOR = 1
    BORROWER = 2
    OPERATOR = 4
    CUSTODIAN = 8
    BROKER = 16
    REPORTER = 32
    KEEPER = 64
    COMPLIANCE = 128
    AUDITOR = 256
    PLATFORM = 512


class Suitability(IntEnum):
    """Suitability levels C1..C5 are stored on chain as the integers 1..5."""

    C1 = 1
    C2 = 2
    C3 = 3
    C4 = 4
    C5 = 5
