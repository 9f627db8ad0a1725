"""Crash replay: the whole platform driven by a bar file.

Setup (on the trading day before `--from`): the contracts are deployed, investors fund the
senior and junior tranches, borrowers across the three tiers open accounts with margin (and,
for half of them, a reserve) and buy portfolios drawn from the data's most liquid stocks,
through the engine's pre-trade checks, the broker and the exchange.

Then, for every trading day: the oracle feeder opens the day (previous closes, bands, halts)
and the exchange its session; at each tick the reporters report, the monitor recomputes
every ratio, the keeper acts on the accounts below a line, the broker places the engine's
orders and settles the exchange's fills, and the monitor follows the chain's events. At the
close the broker releases what did not fill, the keeper ends or re-plans liquidations, and
the pool closes its epoch.

Per day it reports ratio percentiles, warnings, top-ups, liquidations started/completed,
liquidation orders waiting behind seals, and losses by waterfall layer; at the end the
tranche NAVs, the insurance fund and the invariants checked. Deterministic for a seed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crowdleverage.broker.corporate_actions import CorporateActionAgent
from crowdleverage.broker.simulated import SimulatedBroker
from crowdleverage.chain.codes import code_to_chain
from crowdleverage.chain.deploy import (
    FINANCING_ACTORS,
    deploy_financing,
    deploy_system,
    manifest_path,
)
from crowdleverage.chain.devnode import DevNodeChain
from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.margin import ORDERBOOK
from crowdleverage.chain.params import liquidity_headroom
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.structs import read_account, read_index
from crowdleverage.domain.errors import ConfigError, ContractRevert, InvalidInput
from crowdleverage.domain.params import (
    HAIRCUT_BPS,
    MAX_PLATFORM_EXPOSURE_BPS,
    TIERS,
    LeverageTier,
)
from crowdleverage.domain.security import Security
from crowdleverage.market.bars import Bar, read_bars
from crowdleverage.market.calendar import SHANGHAI
from crowdleverage.market.corporate_actions import read_actions, with_reference_prices
from crowdleverage.market.exchange import (
    ExchangeConfig,
    Fill,
    Order,
    SimulatedExchange,
    fill_obeys_rules,
)
from crowdleverage.market.replay import TradingDay, intraday_ticks, trading_days
from crowdleverage.market.rules import LOT, Side
from crowdleverage.oracle.feeder import OracleFeeder, Reporter, ReporterMode
from crowdleverage.risk.accounting import (
    BorrowerEnd,
    WriteOff,
    end_marks,
    settle,
    tier_table,
    tranche_returns,
)
from crowdleverage.risk.book import Book, BorrowerSpec
from crowdleverage.risk.keeper import ChainSync, Keeper
from crowdleverage.risk.monitor import AccountState, RiskMonitor
from crowdleverage.risk.regime import (
    RegimeParams,
    liquidity_caps,
    publish_liquidity,
    regime_history,
)
from crowdleverage.risk.session import EpochClose, SessionObserver, TradingSession
from crowdleverage.risk.umbrella import umbrella_trust
from crowdleverage.risk.world import (
    DEV_SEED,
    ENGINE,
    SESSION_ORACLE,
    World,
    open_financing_chain,
)

YUAN = 100
WAN = 10_000 * YUAN


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    data: Path
    start: dt.date
    end: dt.date
    seed: int = 20160104
    book: Book = field(default_factory=Book)
    borrowers_per_tier: int | None = None  # overrides the book's
    stocks: int | None = None  # overrides the book's
    ticks_per_day: int = 8
    # chain, broker and keeper journals; None: a temporary dir, removed at the end
    work_dir: Path | None = None
    faulty_reporter: ReporterMode = ReporterMode.HONEST  # the third reporter's behaviour
    actions: Path | None = None  # corporate actions applied at ex-date opens (unadjusted data)
    # the chain: None = the embedded EVM in the work dir; else the JSON-RPC URL of a fresh dev
    # node (anvil) whose clock is not after the setup day's 09:00 − 2 days (development keys,
    # funded with `anvil_setBalance`; the contracts are deployed on it)
    rpc_url: str | None = None


@dataclass
class DayReport:
    date: str
    ratio_p01_bps: int | None = None
    ratio_p05_bps: int | None = None
    ratio_p50_bps: int | None = None
    accounts_below_liquidation: int = 0
    warnings: int = 0
    top_ups: int = 0
    liquidations_started: int = 0  # accounts that entered liquidation this day
    liquidation_rounds: int = 0  # LiquidationStarted events (first rounds, next rounds, re-marks)
    liquidations_completed: int = 0
    orders_waiting_behind_seals: int = 0
    shares_waiting_behind_seals: int = 0
    liquidation_fills: int = 0
    positions_adjusted: int = 0  # corporate actions: bonus/transfer shares added at the open
    dividends_net_fen: int = 0  # corporate actions: net cash dividends credited
    losses_fen: dict[str, int] = field(default_factory=dict)  # booked on chain this day
    regime: str = ""  # the market regime at the close (risk/regime.py)


BOOKED = ("borrower_reserve", "penalty", "insurance", "junior", "senior")


@dataclass
class ReplayReport:
    setup_day: str
    stocks: list[str]
    borrowers: dict[str, int]
    days: list[DayReport]
    senior_nav_fen: int = 0
    junior_nav_fen: int = 0
    insurance_fen: int = 0
    losses_fen: dict[str, int] = field(default_factory=dict)
    invariants: dict[str, bool] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    keeper: dict[str, Any] = field(default_factory=dict)
    oracle: dict[str, Any] = field(default_factory=dict)
    fills: int = 0
    book: dict[str, Any] = field(default_factory=dict)  # pool, utilisation, borrowers
    accounting: dict[str, Any] = field(default_factory=dict)  # per borrower, layers, check
    tiers: dict[int, dict[str, Any]] = field(default_factory=dict)  # per tier + umbrella
    tranches: list[dict[str, Any]] = field(default_factory=list)
    regime: dict[str, Any] = field(default_factory=dict)  # indicator history and parameters
    liquidity: dict[str, Any] = field(default_factory=dict)  # 20-day volume caps

    def as_dict(self) -> dict[str, Any]:
        return {
            "book": self.book,
            "accounting": self.accounting,
            "tiers": {str(k): v for k, v in self.tiers.items()},
            "tranches": self.tranches,
            "regime": self.regime,
            "liquidity": self.liquidity,
            "setup_day": self.setup_day,
            "stocks": self.stocks,
            "borrowers": self.borrowers,
            "days": [d.__dict__ for d in self.days],
            "senior_nav_fen": self.senior_nav_fen,
            "junior_nav_fen": self.junior_nav_fen,
            "insurance_fen": self.insurance_fen,
            "losses_fen": self.losses_fen,
            "invariants": self.invariants,
            "violations": self.violations,
            "keeper": self.keeper,
            "oracle": self.oracle,
            "fills": self.fills,
        }


def _limit_price(price_fen: int, bar: Bar) -> int:
    up = bar.band.limit_up_fen if bar.band and bar.band.limit_up_fen else price_fen
    return min(price_fen * 101 // 100, up)


SINGLE_LIMIT_BPS = 3_950  # the engine's 40% single-security limit, with a little slack
BUY_FEE_ALLOWANCE_BPS = 30  # the engine reserves this on top of a buy's amount


class BuyPlanner:
    """A borrower's setup buys, modelling the engine's pre-trade checks (DESIGN.md §7):
    assets after the buy = assets + draw − cost + value; the held security ≤ 40% of that;
    ratio ≥ the tier's initial ratio; leverage ≤ the tier's; the platform's shares of the
    security (`platform`, shared by every borrower's planner) ≤ 5% of the pool's assets; and
    the platform's shares at the order's limit ≤ the security's liquidity cap
    (`liquidity_cap_fen`, RiskParams' `liquidity_cap_fen` after the session's `set_liquidity`;
    a code without one has no cap). The chain caps only buys that draw financing; the book
    keeps every buy under it, so the platform's position respects the cap."""

    def __init__(
        self,
        spec: BorrowerSpec,
        prices: dict[str, int],
        limits: dict[str, int],
        haircuts: dict[str, int],
        tier: LeverageTier,
        platform: dict[str, int],
        exposure_cap_fen: int,
        liquidity_cap_fen: dict[str, int] | None = None,
    ) -> None:
        self.spec = spec
        self.platform = platform
        self.exposure_cap_fen = exposure_cap_fen
        self.liquidity_cap_fen = liquidity_cap_fen or {}
        self.tier = tier
        self.prices, self.limits, self.haircuts = prices, limits, haircuts
        gross = spec.margin_fen + spec.planned_loan_fen
        self.target = {c: gross // len(spec.codes) for c in spec.codes}
        self.held = dict.fromkeys(spec.codes, 0)  # shares bought or being bought
        self.cash = spec.margin_fen
        self.assets = spec.margin_fen
        self.debt = 0
        self.done: set[str] = set()

    def _after(self, code: str, qty: int) -> tuple[int, int, int, int]:
        gross = qty * self.limits[code]
        cost = gross + -(-gross * BUY_FEE_ALLOWANCE_BPS // 10_000)
        draw = max(0, cost - self.cash)
        value = qty * min(self.prices[code], self.limits[code]) * self.haircuts[code] // 10_000
        return cost, draw, self.assets + draw - cost + value, self.debt + draw

    def _allowed(self, code: str, qty: int) -> bool:
        _, _, assets, debt = self._after(code, qty)
        unit = min(self.prices[code], self.limits[code]) * self.haircuts[code] // 10_000
        if (self.held[code] + qty) * unit * 10_000 > SINGLE_LIMIT_BPS * assets:
            return False
        if (self.platform[code] + qty) * unit > self.exposure_cap_fen:
            return False
        cap = self.liquidity_cap_fen.get(code)
        if cap is not None and (self.platform[code] + qty) * self.limits[code] > cap:
            return False  # financed: "margin: above liquidity cap"; own cash: the book's rule
        if debt == 0:
            return True
        t = self.tier
        return assets * 10_000 >= t.initial_ratio_bps * debt and debt <= t.max_leverage * (
            assets - debt
        )

    def next_buy(self) -> tuple[str, int] | None:
        """(code, shares) of the next buy, or None when every target is reached."""
        while True:
            open_ = [c for c in self.spec.codes if c not in self.done]
            if not open_:
                return None
            code = min(open_, key=lambda c: (self.held[c] * self.limits[c] / self.target[c], c))
            room = self.target[code] - self.held[code] * self.limits[code]
            hi = max(room, 0) // self.limits[code] // LOT  # lots
            lo = 0
            while lo < hi:  # the most lots the checks allow (feasibility falls with size)
                mid = (lo + hi + 1) // 2
                if self._allowed(code, mid * LOT):
                    lo = mid
                else:
                    hi = mid - 1
            if lo == 0:
                self.done.add(code)
                continue
            return code, lo * LOT

    def bought(self, code: str, qty: int) -> None:
        """The engine accepted `qty` shares (0: refused; the code is then left as it is)."""
        if qty == 0:
            self.done.add(code)
            return
        cost, draw, assets, debt = self._after(code, qty)
        self.cash += draw - cost
        self.assets, self.debt = assets, debt
        self.held[code] += qty
        self.platform[code] += qty


def _choose_stocks(
    setup: TradingDay, first: TradingDay, n: int, rng: np.random.Generator
) -> list[str]:
    """The most liquid stocks trading on the setup day and the first replay day, n drawn from
    the top 2n by traded amount."""
    live = [
        b
        for b in setup.stocks
        if not b.halted and b.code in first.bars and Security.parse(b.code).board in HAIRCUT_BPS
    ]
    live.sort(key=lambda b: (-b.amount, b.code))
    pool = [b.code for b in live[: 2 * n]]
    if len(pool) < 3:
        raise InvalidInput("the data has too few stocks trading on the setup day")
    picked = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return sorted(pool[i] for i in picked)


class Replay(SessionObserver):
    def __init__(self, cfg: ReplayConfig) -> None:
        if cfg.end < cfg.start:
            raise InvalidInput(f"--to {cfg.end} is before --from {cfg.start}")
        self.cfg = cfg
        self.book = cfg.book.with_options(
            borrowers_per_tier=cfg.borrowers_per_tier, stocks=cfg.stocks
        )
        self.rng = np.random.default_rng(cfg.seed)
        bars = read_bars(cfg.data)
        actions = read_actions(cfg.actions) if cfg.actions else []
        bars = with_reference_prices(bars, actions)  # the oracle opens ex-dates at the reference
        days = list(trading_days(bars, None, cfg.end))
        before = [d for d in days if d.date < cfg.start]
        self.days = [d for d in days if d.date >= cfg.start]
        if not before or not self.days:
            raise InvalidInput(
                f"the data needs a trading day before {cfg.start} (setup) and one in the range"
            )
        self.setup = before[-1]
        self.history = days  # every day up to the end: regime look-back, 20-day volumes
        self._regimes = regime_history(days)  # each close from the closes before it only
        self.codes = _choose_stocks(self.setup, self.days[0], self.book.stocks, self.rng)
        self.plan = self.book.assign_stocks(self.book.plan(self.rng), self.codes, self.rng)
        genesis = dt.datetime.combine(self.setup.date, dt.time(9, 0), SHANGHAI)
        self._temp_work = cfg.work_dir is None
        work = cfg.work_dir or Path(tempfile.mkdtemp(prefix="crowdlev-replay-"))
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        self.genesis_time_s = int(genesis.timestamp()) - 2 * 86_400
        try:
            self.chain = self._open_chain()
            self.world = World(self.chain)
            self.exchange_cfg = ExchangeConfig()
            self.exchange = SimulatedExchange(self.exchange_cfg)
            broker = SimulatedBroker(self.chain, self.exchange, work / "broker.db")
            self.corporate = CorporateActionAgent(self.chain, actions, work / "corporate.db")
        except BaseException:
            if self._temp_work:  # nothing half-made is left behind
                shutil.rmtree(work, ignore_errors=True)
            raise
        reporters = [
            Reporter("reporter1"),
            Reporter("reporter2"),
            Reporter("reporter3", cfg.faulty_reporter, stale_after_tick=1),
        ]
        self.feeder = OracleFeeder(self.chain, reporters, self.codes)
        haircuts = [HAIRCUT_BPS[Security.parse(c).board] for c in self.codes]
        self.monitor = RiskMonitor(self.codes, haircuts, threads=1)
        self.sync = ChainSync(self.chain, self.monitor)
        # the day loop is the platform's (risk/session.py); this replay observes it
        self.session = TradingSession(
            self.chain, codes=self.codes, ticks_per_day=cfg.ticks_per_day, feeder=self.feeder,
            exchange=self.exchange, broker=broker, monitor=self.monitor,
            keeper=Keeper(self.chain, self.monitor, journal=work / "keeper.json"),
            sync=self.sync, regimes=lambda: self._regimes, liquidity_days=self.history,
            corporate=self.corporate, holders=lambda: self.names, observer=self,
        )  # fmt: skip
        self.borrowers: dict[str, int] = {}
        self.names: dict[str, str] = {}  # address → actor name
        self.specs: dict[str, BorrowerSpec] = {}  # address → the book's borrower
        self.initial: dict[str, dict[str, int]] = {}  # address → positions after setup
        self.initial_debt: dict[str, int] = {}  # address → debt after setup
        self.setup_utilisation_bps = 0
        self.write_offs: dict[str, list[WriteOff]] = defaultdict(list)
        self._penalty_open: Counter[str] = Counter()  # address → penalty in the open round
        self._absorbed: dict[str, int] | None = None
        self.all_fills: list[tuple[dt.date, Fill, Order, Bar]] = []
        self.liq_orders: set[int] = set()
        self._in_liquidation: set[str] = set()
        self._liq_cursor = 0
        self._events_seen = 0  # the latest event seq read
        self._report: DayReport | None = None  # the day being replayed (None: the setup day)
        self._gc_was_enabled = False  # `start` turned the cyclic collector off

    @property
    def broker(self) -> SimulatedBroker:
        return self.session.broker

    @property
    def keeper(self) -> Keeper:
        return self.session.keeper

    # ── setup ───────────────────────────────────────────────────────────────────────────

    def actors(self) -> list[str]:
        """The investors and borrowers that send transactions (they need keys)."""
        return ["investor-senior", "investor-junior", *(b.name for b in self.plan)]

    def _open_chain(self) -> ChainPort:
        """The embedded chain in the work dir, or the configured dev node (`rpc_url`) with the
        financing system deployed on first open (the manifest in the work dir says it is)."""
        if self.cfg.rpc_url is None:
            # a temporary work dir is removed at the close and never reopened: no snapshots
            # (each persists the whole state trie's changes; the journal is still written)
            return open_financing_chain(
                self.work, self.actors(), genesis_time_s=self.genesis_time_s,
                snapshot_every=None if self._temp_work else 500,
            )  # fmt: skip
        keys = ActorKeys.dev(DEV_SEED, dict.fromkeys([*FINANCING_ACTORS, *self.actors()]))
        chain = DevNodeChain(self.cfg.rpc_url, keys, self.work)
        if manifest_path(self.work).exists():
            return chain
        if chain.block_time() > self.genesis_time_s:
            chain.close()
            raise ConfigError(
                f"the node's clock ({chain.block_time()}) is after the replay's genesis"
                f" ({self.genesis_time_s}): start a fresh dev node, e.g."
                f" `anvil --timestamp {self.genesis_time_s}`"
            )
        if chain.block_time() < self.genesis_time_s:
            chain.set_block_time(self.genesis_time_s)
        chain.fund([*FINANCING_ACTORS, *self.actors()], 10**21)  # gas money (a dev node)
        deploy_system(chain, self.work, SESSION_ORACLE)
        deploy_financing(chain, self.work)
        return chain

    def fund_and_open(self) -> None:
        w = self.world
        book = self.book
        first = self.days[0].bars
        w.list_securities(self.codes, {c for c in self.codes if c in first and first[c].st})
        if book.senior_fen:
            w.invest("investor-senior", True, book.senior_fen)
        w.invest("investor-junior", False, book.junior_fen)
        w.close_epoch()
        w.fund_broker(book.pool_fen)
        if book.insurance_seed_fen:
            w.mint("operator", book.insurance_seed_fen)
            ins = self.chain.address_of("insurance")
            self.chain.send("CashToken", "transfer", ins, book.insurance_seed_fen,
                            actor="operator")  # fmt: skip
            self.chain.send("InsuranceFund", "credit", book.insurance_seed_fen, 0,
                            actor="operator")  # fmt: skip
        for spec in self.plan:
            who = w.open_borrower(spec.name, spec.tier, spec.margin_fen, spec.reserve_fen)
            self.monitor.add_account(who, spec.tier)
            self.borrowers[spec.name] = spec.tier
            self.names[who] = spec.name
            self.specs[who] = spec

    def build_portfolios(self) -> None:
        """Each borrower buys its stocks at the setup day's first price (+1% limit) up to
        its planned gross exposure, split evenly. The 40% single-security limit is measured
        against assets that grow as financing is drawn, so the buys come in steps: each
        step buys, for the stock furthest from its target, the most the engine's pre-trade
        checks allow (`BuyPlanner` models them; the engine re-checks every order). The
        borrowers take turns so the platform's exposure limit is shared."""
        day = self.setup
        self._report = None
        self.session.open(day, setup=True)
        prices = {c: intraday_ticks(day.bars[c], self.cfg.ticks_per_day)[0].price_fen
                  for c in self.codes}  # fmt: skip
        limits = {c: _limit_price(prices[c], day.bars[c]) for c in self.codes}
        haircuts = {c: HAIRCUT_BPS[Security.parse(c).board] for c in self.codes}
        platform = dict.fromkeys(self.codes, 0)
        pool = int(self.chain.call("TranchePool", "total_assets_fen"))
        cap = pool * MAX_PLATFORM_EXPOSURE_BPS // 10_000 * 99 // 100  # a little slack
        # the liquidity cap: the setup session publishes no regime (it would refuse the
        # book's financing), but the 20-day figures of the closes before it go on chain, so
        # the chain caps the setup's financed buys and the planner keeps every buy under it
        before = [d.date for d in self.history if d.date < day.date]
        if before:
            publish_liquidity(self.chain, self.history, before[-1], self.codes)
        liq = {h.code: h.cap_fen for h in liquidity_headroom(self.chain, self.codes)
               if h.cap_fen is not None}  # fmt: skip
        planners = [
            BuyPlanner(spec, prices, limits, haircuts, TIERS[spec.tier], platform, cap, liq)
            for spec in self.specs.values()
        ]
        while True:
            progressed = False
            for bp in planners:
                step = bp.next_buy()
                if step is None:
                    continue
                code, qty = step
                placed = self._buy(bp.spec.name, code, qty, limits[code])
                bp.bought(code, placed)
                progressed = True
            if not progressed:
                break
        self.broker.poll()
        self.session.close(EpochClose.DUE)
        self.keeper.mark_references()  # NAV stop: each account's reference at the setup close
        for who in self.names:
            self.initial[who] = self._positions(who)
            self.initial_debt[who] = int(self.chain.call(ENGINE, "debt_of", who))
        self.setup_utilisation_bps = int(self.chain.call("TranchePool", "utilisation_bps"))

    def _held(self, who: str) -> set[int]:
        """On-chain codes of the securities the engine lists for `who` (held or being bought):
        the engine adds a code before any buy and drops it only once position and pending buy
        are both zero, so every non-zero position is among them."""
        return {int(c) for c in self.chain.call(ENGINE, "codes_of", who)}

    def _positions(self, who: str) -> dict[str, int]:
        out = {}
        held = self._held(who)
        for code in self.codes:
            chain_code = code_to_chain(code)
            if chain_code not in held:
                continue
            q = int(self.chain.call(ENGINE, "positions", who, chain_code))
            if q:
                out[code] = q
        return out

    def _buy(self, name: str, code: str, qty: int, limit: int) -> int:
        """Request the buy; a refusal the planner did not foresee (e.g. the platform's
        exposure limit) is retried at half the size. Returns the quantity placed."""
        while qty > 0:
            try:
                self.chain.send(ORDERBOOK, "request_buy", code_to_chain(code), qty, limit,
                                actor=name)  # fmt: skip
                return qty
            except ContractRevert:
                qty = qty // 2 // LOT * LOT
        return 0

    # ── the days: observed (the loop is risk/session.py's) ─────────────────────────────

    def on_fills(self, day: TradingDay, fills: list[Fill]) -> None:
        """Every fill with its order and the day's bar, for the market-rule invariants."""
        for f in fills:
            self.all_fills.append((day.date, f, self.exchange.order(f.order_id), day.bars[f.code]))

    def on_expired(self, day: TradingDay, expired: list[Order]) -> None:
        """Liquidation sells that expired unfilled behind a limit-down seal."""
        self._note_liquidation_orders()
        report = self._report
        if report is None:
            return
        for o in expired:
            bar = day.bars[o.code]
            if o.side is Side.SELL and int(o.order_id[1:]) in self.liq_orders and bar.sealed_down:
                report.orders_waiting_behind_seals += 1
                report.shares_waiting_behind_seals += o.remaining

    def _note_liquidation_orders(self) -> None:
        for e in self.chain.events(ORDERBOOK, "LiquidationOrder", since=self._liq_cursor):
            self.liq_orders.add(int(e.args["order_id"]))
            self._liq_cursor = e.seq

    # ── restart (tests: kill the broker and keeper mid-replay, start new ones) ────────────

    def restart_services(self, *, reopen_chain: bool = False) -> None:
        """New broker and keeper, from their journals and the chain alone (the monitor and
        its event cursor live on, as a separate process would). `reopen_chain`: the chain
        process restarts too and reloads its state from the data directory."""
        self.broker.close()
        if reopen_chain:
            self.chain.close()
            self.chain = self._open_chain()
            self.world.chain = self.feeder.port = self.sync.chain = self.chain
            self.corporate.chain = self.session.chain = self.chain
        self.session.broker = SimulatedBroker(self.chain, self.exchange, self.work / "broker.db")
        self.session.keeper = Keeper(self.chain, self.monitor, journal=self.work / "keeper.json")

    def resume(self) -> None:
        """Finish the interrupted step (its fills are settled by the new broker's recovery)
        and the rest of the session."""
        self.session.finish_step()
        self.session.close(EpochClose.DUE)

    def run_day(self, day: TradingDay) -> DayReport:
        report, since = self.begin_day(day)
        self.session.close(EpochClose.DUE)
        return self.finish_day(report, since)

    def begin_day(self, day: TradingDay) -> tuple[DayReport, int]:
        """Day open (`TradingSession.open`: halts, the oracle's day, the exchange's session,
        the last close's regime and liquidity, corporate actions, overnight orders, interest,
        the first tick). Returns the day's report and the event cursor it counts from; the
        day runs on with `self.session.close`."""
        report = DayReport(day.date.isoformat())
        self._report = report
        applied = self.session.open(day).corporate
        if applied is not None:
            report.positions_adjusted = applied.positions_adjusted
            report.dividends_net_fen = applied.net_cash_fen
        return report, self._latest_event()

    def _latest_event(self) -> int:
        """The chain's latest event seq (events are read from the last one seen on: seqs are
        increasing but not contiguous on a node)."""
        new = self.chain.events(since=self._events_seen)
        if new:
            self._events_seen = new[-1].seq
        return self._events_seen

    def finish_day(self, report: DayReport, since: int) -> DayReport:
        self._count_events(report, since)
        self._ratios(report)
        return report

    def _count_events(self, report: DayReport, since: int) -> None:
        losses: Counter[str] = Counter()
        for e in self.chain.events(since=since):
            self._events_seen = max(self._events_seen, e.seq)
            a = e.args
            if e.event == "MarginWarning":
                report.warnings += 1
            elif e.event == "ToppedUp":
                report.top_ups += 1
            elif e.event == "LiquidationStarted":
                report.liquidation_rounds += 1
                if str(a["account"]) not in self._in_liquidation:
                    self._in_liquidation.add(str(a["account"]))
                    report.liquidations_started += 1
            elif e.event == "LiquidationEnded":
                report.liquidations_completed += 1
                who = str(a["account"])
                self._in_liquidation.discard(who)
                losses["borrower_reserve"] += int(a["reserve_used_fen"])
                self._liquidation_ended(who, int(a["shortfall_fen"]),
                                        int(a["insurance_paid_fen"]))  # fmt: skip
            elif e.event == "PenaltyCharged":
                losses["penalty"] += int(a["amount_fen"])
                self._penalty_open[str(a["account"])] += int(a["amount_fen"])
            elif e.event == "ShortfallAbsorbed":
                self._absorbed = {k: int(a[k]) for k in ("insurance_fen", "junior_fen",
                                                         "senior_fen")}  # fmt: skip
                losses["insurance"] += int(a["insurance_fen"])
                losses["junior"] += int(a["junior_fen"])
                losses["senior"] += int(a["senior_fen"])
            elif e.event == "Filled" and int(a["order_id"]) in self.liq_orders:
                report.liquidation_fills += 1
        report.losses_fen = {k: losses.get(k, 0) for k in BOOKED}

    def _liquidation_ended(self, who: str, shortfall_fen: int, paid_fen: int) -> None:
        """A shortfall is booked by the pool (ShortfallAbsorbed, same transaction, earlier)
        and then reported by the engine: pair them into one write-off."""
        penalty = self._penalty_open.pop(who, 0)
        if shortfall_fen == 0:
            return
        parts = self._absorbed or {"insurance_fen": 0, "junior_fen": 0, "senior_fen": 0}
        self._absorbed = None
        from_penalty = min(paid_fen, penalty)
        self.write_offs[who].append(
            WriteOff(
                shortfall_fen,
                from_penalty,
                parts["insurance_fen"] - from_penalty,
                parts["junior_fen"],
                parts["senior_fen"],
            )
        )

    def _ratios(self, report: DayReport) -> None:
        res = self.monitor.tick()
        n = self.monitor.n_accounts
        debt = self.monitor.debt_fen[:n] > 0
        r = res.ratio_bps[debt]
        if r.size:
            p1, p5, p50 = np.percentile(r, [1, 5, 50])
            report.ratio_p01_bps, report.ratio_p05_bps, report.ratio_p50_bps = (
                int(p1), int(p5), int(p50),
            )  # fmt: skip
        report.accounts_below_liquidation = int(
            np.count_nonzero(res.state[:n] >= AccountState.LIQUIDATION_DUE)
        )

    # ── the end ─────────────────────────────────────────────────────────────────────────

    def check(self, report: ReplayReport) -> None:
        c = self.chain
        inv: dict[str, bool] = {}
        # 8: certificate supply per security = what the engine attributes to accounts
        #    = the broker's custody from settled fills
        #    (the engine's positions are read for the codes it lists per account: a position
        #    missing from that list would show here as supply > engine, so this is stricter)
        ok8 = True
        held = {who: self._held(who) for who in self.names}
        for code in self.codes:
            chain_code = code_to_chain(code)
            supply = int(c.call("ShareCertificates", "total_supply", chain_code))
            attributed = sum(
                int(c.call(ENGINE, "positions", who, chain_code))
                for who in self.names
                if chain_code in held[who]
            )
            custody = sum(
                self.broker.positions(who).get(code, 0)
                + self.corporate.shares_added(who).get(code, 0)  # bonus/transfer shares
                for who in self.names
            )
            if not supply == attributed == custody:
                ok8 = False
                report.violations.append(
                    f"{code}: supply {supply}, engine {attributed}, broker {custody}"
                )
        inv["certificates_equal_broker_custody"] = ok8
        # market rules: every fill, liquidation fills included
        bad = []
        for day, f, o, bar in self.all_fills:
            problems = fill_obeys_rules(f, bar, o, self.exchange_cfg)
            if problems:
                bad.append(f"{day} {f.fill_ref}: {', '.join(problems)}")
        inv["no_fill_broke_a_market_rule"] = not bad
        report.violations.extend(bad)
        # T+1: nothing bought on a day was sold that day
        bought: dict[tuple[dt.date, str, str], int] = defaultdict(int)
        sold: dict[tuple[dt.date, str, str], int] = defaultdict(int)
        for day, f, _, _ in self.all_fills:
            (bought if f.side is Side.BUY else sold)[(day, f.account, f.code)] += f.quantity
        held_before: dict[tuple[str, str], int] = defaultdict(int)
        ok_t1 = True
        for day in sorted({d for d, *_ in self.all_fills}):
            for (d, acct, code), q in sold.items():
                if d == day and q > held_before[(acct, code)]:
                    ok_t1 = False
                    report.violations.append(
                        f"{day} {acct} sold {q} {code} held {held_before[(acct, code)]}"
                    )
            for (d, acct, code), q in bought.items():
                if d == day:
                    held_before[(acct, code)] += q
            for (d, acct, code), q in sold.items():
                if d == day:
                    held_before[(acct, code)] -= q
        inv["t_plus_1_respected"] = ok_t1
        # every settlement the broker tried landed (a refusal is a reconciliation break)
        refused = self.broker.refused()
        inv["every_fill_settled"] = not refused
        report.violations.extend(f"fill {r} refused: {why}" for r, why in refused)
        # every shortfall went down the waterfall in full
        ok_w = True
        for e in c.events("TranchePool", "ShortfallAbsorbed"):
            a = e.args
            if int(a["principal_fen"]) != int(a["insurance_fen"]) + int(a["junior_fen"]) + int(
                a["senior_fen"]
            ):
                ok_w = False
                report.violations.append(f"shortfall not fully attributed: {a}")
        inv["every_loss_attributed_to_a_layer"] = ok_w
        # 9: interest indices never decrease (checked at the end against the start: RAY)
        inv["debt_indices_non_decreasing"] = all(
            read_index(c, t).value_ray >= 10**27 for t in TIERS
        )
        # no account left locked with open orders after the last close
        inv["no_liquidation_order_left_open"] = all(
            read_account(c, who).open_liq == 0 for who in self.names
        )
        report.invariants.update(inv)

    def run(self) -> ReplayReport:
        try:
            self.start()
            return self.finish([self.run_day(d) for d in self.days])
        finally:
            self.close()

    def close(self) -> None:
        """Release the broker's and the corporate-action agent's journals and the chain (its
        writer lock), and remove a temporary work dir; idempotent."""
        try:
            self.broker.close()
            self.corporate.close()
            if self._temp_work and isinstance(self.chain, EmbeddedChain):
                self.chain.close(snapshot=False)  # the directory goes next: nothing to reload
            else:
                self.chain.close()
        finally:
            if self._gc_was_enabled:
                gc.enable()
                self._gc_was_enabled = False
            if self._temp_work:
                shutil.rmtree(self.work, ignore_errors=True)

    def start(self) -> None:
        """Open the accounts and buy the portfolios. From here to `close` Python's cyclic
        garbage collector is off: a replay makes almost no cyclic garbage (≈2,000 objects in a
        300-borrower week), while every full collection walks all live objects, the chain's
        growing state among them (≈3% of that week's CPU). `close` turns it back on."""
        if gc.isenabled():
            gc.disable()
            self._gc_was_enabled = True
        self.fund_and_open()
        self.build_portfolios()

    def finish(self, days: list[DayReport]) -> ReplayReport:
        report = ReplayReport(self.setup.date.isoformat(), self.codes, self.borrowers, days)
        s_nav, j_nav = self.chain.call("TranchePool", "navs")
        report.senior_nav_fen, report.junior_nav_fen = int(s_nav), int(j_nav)
        report.insurance_fen = int(
            self.chain.call("CashToken", "balanceOf", self.chain.address_of("insurance"))
        )
        self._account_for(report, days)
        report.keeper = {
            "calls": dict(self.keeper.stats.calls),
            "moved_back": dict(self.keeper.stats.moved_back),
            "refused": dict(self.keeper.stats.refused),
            "deferred": self.keeper.stats.deferred,
        }
        report.fills = len(self.all_fills)
        stats = self.feeder.stats()
        report.oracle = {
            "reporter3": self.cfg.faulty_reporter.value,
            "reports_landed": stats.reports_sent,
            "batches_refused": stats.batches_refused,
            "reasons": stats.reasons,
        }
        self.check(report)
        self.close()
        return report

    # ── honest accounting (risk/accounting.py) ───────────────────────────────────────────

    def _borrower_end(self, who: str) -> BorrowerEnd:
        spec = self.specs[who]
        a = read_account(self.chain, who)
        return BorrowerEnd(
            name=spec.name,
            tier=spec.tier,
            margin_deposit_fen=spec.margin_fen,
            reserve_deposit_fen=spec.reserve_fen,
            cash_fen=a.cash_fen + a.pending_fen,
            reserve_fen=a.reserve_fen,
            debt_fen=int(self.chain.call(ENGINE, "debt_of", who)),
            principal_fen=a.principal_fen,
            positions=self._positions(who),
            liquidating=a.locked,
            penalty_open_fen=a.penalty_fen,
            write_offs=tuple(self.write_offs.get(who, [])),
        )

    def _last_bars(self) -> dict[str, Bar]:
        last: dict[str, Bar] = {}
        for day in [self.setup, *self.days]:
            for code in self.codes:
                if code in day.bars:
                    last[code] = day.bars[code]
        return last

    def _account_for(self, report: ReplayReport, days: list[DayReport]) -> None:
        c = self.chain
        ends = [self._borrower_end(who) for who in self.names]
        marks = end_marks(self._last_bars())
        acct = settle(
            ends,
            marks,
            insurance_fen=int(c.call("InsuranceFund", "balance_fen")),
            junior_claim_fen=int(c.call("TranchePool", "junior_claim_fen")),
        )
        report.accounting = acct.as_dict()
        report.losses_fen = dict(acct.layers_fen)
        report.invariants["loss_attribution_sums_to_total"] = acct.attribution_ok
        report.violations.extend(acct.problems)
        report.tiers = tier_table(acct.borrowers)
        umb, umb_max = self._umbrellas(), self._umbrellas(tier_max=True)
        for tier, row in report.tiers.items():
            rs = [u for who, u in umb.items() if self.specs[who].tier == tier]
            losses = np.array([u.junior_loss_pct for u in rs])
            row["umbrella_loss_pct_median"] = round(float(np.median(losses)), 2)
            row["umbrella_loss_pct_p90"] = round(float(np.percentile(losses, 90)), 2)
            row["umbrella_leverage_median"] = round(float(np.median([u.leverage for u in rs])), 2)
            row["umbrella_stopped"] = sum(u.stopped_on is not None for u in rs)
            at_max = [
                u.junior_loss_pct for who, u in umb_max.items() if self.specs[who].tier == tier
            ]
            row["umbrella_tier_max_leverage"] = TIERS[tier].max_leverage
            row["umbrella_tier_max_loss_pct_median"] = round(float(np.median(at_max)), 2)
        for r in report.accounting["borrowers"]:
            who = c.address_of(r["name"])
            r["umbrella_loss_pct"] = umb[who].junior_loss_pct
            r["umbrella_tier_max_loss_pct"] = umb_max[who].junior_loss_pct
        accrued = sum(max(e.debt_fen - e.principal_fen, 0) for e in ends)
        rates = c.call("TranchePool", "rates")
        pending = int(c.call("TranchePool", "interest_pending_fen"))
        report.tranches = [
            dataclasses.asdict(t)
            for t in tranche_returns(
                senior_invested_fen=self.book.senior_fen,
                junior_invested_fen=self.book.junior_fen,
                senior_nav_fen=report.senior_nav_fen,
                junior_nav_fen=report.junior_nav_fen,
                accrued_interest_fen=accrued + pending,
                senior_apr_bps=int(rates[0]),
                premium_bps=int(rates[1]),
                fee_bps=int(rates[2]),
                start=self.setup.date,
                end=self.days[-1].date,
            )
        ]
        lent = sum(self.initial_debt.values())
        report.book = {
            "senior_fen": self.book.senior_fen,
            "junior_fen": self.book.junior_fen,
            "insurance_seed_fen": self.book.insurance_seed_fen,
            "target_utilisation_bps": self.book.target_utilisation_bps,
            "utilisation_after_setup_bps": self.setup_utilisation_bps,
            "debt_after_setup_fen": lent,
            "borrowers_per_tier": {
                str(t): sum(1 for s in self.specs.values() if s.tier == t) for t in sorted(TIERS)
            },
            "stocks": len(self.codes),
        }
        params = RegimeParams()
        history = regime_history(self.history, params)
        at = {p.date.isoformat(): p.regime.value for p in history}
        for d in days:
            d.regime = at.get(d.date, "")
        report.regime = {
            "params": params.as_dict(),
            "history": [o.as_dict() for o in history if o.date >= self.setup.date],
        }
        report.liquidity = liquidity_caps(
            self.history, self.setup.date, self.codes,
            {who: self.initial[who] for who in self.names},
        )  # fmt: skip

    def _setup_costs(self) -> dict[str, dict[str, int]]:
        """Per borrower and security, the average price its setup buys filled at (fen)."""
        amount: dict[tuple[str, str], int] = defaultdict(int)
        qty: dict[tuple[str, str], int] = defaultdict(int)
        for day, f, _, _ in self.all_fills:
            if day == self.setup.date and f.side is Side.BUY:
                amount[(f.account, f.code)] += f.amount_fen
                qty[(f.account, f.code)] += f.quantity
        by_name = {name: who for who, name in self.names.items()}
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for (acct, code), q in qty.items():
            out[by_name.get(acct, acct)][code] = amount[(acct, code)] // q
        return out

    def _umbrellas(self, *, tier_max: bool = False) -> dict[str, Any]:
        """Per borrower, an umbrella trust on its initial portfolio with the same capital and
        loan (or, `tier_max`, at the tier's maximum leverage, as the 2015 comparison), bought
        at the prices the borrower paid on the setup day: its window starts where the
        borrower's does (the setup close is its first mark and may already stop it)."""
        closes = {c: self.setup.bars[c].close for c in self.codes}
        costs = self._setup_costs()
        out = {}
        for who in self.names:
            held = self.initial[who]
            paid = {c: costs.get(who, {}).get(c, closes[c]) for c in held}
            value = sum(q * paid[c] for c, q in held.items())
            weights = {c: q * paid[c] / value for c, q in held.items()} if value else {}
            # same capital (margin and reserve) and the same loan as the borrower
            spec = self.specs[who]
            leverage = self.initial_debt[who] / (spec.margin_fen + spec.reserve_fen)
            if tier_max:
                leverage = float(TIERS[spec.tier].max_leverage)
            out[who] = umbrella_trust(weights, {**closes, **paid}, leverage,
                                      [self.setup, *self.days])  # fmt: skip
        return out


def run_replay(cfg: ReplayConfig) -> ReplayReport:
    return Replay(cfg).run()
