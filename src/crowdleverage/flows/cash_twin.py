"""The on-chain twin of custody cash: `CashToken` minted for every deposit the custody ledger
posts and burned for every payout, each with the ledger transfer id as its reference (at most
once on chain, DESIGN.md §5.1, §5.6). Reconciliation then checks invariants 1 and 2: supply
equals the cash custody holds for the platform, and every reference is on both sides once.

The tokens are held by one platform omnibus address; per-user token balances (each user's own
verified address) are not mirrored yet, so transfers inside the platform stay off chain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crowdleverage.chain.codes import ref_to_bytes32
from crowdleverage.chain.deploy import deploy_system, manifest_path
from crowdleverage.chain.keys import SYSTEM_ACTORS
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.roles import Role
from crowdleverage.config import Settings
from crowdleverage.custody.ledger import Ledger
from crowdleverage.custody.types import Transfer

OMNIBUS = "platform"  # actor holding the platform's CashToken
ACTORS = (*SYSTEM_ACTORS, OMNIBUS)
IDENTITY_TTL_S = 10 * 365 * 86_400


def open_twin(settings: Settings) -> CashTokenTwin:
    """The configured chain (embedded under data_dir, or RPC), deployed on first use."""
    from crowdleverage.chain.factory import open_chain

    port = open_chain(settings, actors=ACTORS, dev_keys=settings.chain == "embedded")
    return CashTokenTwin(port, settings.ensure_data_dir())


class CashTokenTwin:
    def __init__(self, port: ChainPort, data_dir: Path) -> None:
        self.port = port
        if not manifest_path(data_dir).exists():
            deploy_system(port, data_dir)
        self.omnibus = port.address_of(OMNIBUS)
        if not port.call("IdentityRegistry", "is_verified", self.omnibus):
            port.send(
                "IdentityRegistry", "register", self.omnibus, int(Role.PLATFORM), 5, b"CN",
                port.block_time() + IDENTITY_TTL_S, actor="compliance",
            )  # fmt: skip

    def mint(self, ledger_transfer_id: int, amount_fen: int) -> None:
        self.port.send(
            "CashToken", "mint", self.omnibus, amount_fen, ref_to_bytes32(ledger_transfer_id),
            actor="custodian",
        )  # fmt: skip

    def burn(self, ledger_transfer_id: int, amount_fen: int) -> None:
        self.port.send(
            "CashToken", "burn", self.omnibus, amount_fen, ref_to_bytes32(ledger_transfer_id),
            actor="custodian",
        )  # fmt: skip

    def supply_fen(self) -> int:
        return int(self.port.call("CashToken", "totalSupply"))

    def references(self) -> dict[bytes, list[tuple[str, int]]]:
        """Every Minted/Burned reference on chain → [(event, amount)]."""
        out: dict[bytes, list[tuple[str, int]]] = {}
        for ev in self.port.events("CashToken"):
            if ev.event in ("Minted", "Burned"):
                ref = ev.args["ref"]
                ref_b = bytes.fromhex(ref[2:]) if isinstance(ref, str) else bytes(ref)
                out.setdefault(ref_b, []).append((ev.event, int(ev.args["amount_fen"])))
        return out

    def reconcile(self, ledger: Ledger, bank_account_id: int) -> tuple[list[str], dict[str, Any]]:
        """Breaks of invariants 1 and 2 between the chain and the custody ledger."""
        breaks: list[str] = []
        [bank] = ledger.lookup_accounts([bank_account_id])
        custody_cash = bank.debits_posted - bank.credits_posted
        supply = self.supply_fen()
        if supply != custody_cash:
            breaks.append(f"CashToken supply {supply} fen ≠ custody cash {custody_cash} fen")
        transfers: list[Transfer] = ledger.account_transfers(bank_account_id, limit=1_000_000)
        expected = {
            ref_to_bytes32(t.id): (
                "Minted" if t.debit_account_id == bank_account_id else "Burned",
                t.amount,
            )
            for t in transfers
        }
        on_chain = self.references()
        for ref, (kind, amount) in expected.items():
            seen = on_chain.get(ref, [])
            if seen != [(kind, amount)]:
                breaks.append(
                    f"ledger transfer {ref.hex()[:16]}…: {kind} {amount} fen, chain {seen}"
                )
        for ref in on_chain.keys() - expected.keys():
            breaks.append(f"chain reference {ref.hex()[:16]}… has no custody ledger twin")
        return breaks, {
            "chain": self.port.kind,
            "supply_fen": supply,
            "custody_cash_fen": custody_cash,
            "references": len(on_chain),
        }

    def close(self) -> None:
        close = getattr(self.port, "close", None)
        if close is not None:
            close()
