"""The asset/identity/oracle system deployed with titanoboa for the contract tests, with actors
named by role. (A uniquely named module: `from conftest import` breaks in the full suite.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boa
from eth_utils import keccak

from crowdleverage.chain.artifacts import deployer
from crowdleverage.chain.roles import Role

YEAR_S = 365 * 86_400
CN = b"CN"
PAB = 600000  # 浦发银行, main board
BAND = (900, 1000, 1100)  # limit-down, prev close, limit-up (fen)


@dataclass
class System:
    registry: Any
    oracle: Any
    cash: Any
    shares: Any
    admin: str
    compliance: str
    operator: str
    custodian: str
    broker: str
    reporters: list[str]
    investor: str
    borrower: str
    pool: str
    outsider: str

    def register(self, account: str, roles: Role, expires_in_s: int = YEAR_S) -> None:
        self.registry.register(
            account, int(roles), 3, CN, boa.env.timestamp + expires_in_s, sender=self.compliance
        )

    def open_day(self, day: int, code: int = PAB, band: tuple[int, int, int] = BAND) -> None:
        self.oracle.open_day(day, sender=self.operator)
        down, prev, up = band
        self.oracle.set_day_params(code, prev, down, up, False, sender=self.operator)


def deploy_system() -> System:
    admin = boa.env.generate_address("admin")
    names = ["compliance", "operator", "custodian", "broker", "investor", "borrower", "pool"]
    addr = {n: boa.env.generate_address(n) for n in names}
    reporters = [boa.env.generate_address(f"reporter{i}") for i in range(5)]
    outsider = boa.env.generate_address("outsider")
    with boa.env.prank(admin):
        registry = deployer("IdentityRegistry").deploy()
        oracle = deployer("PriceOracle").deploy(registry.address, 600, 3)
        cash = deployer("CashToken").deploy(registry.address)
        shares = deployer("ShareCertificates").deploy(registry.address, oracle.address)
    expires = boa.env.timestamp + YEAR_S
    registry.register(addr["compliance"], int(Role.COMPLIANCE), 5, CN, expires, sender=admin)
    sysm = System(
        registry, oracle, cash, shares, admin, addr["compliance"], addr["operator"],
        addr["custodian"], addr["broker"], reporters, addr["investor"], addr["borrower"],
        addr["pool"], outsider,
    )  # fmt: skip
    sysm.register(sysm.operator, Role.OPERATOR)
    sysm.register(sysm.custodian, Role.CUSTODIAN)
    sysm.register(sysm.broker, Role.BROKER)
    for r in reporters:
        sysm.register(r, Role.REPORTER)
    sysm.register(sysm.investor, Role.INVESTOR)
    sysm.register(sysm.borrower, Role.BORROWER)
    sysm.register(sysm.pool, Role.PLATFORM)
    return sysm


def ref(n: int | str) -> bytes:
    """A distinct, non-empty bytes32 reference for a test label."""
    return keccak(text=str(n))
