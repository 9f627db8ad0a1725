"""A small end-to-end scenario on any ChainPort: deposits, transfers, a trading day with
prices, a buy fill, T+1, a sell fill and a withdrawal. Used by the parity and persistence tests,
the benchmark and `crowdlev chain demo`; `summary` gives what two chains must agree on."""

from __future__ import annotations

from typing import Any

from crowdleverage.chain.codes import code_to_chain, ref_to_bytes32
from crowdleverage.chain.identity import register_identity
from crowdleverage.chain.keys import SYSTEM_ACTORS
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.roles import Role

SCENARIO_ACTORS: tuple[str, ...] = (*SYSTEM_ACTORS, "investor", "borrower", "pool")
PAB = code_to_chain("600000")
YEAR_S = 365 * 86_400


def register_participants(port: ChainPort) -> None:
    expires = port.block_time() + YEAR_S
    for actor, role in (("investor", Role.INVESTOR), ("borrower", Role.BORROWER),
                        ("pool", Role.PLATFORM)):  # fmt: skip
        register_identity(port, port.address_of(actor), roles=role, suitability=3, expiry_s=expires)


def open_day(port: ChainPort, day: int, prev_close_fen: int) -> None:
    """Day open: advance the counter and set the main-board ±10% band (rounded inwards)."""
    port.send("PriceOracle", "open_day", day, actor="operator")
    down = (prev_close_fen * 9 + 9) // 10
    up = prev_close_fen * 11 // 10
    port.send(
        "PriceOracle", "set_day_params", PAB, prev_close_fen, down, up, False, actor="operator"
    )


def basic_scenario(port: ChainPort) -> None:
    register_participants(port)
    investor, borrower, pool = (port.address_of(a) for a in ("investor", "borrower", "pool"))
    port.send("CashToken", "mint", investor, 10_000_000, ref_to_bytes32("dep-1"), actor="custodian")
    port.send("CashToken", "mint", borrower, 3_000_000, ref_to_bytes32("dep-2"), actor="custodian")
    port.send("CashToken", "transfer", pool, 8_000_000, actor="investor")
    port.send("CashToken", "approve", pool, 1_000_000, actor="borrower")
    port.send("CashToken", "transferFrom", borrower, pool, 400_000, actor="pool")

    open_day(port, 1, 1_000)
    for i, price in enumerate((1_010, 1_003, 1_020), start=1):
        port.send("PriceOracle", "report", PAB, price, actor=f"reporter{i}")
    port.send("ShareCertificates", "mint", borrower, PAB, 2_000, ref_to_bytes32("fill-1"),
              actor="broker")  # fmt: skip
    port.advance_time(86_400)
    open_day(port, 2, 1_010)
    for i, price in enumerate((990, 995, 1_000), start=1):
        port.send("PriceOracle", "report", PAB, price, actor=f"reporter{i}")
    port.send("ShareCertificates", "transfer", pool, PAB, 500, actor="borrower")
    port.send("ShareCertificates", "burn", borrower, PAB, 1_000, ref_to_bytes32("fill-2"),
              actor="broker")  # fmt: skip
    port.send("CashToken", "burn", investor, 1_500_000, ref_to_bytes32("wd-1"), actor="custodian")


def summary(port: ChainPort) -> dict[str, Any]:
    """Balances, supplies, oracle state and the adapter-independent event list."""
    who = {a: port.address_of(a) for a in ("investor", "borrower", "pool")}
    return {
        "cash": {a: port.call("CashToken", "balanceOf", addr) for a, addr in who.items()},
        "cash_supply": port.call("CashToken", "totalSupply"),
        "shares": {
            a: port.call("ShareCertificates", "balance_of", addr, PAB) for a, addr in who.items()
        },
        "share_supply": port.call("ShareCertificates", "total_supply", PAB),
        "trading_day": port.call("PriceOracle", "trading_day"),
        "latest": list(port.call("PriceOracle", "latest", PAB)),
        "events": [[e.contract, e.event, e.args] for e in port.events()],
    }
