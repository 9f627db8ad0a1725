"""Worker for the bridge crash test, also the setup used by the bridge tests.

`python bridge_crash_worker.py URL SCHEMA DATA_DIR ROUNDS` runs deterministic rounds: the bank
receives three deposits and closes a statement, custody imports it, the bridge mints, and one
investor redeems. Every step is idempotent, so a run killed anywhere is simply run again."""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta
from pathlib import Path

from crowdleverage.chain.deploy import deploy_system, manifest_path
from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import SYSTEM_ACTORS, ActorKeys
from crowdleverage.chain.roles import Role
from crowdleverage.custody.bank.simulator import SimulatedBank
from crowdleverage.custody.bridge import Bridge
from crowdleverage.custody.db import make_engine
from crowdleverage.custody.service import CustodyService, derive_id

ACCOUNT = "6222020200112233445"
SEED = 20160104
INVESTORS = {"INV-0001": "inv1", "INV-0002": "inv2", "INV-0003": "inv3"}
KEYS = ActorKeys.dev(SEED, (*SYSTEM_ACTORS, *INVESTORS.values()))


def open_world(
    url: str, schema: str | None, data_dir: Path
) -> tuple[CustodyService, EmbeddedChain, Bridge]:
    """Open (and on first use set up) custody, the embedded chain and the bridge."""
    chain = EmbeddedChain(data_dir / "chain", KEYS)
    if not manifest_path(data_dir / "chain").exists():
        deploy_system(chain, data_dir / "chain")
        expires = chain.block_time() + 3 * 365 * 86_400
        for actor in INVESTORS.values():
            chain.send("IdentityRegistry", "register", chain.address_of(actor), int(Role.INVESTOR),
                       3, b"CN", expires, actor="compliance")  # fmt: skip
        chain.snapshot()
    custody = CustodyService(make_engine(url, schema=schema), ACCOUNT)
    custody.setup()
    for n, inv in enumerate(INVESTORS, start=1):
        custody.register_investor(inv, name=inv, virtual_account=f"VA-{n}",
                                  reference=f"CLREF{n}", payout_account=f"62170{n}")  # fmt: skip
    bridge = Bridge(custody, chain, lambda inv: chain.address_of(INVESTORS[inv]))
    return custody, chain, bridge


def round_statement(k: int) -> bytes:
    """Round k's statement, rebuilt deterministically (the bank's state is a function of k)."""
    bank = SimulatedBank(ACCOUNT)
    for j in range(k + 1):
        day = date(2026, 3, 2) + timedelta(days=j)
        for n in range(1, 4):
            bank.receive_transfer(
                10_000 * n + j, payer_name=f"INV-000{n}", payer_account=f"62170{n}",
                virtual_account=f"VA-{n}", day=day,
            )  # fmt: skip
        data = bank.close_statement(at=datetime(2026, 3, 2, 17) + timedelta(days=j))
    return data


def main() -> int:
    url, schema, data_dir, rounds = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    custody, chain, bridge = open_world(url, None if schema == "-" else schema, data_dir)
    try:
        bridge.process()  # finish whatever a killed run left in flight
        for k in range(rounds):
            custody.import_statement(round_statement(k), f"round-{k}.xml")
            bridge.process()
            inv = f"INV-000{k % 3 + 1}"
            bridge.redeem(inv, 1_000 + k, payout_id=derive_id("redeem", str(k)))
            print(f"round {k} done", flush=True)
    finally:
        chain.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
