"""Institutional strategy accounts on the platform (DESIGN.md §12, issue 17).

A strategy account is a margin account on the MarginEngine in the institutional tier
(`chain.deploy.INSTITUTIONAL_TIER`), enrolled in `OffPlatformLegs` by compliance (professional
investors only: `accounts.classify_investor` off chain, suitability C5 on chain). Its financed
A-share/ETF leg stays on the engine; the legs the platform cannot custody (index futures, H
shares, short spot) are held at a broker (`LegBroker`), which settles them each day and
reports them on chain with a reference. The account's combined ratio is
`(engine assets + counted off-platform value) / engine debt` (the contract's view).

- `StrategyAccounts`: the chain side (enrol, settle, combined state, brake stage, caps) and
  the desk's financed buy, refused with `StrategyFinancingStopped` (the contract's revert
  reason) while the brake or an unwind stops new strategy financing or a cap would be passed.
- `SimulatedLegBroker`: the off-platform broker port on the simulated venue: positions, cash,
  daily settlement (variation margin into cash), CFFEX margin by date, closes.
- `StrategyKeeper`: each day, after the settlement, feeds the liquidity-reversal brake
  (`market_inputs`), writes its stage on chain, caps the accounts' exposure at LIMIT, and
  unwinds in an orderly schedule at UNWIND (1/`unwind_days` a day of the book's size when the
  stage began: futures closed through the broker port, the financed leg sold through the
  OrderBook) — and at once when an account's combined ratio is below its liquidation line.
  Below the warning line it warns (once a day). When the brake is back below LIMIT the cap is
  lifted, and an unwound account takes financing again once its combined ratio is above the
  initial line.

The engine's own lines still apply to the engine's assets alone (risk/keeper.py); this keeper
acts on the combined ratio, which is what a strategy account's legs are worth together.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import pandas as pd

from crowdleverage.chain.codes import ref_to_bytes32
from crowdleverage.chain.margin import placed_order_id
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.structs import read_account, read_legs_account
from crowdleverage.domain.errors import ComplianceBlock, ContractRevert, InvalidInput, RuleViolation
from crowdleverage.strategies import futures_rules as fr
from crowdleverage.strategies.accounts import DEFAULT_TIER, InstitutionalTier, InvestorClass
from crowdleverage.strategies.brake import (
    BrakeInputs,
    BrakeParams,
    BrakeState,
    LiquidityBrake,
    Stage,
    volume_ratio,
)

log = logging.getLogger("crowdleverage.strategies.live")

LEGS = "OffPlatformLegs"
BPS = 10_000
LOT = 100


class LegKindOnChain(IntEnum):
    FUTURES = 1
    SHARE = 2
    SHORT = 3


class StrategyFinancingStopped(RuleViolation):
    """New financing for a strategy account is refused (brake, unwind or exposure cap)."""

    code = "strategy_financing_stopped"


@dataclass(frozen=True, slots=True)
class Leg:
    """One off-platform leg as reported on chain (prices in CNY fen per unit)."""

    kind: LegKindOnChain
    symbol: str
    quantity: int  # contracts or shares, negative = short
    settle_price_fen: int
    multiplier: int = 1
    margin_fen: int = 0
    oracle_code: int = 0

    def to_chain(self) -> tuple[Any, ...]:
        sym = self.symbol.encode()
        if not 0 < len(sym) <= 16:
            raise InvalidInput(f"leg symbol {self.symbol!r} must be 1..16 bytes")
        return (
            int(self.kind), sym.ljust(16, b"\0"), self.oracle_code, self.quantity,
            self.settle_price_fen, self.multiplier, self.margin_fen,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Combined:
    engine_assets_fen: int
    debt_fen: int
    counted_fen: int  # off-platform value counted (haircut gains, losses in full)
    assets_fen: int  # engine assets + counted, floored at 0
    ratio_bps: int | None  # None without debt


class StrategyAccounts:
    """The chain side of strategy accounts (OffPlatformLegs + the engine's order book)."""

    def __init__(self, chain: ChainPort) -> None:
        self.chain = chain

    def enrol(self, actor: str, investor_class: InvestorClass, broker: str = "broker") -> None:
        """Compliance: the account (opened on the engine in the institutional tier) becomes a
        strategy account reported by `broker`. Professional investors only."""
        if investor_class is not InvestorClass.PROFESSIONAL:
            raise ComplianceBlock(
                "suitability: strategy accounts are for professional investors only",
                account=actor,
            )
        who, b = self.chain.address_of(actor), self.chain.address_of(broker)
        self.chain.send(LEGS, "enrol", who, b, actor="compliance")

    def settle(
        self, actor: str, day: int, ref: str, cash_fen: int, legs: list[Leg], broker: str
    ) -> None:
        self.chain.send(
            LEGS, "settle", self.chain.address_of(actor), day, ref_to_bytes32(ref), cash_fen,
            [leg.to_chain() for leg in legs], actor=broker,
        )  # fmt: skip

    def combined(self, actor: str) -> Combined:
        a, d, c, total, r = self.chain.call(LEGS, "combined_state", self.chain.address_of(actor))
        return Combined(int(a), int(d), int(c), int(total), None if int(d) == 0 else int(r))

    def stage(self) -> Stage:
        return Stage(int(self.chain.call(LEGS, "brake_stage")))

    def check_financing(self, actor: str, extra_debt_fen: int) -> None:
        try:
            self.chain.call(LEGS, "check_financing", self.chain.address_of(actor), extra_debt_fen)
        except ContractRevert as exc:
            raise StrategyFinancingStopped(exc.reason, account=actor) from exc

    def request_buy(self, actor: str, code: int, qty: int, price_fen: int) -> int:
        """The desk's buy of the financed leg: refused with `StrategyFinancingStopped` when
        the buy would draw financing the brake, an unwind or the cap forbids; else the
        order id."""
        cash = read_account(self.chain, self.chain.address_of(actor)).cash_fen
        self.check_financing(actor, max(0, qty * price_fen - cash))
        tx = self.chain.send("OrderBook", "request_buy", code, qty, price_fen, actor=actor)
        return placed_order_id(tx)


# ── the off-platform broker port (simulated venue) ───────────────────────────────────────


@dataclass
class _Position:
    kind: LegKindOnChain
    quantity: int
    settle_price_fen: int
    multiplier: int
    product: str | None  # CFFEX product for futures margin by date
    margin_bps: int  # for shares and shorts


@dataclass
class _BrokerAccount:
    cash_fen: int = 0
    positions: dict[str, _Position] = field(default_factory=dict)


class SimulatedLegBroker:
    """The broker holding a strategy account's off-platform legs: cash, positions, the
    day's settlement (futures variation into cash; CFFEX non-hedge margin by date) and closes
    at a price. Integer fen; fees rounded up against the account."""

    def __init__(self) -> None:
        self.accounts: dict[str, _BrokerAccount] = {}

    def deposit(self, account: str, amount_fen: int) -> None:
        if amount_fen <= 0:
            raise InvalidInput("deposit must be positive")
        self.accounts.setdefault(account, _BrokerAccount()).cash_fen += amount_fen

    def open(
        self, account: str, symbol: str, kind: LegKindOnChain, qty: int, price_fen: int, *,
        multiplier: int = 1, product: str | None = None, margin_bps: int = 5_000, fee_fen: int = 0,
    ) -> None:  # fmt: skip
        acct = self.accounts.setdefault(account, _BrokerAccount())
        if qty == 0 or price_fen <= 0 or symbol in acct.positions:
            raise InvalidInput("open: non-zero quantity, positive price, a new symbol")
        if kind is not LegKindOnChain.FUTURES:
            acct.cash_fen -= qty * price_fen * multiplier  # a short's proceeds come in
        acct.cash_fen -= fee_fen
        acct.positions[symbol] = _Position(kind, qty, price_fen, multiplier, product, margin_bps)

    def close(self, account: str, symbol: str, qty: int, price_fen: int, fee_fen: int = 0) -> int:
        """Close `qty` (a positive amount, toward flat) at `price_fen`; returns the cash
        change of the account."""
        acct = self.accounts[account]
        pos = acct.positions[symbol]
        if not 0 < qty <= abs(pos.quantity):
            raise InvalidInput(f"close: 0 < qty ≤ {abs(pos.quantity)}")
        signed = qty if pos.quantity > 0 else -qty
        if pos.kind is LegKindOnChain.FUTURES:
            delta = signed * (price_fen - pos.settle_price_fen) * pos.multiplier
        else:
            delta = signed * price_fen * pos.multiplier
        delta -= fee_fen
        acct.cash_fen += delta
        pos.quantity -= signed
        if pos.quantity == 0:
            del acct.positions[symbol]
        return delta

    def quantity(self, account: str, symbol: str) -> int:
        pos = self.accounts.get(account, _BrokerAccount()).positions.get(symbol)
        return 0 if pos is None else pos.quantity

    def settle_day(
        self, account: str, day: dt.date, prices_fen: dict[str, int]
    ) -> tuple[int, list[Leg]]:
        """The day's settlement: futures variation margin into cash, the new settlement
        prices, each leg's margin; returns (cash, legs) as the broker reports them."""
        acct = self.accounts.setdefault(account, _BrokerAccount())
        legs = []
        for sym, pos in acct.positions.items():
            px = prices_fen[sym]
            if pos.kind is LegKindOnChain.FUTURES:
                acct.cash_fen += pos.quantity * (px - pos.settle_price_fen) * pos.multiplier
                assert pos.product is not None, "dev: a futures leg has a product"
                bps = fr.rules_on(pos.product, day).margin_bps
            else:
                bps = pos.margin_bps
            pos.settle_price_fen = px
            notional = abs(pos.quantity) * px * pos.multiplier
            margin = -(-notional * bps // BPS)
            legs.append(Leg(pos.kind, sym, pos.quantity, px, pos.multiplier, margin))
        return acct.cash_fen, legs


def market_inputs(
    frame: pd.DataFrame,
    t: int,
    *,
    side: int,
    book_fen: int,
    pool_assets_fen: int,
    params: BrakeParams,
    regime: float = 0.0,
    crowd_multiple: float = 1.0,
    futures: bool = True,
) -> BrakeInputs:
    """The brake's inputs on row `t` of a strategy frame (`spread_bps`, `a_vol`, `b_vol`),
    with data up to that row only: the pool's share in books like this one (`book_fen` ×
    `crowd_multiple` over the pool's assets), the spread's move against `side` (+1/−1, 0
    flat) over the lookback, the thinner leg's volume against its average, the regime and
    the exchange margin rise announced (futures legs). The live twin of the backtest's."""
    day = frame.index[t].date()
    spread = frame["spread_bps"].to_numpy(dtype=float)
    lo = max(0, t - params.lookback_days)
    adverse = float(side * (spread[t] - spread[lo]))
    vr = min(
        volume_ratio(frame["a_vol"].to_numpy(dtype=float), t, params.volume_avg_days),
        volume_ratio(frame["b_vol"].to_numpy(dtype=float), t, params.volume_avg_days),
    )
    share = int(crowd_multiple * book_fen * BPS // max(pool_assets_fen, 1))
    step = fr.known_margin_step(day) if futures else 1.0
    reg = regime if math.isfinite(regime) else 0.0
    return BrakeInputs(day, share, adverse if math.isfinite(adverse) else 0.0, vr, reg, step)


# ── the keeper of strategy accounts ──────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class SpotLeg:
    """An account's financed leg on the engine (chain code)."""

    code: int


@dataclass
class _Tracked:
    actor: str
    spot: list[SpotLeg]
    ref_qty: dict[str, int] = field(default_factory=dict)  # sizes when the stage began
    ref_stage: Stage = Stage.NORMAL
    warned_on: dt.date | None = None


@dataclass(frozen=True, slots=True)
class DayActions:
    day: dt.date
    brake: BrakeState
    warned: tuple[str, ...]
    unwound: tuple[str, ...]  # accounts reduced today
    sells: tuple[tuple[str, int, int, int], ...]  # (account, order id, code, qty) placed
    closes: tuple[tuple[str, str, int], ...]  # (account, symbol, qty) closed at the broker


class StrategyKeeper:
    """Brake stage on chain, exposure caps, orderly unwinds and warnings for strategy
    accounts, on their combined ratio (see the module docstring)."""

    def __init__(
        self,
        chain: ChainPort,
        accounts: StrategyAccounts,
        broker: SimulatedLegBroker,
        brake: LiquidityBrake,
        *,
        tier: InstitutionalTier = DEFAULT_TIER,
        actor: str = "keeper",
    ) -> None:
        self.chain, self.accounts, self.broker, self.brake = chain, accounts, broker, brake
        self.tier, self.actor = tier, actor
        self.tracked: dict[str, _Tracked] = {}
        self._stage_on_chain = accounts.stage()

    def track(self, actor: str, spot: list[SpotLeg]) -> None:
        self.tracked[actor] = _Tracked(actor, spot)

    def on_day(self, day: dt.date, inputs: BrakeInputs, prices_fen: dict[str, int]) -> DayActions:
        """After the day's settlement is on chain: the brake, caps, unwinds and warnings.
        `prices_fen`: the day's price of each off-platform symbol (the broker's close)."""
        st = self.brake.update(inputs)
        if st.stage != self._stage_on_chain:
            self.chain.send(LEGS, "set_brake_stage", int(st.stage), actor=self.actor)
            log.info("strategy brake stage", extra={"day": day.isoformat(), "stage": st.stage.name})
            self._stage_on_chain = st.stage
        warned, unwound, sells, closes = [], [], [], []
        for t in self.tracked.values():
            c = self.accounts.combined(t.actor)
            liq = c.ratio_bps is not None and c.ratio_bps < self.tier.liquidation_ratio_bps
            if st.stage >= Stage.LIMIT and (not t.ref_qty or t.ref_stage != st.stage):
                # the schedule's reference: the book's size when this stage began
                t.ref_qty, t.ref_stage = self._sizes(t), st.stage
                if st.stage is Stage.LIMIT:
                    cap = c.debt_fen * int(st.params.limit_fraction * BPS) // BPS
                    self.chain.send(LEGS, "set_cap", self._who(t), max(cap, 1), actor=self.actor)
            elif st.stage < Stage.LIMIT and t.ref_qty:
                t.ref_qty, t.ref_stage = {}, Stage.NORMAL
                self.chain.send(LEGS, "set_cap", self._who(t), 0, actor=self.actor)
            if liq:
                target = 0.0
            elif st.stage >= Stage.UNWIND:
                target = st.cap_fraction
            elif st.stage is Stage.LIMIT:
                target = st.params.limit_fraction
            else:
                target = 1.0
            if target < 1.0:
                ref = t.ref_qty or self._sizes(t)
                s, cl = self._reduce(t, ref, target, prices_fen)
                if s or cl:
                    unwound.append(t.actor)
                    sells += s
                    closes += cl
                if (s or cl or liq) and not self._unwinding(t):
                    self.chain.send(LEGS, "set_unwinding", self._who(t), True, actor=self.actor)
            elif self._unwinding(t) and (
                c.ratio_bps is None or c.ratio_bps >= self.tier.initial_ratio_bps
            ):
                # the brake released and the account is back above its initial line
                self.chain.send(LEGS, "set_unwinding", self._who(t), False, actor=self.actor)
            elif (
                c.ratio_bps is not None
                and c.ratio_bps < self.tier.warning_ratio_bps
                and t.warned_on != day
            ):
                t.warned_on = day
                warned.append(t.actor)
                log.warning(
                    "strategy account below warning line",
                    extra={"account": t.actor, "ratio_bps": c.ratio_bps},
                )
        return DayActions(day, st, tuple(warned), tuple(unwound), tuple(sells), tuple(closes))

    def _who(self, t: _Tracked) -> str:
        return self.chain.address_of(t.actor)

    def _unwinding(self, t: _Tracked) -> bool:
        return read_legs_account(self.chain, self._who(t)).unwinding

    def _sizes(self, t: _Tracked) -> dict[str, int]:
        out = {f"spot:{s.code}": self._held(t, s.code) for s in t.spot}
        for sym, pos in self.broker.accounts.get(t.actor, _BrokerAccount()).positions.items():
            out[sym] = abs(pos.quantity)
        return out

    def _held(self, t: _Tracked, code: int) -> int:
        return int(self.chain.call("MarginEngine", "positions", self._who(t), code))

    def _reduce(
        self, t: _Tracked, ref: dict[str, int], target: float, prices_fen: dict[str, int]
    ) -> tuple[list[tuple[str, int, int, int]], list[tuple[str, str, int]]]:
        sells, closes = [], []
        for key, size in ref.items():
            allowed = math.floor(size * max(target, 0.0))
            if key.startswith("spot:"):
                code = int(key[5:])
                excess = self._held(t, code) - allowed
                sellable = int(self.chain.call("MarginEngine", "sellable", self._who(t), code))
                qty = min(excess, sellable)
                qty = qty if allowed == 0 and qty == excess else qty // LOT * LOT
                if qty > 0:
                    px = int(self.chain.call("PriceOracle", "conservative_price", code))
                    tx = self.chain.send("OrderBook", "request_sell", code, qty, px, actor=t.actor)
                    oid = placed_order_id(tx)
                    sells.append((t.actor, oid, code, qty))
            else:
                held = abs(self.broker.quantity(t.actor, key))
                qty = held - allowed
                if qty > 0:
                    self.broker.close(t.actor, key, qty, prices_fen[key])
                    closes.append((t.actor, key, qty))
        return sells, closes


def brake_panel(chain: ChainPort) -> dict[str, Any]:
    """The brake as the operator's risk panel and the transparency page show it, with the live
    strategy accounts: the stage on chain (what the desk enforces), the brake's parameters,
    and aggregates over the enrolled accounts (count, unwinding, engine debt, the lowest
    combined ratio). Without OffPlatformLegs on the chain: the resting state, no accounts."""
    from crowdleverage.strategies.brake import brake_state

    out = brake_state(None)
    if LEGS not in chain.deployed():
        out["strategy_accounts_open"] = 0
        return out
    stage = Stage(int(chain.call(LEGS, "brake_stage")))
    out.update(stage=stage.name, stage_level=int(stage), new_financing=stage < Stage.NO_NEW)
    accounts = sorted({e.args["account"] for e in chain.events(LEGS, "StrategyAccountEnrolled")})
    unwinding, debt, lowest = 0, 0, None
    for who in accounts:
        _, d, _, _, r = chain.call(LEGS, "combined_state", who)
        unwinding += read_legs_account(chain, who).unwinding
        debt += int(d)
        if int(d) > 0:
            lowest = int(r) if lowest is None else min(lowest, int(r))
    out.update(
        source="chain",
        strategy_accounts_open=len(accounts),
        strategy_accounts_unwinding=unwinding,
        strategy_debt_fen=debt,
        lowest_combined_ratio_bps=lowest,
    )
    return out
