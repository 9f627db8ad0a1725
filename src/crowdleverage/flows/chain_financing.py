"""`ChainFinancing`: the platform's pool, margin and trading use cases on the financing
contracts (TranchePool, MarginEngine, CashToken, IdentityRegistry) through a `ChainPort`,
in the platform's vocabulary (user ids, tranches, security codes, fen).

This is the layer `flows.Platform` delegates to instead of re-implementing the engine's rules
in Python: every check (eligibility, post-trade ratio, position limits, pool liquidity,
junior ratio, liquidity buffer) is the contract's, and a refusal comes back as
`ContractRevert` with the contract's reason (HTTP 422) with nothing written. Orders fill
asynchronously: `request_buy`/`request_sell` only record the request on chain; the broker
places it on the exchange and settles fills during the trading day (`self.session`, a
`risk.session.TradingSession`).

Each user acts from their own address (actor `user-<id>`), registered on chain by
compliance with the role the platform's KYC granted. Cash reaches that address only as
`CashToken` minted by the custodian with the custody ledger's transfer id as reference
(DESIGN.md §5.1), and leaves it only burned the same way (§5.6).

Chain: any port that has the financing system deployed, e.g. the persisted embedded chain
of `risk.world.open_financing_chain` (chain.deploy's `deploy_financing`); the users' actors
must have keys on it. The broker's and keeper's journals and the session's progress live
in `work_dir`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crowdleverage.broker.simulated import SimulatedBroker
from crowdleverage.chain.codes import code_to_chain, ref_to_bytes32
from crowdleverage.chain.margin import ENGINE, ORDERBOOK, margin_events
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.roles import Role
from crowdleverage.chain.structs import read_account
from crowdleverage.compliance.chain_adapter import ChainIdentityWriter
from crowdleverage.compliance.ports import IdentityRole
from crowdleverage.domain.errors import InvalidInput
from crowdleverage.domain.params import HAIRCUT_BPS
from crowdleverage.domain.security import Security
from crowdleverage.market.exchange import SimulatedExchange
from crowdleverage.market.replay import TradingDay
from crowdleverage.oracle.feeder import OracleFeeder, Reporter
from crowdleverage.risk.keeper import ChainSync, Keeper
from crowdleverage.risk.monitor import RiskMonitor
from crowdleverage.risk.regime import RegimePoint
from crowdleverage.risk.session import EpochClose, EpochClosed, TradingSession
from crowdleverage.risk.world import list_securities

POOL = "TranchePool"
SHARE = {True: "SeniorShare", False: "JuniorShare"}
IDENTITY_TTL_S = 5 * 365 * 86_400
JURISDICTION = b"CN"
REPORTERS = ("reporter1", "reporter2", "reporter3")


def actor(user_id: int) -> str:
    return f"user-{user_id}"


@dataclass(frozen=True, slots=True)
class AccountView:
    """A margin account as the engine keeps it (fen, bps)."""

    tier: int
    cash_fen: int
    reserve_fen: int
    pending_fen: int
    principal_fen: int
    locked: bool
    open_liquidation: bool
    assets_fen: int
    debt_fen: int
    ratio_bps: int | None  # None without debt


def precheck_order_amounts(qty: int, limit_fen: int) -> None:
    """Kept for a clearer message: the engine refuses the same orders ("margin: quantity not
    whole lots", "margin: zero price", "margin: not enough sellable shares"; a negative value
    cannot even be encoded as uint256). Tested to agree with the contract."""
    if qty <= 0 or limit_fen <= 0:
        raise InvalidInput("quantity and limit price must be positive")


class ChainFinancing:
    """Use cases on the financing contracts; one instance per chain."""

    def __init__(
        self,
        chain: ChainPort,
        *,
        codes: list[str],
        work_dir: Path,
        ticks_per_day: int = 16,
        regimes: Callable[[], Sequence[RegimePoint]] | None = None,
        liquidity_days: Sequence[TradingDay] | None = None,
    ) -> None:
        self.chain = chain
        self.codes = list(codes)
        self.ticks_per_day = ticks_per_day
        self.exchange = SimulatedExchange()
        self.broker = SimulatedBroker(chain, self.exchange, work_dir / "broker.db")
        self.feeder = OracleFeeder(chain, [Reporter(r) for r in REPORTERS], self.codes)
        haircuts = [HAIRCUT_BPS[Security.parse(c).board] for c in self.codes]
        self.monitor = RiskMonitor(self.codes, haircuts, threads=1)
        self.keeper = Keeper(chain, self.monitor, journal=work_dir / "keeper.json")
        self.sync = ChainSync(chain, self.monitor)
        self.session = TradingSession(
            chain, codes=self.codes, ticks_per_day=ticks_per_day, feeder=self.feeder,
            exchange=self.exchange, broker=self.broker, monitor=self.monitor,
            keeper=self.keeper, sync=self.sync, regimes=regimes,
            # the 20-day liquidity published at each open (RiskParams; none on a chain
            # deployed before RiskParams)
            liquidity_days=liquidity_days if "RiskParams" in chain.deployed() else None,
            progress=work_dir / "session.json",  # a restart resumes the tick exactly
        )  # fmt: skip

    def close(self) -> None:
        self.broker.close()

    # ── identities and cash (custody references) ────────────────────────────────────────

    def address(self, user_id: int) -> str:
        return self.chain.address_of(actor(user_id))

    def register(self, user_id: int, role: Role, suitability: int = 4) -> None:
        """Compliance writes the verified identity on chain (idempotent for the same role),
        through the compliance writer; the onboarding pipeline has usually written it already."""
        who = self.address(user_id)
        if self.chain.call("IdentityRegistry", "has_role", who, int(role)):
            return
        ChainIdentityWriter(self.chain, jurisdiction=JURISDICTION).set_identity(
            who, verified=True, frozen=False, expiry_s=self.chain.block_time() + IDENTITY_TTL_S,
            suitability_level=suitability, roles=IdentityRole(int(role)),
        )  # fmt: skip

    def list_securities(self, codes: list[str]) -> None:
        """Operator: board haircuts of DESIGN.md §7 (sample stocks are non-ST, long listed)."""
        list_securities(self.chain, codes)

    def mint(self, user_id: int, amount_fen: int, ledger_transfer_id: int) -> None:
        """Custodian: the chain twin of a custody posting that credits the user."""
        self.chain.send(
            "CashToken", "mint", self.address(user_id), amount_fen,
            ref_to_bytes32(ledger_transfer_id), actor="custodian",
        )  # fmt: skip

    def burn(self, user_id: int, amount_fen: int, ledger_transfer_id: int) -> None:
        """Custodian: the chain twin of a payout the custody ledger posts."""
        self.chain.send(
            "CashToken", "burn", self.address(user_id), amount_fen,
            ref_to_bytes32(ledger_transfer_id), actor="custodian",
        )  # fmt: skip

    def wallet_fen(self, user_id: int) -> int:
        return int(self.chain.call("CashToken", "balanceOf", self.address(user_id)))

    def _approve(self, user_id: int, spender: str, amount_fen: int) -> None:
        self.chain.send("CashToken", "approve", self.chain.contract_address(spender),
                        amount_fen, actor=actor(user_id))  # fmt: skip

    # ── investors: subscribe, redeem, epoch ─────────────────────────────────────────────

    def subscribe(self, user_id: int, senior: bool, amount_fen: int) -> None:
        """Queue a subscription; the cash moves into the pool's escrow now, units are issued
        at the epoch close (if the junior ratio allows)."""
        self._approve(user_id, POOL, amount_fen)
        self.chain.send(POOL, "subscribe", senior, amount_fen, actor=actor(user_id))

    def redeem(self, user_id: int, senior: bool, units: int) -> None:
        self.chain.send(POOL, "redeem", senior, units, actor=actor(user_id))

    def collect(self, user_id: int) -> int:
        """Pull executed redemption proceeds into the user's wallet; returns the fen."""
        amount = int(self.chain.call(POOL, "claimable_fen", self.address(user_id)))
        if amount:
            self.chain.send(POOL, "withdraw", actor=actor(user_id))
        return amount

    def units(self, user_id: int, senior: bool) -> int:
        return int(self.chain.call(SHARE[senior], "balanceOf", self.address(user_id)))

    def close_epoch(self) -> EpochClosed:
        """Keeper: close the epoch now (waiting out its length on the chain clock)."""
        closed = self.session.close_epoch(EpochClose.WAIT)
        assert closed is not None
        return closed

    def track(self, user_id: int, tier: int) -> None:
        """Watch an account opened earlier (a restarted service)."""
        self.monitor.add_account(self.address(user_id), tier)

    def navs(self) -> tuple[int, int]:
        senior, junior = self.chain.call(POOL, "navs")
        return int(senior), int(junior)

    # ── borrowers: account, margin, trading ─────────────────────────────────────────────

    def open_account(self, user_id: int, tier: int) -> str:
        self.register(user_id, Role.BORROWER)
        who = self.address(user_id)
        self.chain.send(ENGINE, "open_account", who, tier, actor="compliance")
        self.monitor.add_account(who, tier)
        return who

    def deposit(self, user_id: int, amount_fen: int, *, reserve: bool) -> None:
        self._approve(user_id, ENGINE, amount_fen)
        self.chain.send(ENGINE, "deposit", amount_fen, reserve, actor=actor(user_id))

    def withdraw(self, user_id: int, amount_fen: int, *, reserve: bool) -> None:
        self.chain.send(ENGINE, "withdraw", amount_fen, reserve, actor=actor(user_id))

    def repay(self, user_id: int, amount_fen: int, *, from_wallet: bool) -> None:
        if from_wallet:
            self._approve(user_id, ENGINE, amount_fen)
        self.chain.send(ENGINE, "repay", amount_fen, from_wallet, actor=actor(user_id))

    def request_buy(self, user_id: int, code: str, qty: int, limit_price_fen: int) -> int:
        return self._request("request_buy", user_id, code, qty, limit_price_fen)

    def request_sell(self, user_id: int, code: str, qty: int, limit_price_fen: int) -> int:
        return self._request("request_sell", user_id, code, qty, limit_price_fen)

    def _request(self, fn: str, user_id: int, code: str, qty: int, limit_fen: int) -> int:
        precheck_order_amounts(qty, limit_fen)
        tx = self.chain.send(ORDERBOOK, fn, code_to_chain(code), qty, limit_fen,
                             actor=actor(user_id))  # fmt: skip
        [req] = [e.args for e in tx.events if e.event == "OrderRequested"]
        return int(req["order_id"])

    def account(self, user_id: int) -> AccountView:
        who = self.address(user_id)
        a = read_account(self.chain, who)
        assets, debt, ratio = self.chain.call(ENGINE, "account_state", who)
        return AccountView(
            tier=a.tier, cash_fen=a.cash_fen, reserve_fen=a.reserve_fen,
            pending_fen=a.pending_fen, principal_fen=a.principal_fen, locked=a.locked,
            open_liquidation=a.open_liq > 0, assets_fen=int(assets), debt_fen=int(debt),
            ratio_bps=None if int(debt) == 0 else int(ratio),
        )  # fmt: skip

    def position(self, user_id: int, code: str) -> int:
        return int(self.chain.call(ENGINE, "positions", self.address(user_id),
                                   code_to_chain(code)))  # fmt: skip

    def sellable(self, user_id: int, code: str) -> int:
        return int(self.chain.call(ENGINE, "sellable", self.address(user_id),
                                   code_to_chain(code)))  # fmt: skip

    # ── the trading day: one `TradingSession` (risk/session.py) ─────────────────────────

    def events(self, event: str, since: int = 0) -> list[dict[str, Any]]:
        """The engine's events of one kind (MarginWarning, TopUp, LiquidationStarted, …)."""
        return [e.args for e in margin_events(self.chain, event, since)]
