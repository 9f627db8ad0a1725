"""Setting up a platform on a chain, as its actors would: investors fund the tranches, the
operator lists securities, compliance opens borrowers' margin accounts, borrowers deposit
margin and reserve, the custodian funds the broker's settlement account.

Every cash mint carries a unique custody reference (`dep-<n>`), as the custody bridge does.
Used by the replay and by the broker/keeper tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from crowdleverage.chain.codes import code_to_chain, ref_to_bytes32
from crowdleverage.chain.roles import Role
from crowdleverage.domain.params import HAIRCUT_BPS
from crowdleverage.domain.security import Security
from crowdleverage.risk.sim_chain import register

ENGINE = "MarginEngine"


@dataclass
class World:
    chain: Any  # a ChainPort that has the financing contracts (SimChain for now)
    _refs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def ref(self, prefix: str = "dep") -> bytes:
        return ref_to_bytes32(f"{prefix}-{next(self._refs)}")

    def mint(self, actor: str, amount_fen: int) -> None:
        self.chain.send(
            "CashToken", "mint", self.chain.address_of(actor), amount_fen, self.ref(),
            actor="custodian",
        )  # fmt: skip

    def list_securities(self, codes: list[str]) -> None:
        """Board haircuts (DESIGN.md §7); every sample stock is non-ST and long listed."""
        for code in codes:
            haircut = HAIRCUT_BPS[Security.parse(code).board]
            self.chain.send(ENGINE, "set_security", code_to_chain(code), haircut, False, 0,
                            actor="operator")  # fmt: skip

    def invest(self, investor: str, senior: bool, amount_fen: int) -> None:
        register(self.chain, investor, Role.INVESTOR)
        self.mint(investor, amount_fen)
        pool = self.chain.address_of("pool")
        self.chain.send("CashToken", "approve", pool, amount_fen, actor=investor)
        self.chain.send("TranchePool", "subscribe", senior, amount_fen, actor=investor)

    def close_epoch(self) -> None:
        started = int(self.chain.call("TranchePool", "epoch_started_at"))
        wait = started + int(self.chain.call("TranchePool", "epoch_s")) - self.chain.block_time()
        if wait > 0:
            self.chain.advance_time(wait)
        self.chain.send("TranchePool", "close_epoch", actor="keeper")

    def open_borrower(self, name: str, tier: int, margin_fen: int, reserve_fen: int = 0) -> str:
        register(self.chain, name, Role.BORROWER)
        who = self.chain.address_of(name)
        self.chain.send(ENGINE, "open_account", who, tier, actor="compliance")
        total = margin_fen + reserve_fen
        if total:
            self.mint(name, total)
            self.chain.send("CashToken", "approve", self.chain.address_of("engine"), total,
                            actor=name)  # fmt: skip
        if margin_fen:
            self.chain.send(ENGINE, "deposit", margin_fen, False, actor=name)
        if reserve_fen:
            self.chain.send(ENGINE, "deposit", reserve_fen, True, actor=name)
        return who

    def fund_broker(self, amount_fen: int) -> None:
        """The broker's settlement float at the custodian (pays sell proceeds to the engine
        before the exchange's clearing pays the broker)."""
        self.mint("broker", amount_fen)

    def account(self, who: str) -> dict[str, int]:
        a = self.chain.call(ENGINE, "accounts", who)
        assets, debt, ratio = self.chain.call(ENGINE, "account_state", who)
        return {
            "tier": int(a[0]),
            "cash_fen": int(a[1]),
            "reserve_fen": int(a[2]),
            "pending_fen": int(a[3]),
            "principal_fen": int(a[4]),
            "locked": int(a[6]),
            "open_liq": int(a[7]),
            "assets_fen": int(assets),
            "debt_fen": int(debt),
            "ratio_bps": int(ratio),
        }
