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

import datetime as dt
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crowdleverage.broker.corporate_actions import CorporateActionAgent
from crowdleverage.broker.simulated import SimulatedBroker
from crowdleverage.chain.codes import code_to_chain
from crowdleverage.chain.margin import ORDERBOOK
from crowdleverage.domain.errors import ContractRevert, InvalidInput
from crowdleverage.domain.params import HAIRCUT_BPS, TIERS
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
from crowdleverage.risk.keeper import ChainSync, Keeper
from crowdleverage.risk.monitor import AccountState, RiskMonitor
from crowdleverage.risk.world import ENGINE, World, open_financing_chain

YUAN = 100
WAN = 10_000 * YUAN


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    data: Path
    start: dt.date
    end: dt.date
    seed: int = 20160104
    borrowers_per_tier: int = 6
    stocks: int = 24
    ticks_per_day: int = 8
    senior_fen: int = 20_000 * WAN  # 2亿元
    junior_fen: int = 5_000 * WAN  # 5000万元
    work_dir: Path | None = None  # chain, broker and keeper journals; a temporary dir when None
    faulty_reporter: ReporterMode = ReporterMode.HONEST  # the third reporter's behaviour
    actions: Path | None = None  # corporate actions applied at ex-date opens (unadjusted data)


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
    losses_fen: dict[str, int] = field(default_factory=dict)


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

    def as_dict(self) -> dict[str, Any]:
        return {
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


LAYERS = ("borrower_margin", "borrower_reserve", "penalty", "insurance", "junior", "senior")


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


def _borrower(tier: int, i: int) -> str:
    return f"borrower-t{tier}-{i + 1}"


class Replay:
    def __init__(self, cfg: ReplayConfig) -> None:
        if cfg.end < cfg.start:
            raise InvalidInput(f"--to {cfg.end} is before --from {cfg.start}")
        self.cfg = cfg
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
        self.codes = _choose_stocks(self.setup, self.days[0], cfg.stocks, self.rng)
        genesis = dt.datetime.combine(self.setup.date, dt.time(9, 0), SHANGHAI)
        work = cfg.work_dir or Path(tempfile.mkdtemp(prefix="crowdlev-replay-"))
        self.work = work
        self.genesis_time_s = int(genesis.timestamp()) - 2 * 86_400
        self.chain = open_financing_chain(work, self.actors(), genesis_time_s=self.genesis_time_s)
        self.world = World(self.chain)
        self.exchange_cfg = ExchangeConfig()
        self.exchange = SimulatedExchange(self.exchange_cfg)
        self.broker = SimulatedBroker(self.chain, self.exchange, work / "broker.db")
        self.corporate = CorporateActionAgent(self.chain, actions, work / "corporate.db")
        reporters = [
            Reporter("reporter1"),
            Reporter("reporter2"),
            Reporter("reporter3", cfg.faulty_reporter, stale_after_tick=1),
        ]
        self.feeder = OracleFeeder(self.chain, reporters, self.codes)
        haircuts = [HAIRCUT_BPS[Security.parse(c).board] for c in self.codes]
        self.monitor = RiskMonitor(self.codes, haircuts, threads=1)
        self.keeper = Keeper(self.chain, self.monitor, journal=work / "keeper.json")
        self.sync = ChainSync(self.chain, self.monitor)
        self.borrowers: dict[str, int] = {}
        self.names: dict[str, str] = {}  # address → actor name
        self.deposits: dict[str, int] = {}  # address → margin + reserve deposited
        self.all_fills: list[tuple[dt.date, Fill, Order, Bar]] = []
        self.liq_orders: set[int] = set()
        self._in_liquidation: set[str] = set()
        self._liq_cursor = 0
        self._session: tuple[TradingDay, dict[str, list[Any]], DayReport | None]
        self._next_step = 0
        self._series: dict[str, list[Any]] = {}

    # ── setup ───────────────────────────────────────────────────────────────────────────

    def actors(self) -> list[str]:
        """The investors and borrowers that send transactions (they need keys)."""
        borrowers = [_borrower(tier, i) for tier in sorted(TIERS)
                     for i in range(self.cfg.borrowers_per_tier)]  # fmt: skip
        return ["investor-senior", "investor-junior", *borrowers]

    def fund_and_open(self) -> None:
        w = self.world
        w.list_securities(self.codes)
        w.invest("investor-senior", True, self.cfg.senior_fen)
        w.invest("investor-junior", False, self.cfg.junior_fen)
        w.close_epoch()
        w.fund_broker(self.cfg.senior_fen)
        for tier in sorted(TIERS):
            for i in range(self.cfg.borrowers_per_tier):
                name = _borrower(tier, i)
                margin = int(self.rng.integers(20, 101)) * WAN
                reserve = margin // 10 if i % 2 == 0 else 0
                who = w.open_borrower(name, tier, margin, reserve)
                self.monitor.add_account(who, tier)
                self.borrowers[name] = tier
                self.names[who] = name
                self.deposits[who] = margin + reserve

    def build_portfolios(self, rounds: int = 4) -> None:
        """Each borrower buys 3–6 stocks at the setup day's first price (+1% limit), sized to
        use most of the tier's leverage, in rounds (the 40% single-security limit is measured
        against assets that grow as financing is drawn)."""
        day = self.setup
        self.feeder.open_day(day)
        self.exchange.open_day(day)
        series = {c: intraday_ticks(day.bars[c], self.cfg.ticks_per_day) for c in self.codes}
        self.feeder.on_ticks(s[0] for s in series.values())
        plans: list[tuple[str, list[str], int]] = []
        for who, name in self.names.items():
            tier = TIERS[self.borrowers[name]]
            margin = self.world.account(who)["cash_fen"]
            k = int(self.rng.integers(3, 7))
            picks = sorted(self.rng.choice(len(self.codes), size=k, replace=False).tolist())
            gross = margin * (1 + tier.max_leverage) * 85 // 100
            plans.append((name, [self.codes[i] for i in picks], gross // k // rounds))
        for _ in range(rounds):
            for name, codes, each in plans:
                for code in codes:
                    self._buy(name, code, each, series[code][0].price_fen, day.bars[code])
        self.broker.poll()
        self._run_session(day, series, report=None)

    def _buy(self, name: str, code: str, value_fen: int, price_fen: int, bar: Bar) -> None:
        up = bar.band.limit_up_fen if bar.band and bar.band.limit_up_fen else price_fen
        limit = min(price_fen * 101 // 100, up)
        qty = value_fen // limit // LOT * LOT
        while qty > 0:
            try:
                self.chain.send(ORDERBOOK, "request_buy", code_to_chain(code), qty, limit,
                                actor=name)  # fmt: skip
                return
            except ContractRevert:
                qty = qty // 2 // LOT * LOT  # a pre-trade check refused: try half

    # ── the days ────────────────────────────────────────────────────────────────────────

    def _run_session(
        self, day: TradingDay, series: dict[str, list[Any]], report: DayReport | None
    ) -> None:
        self._session = (day, series, report)
        self._next_step = 0
        self._continue_session()

    def _continue_session(self) -> None:
        """The session's remaining steps (all of them, or the rest after a restart)."""
        day, series, report = self._session
        live = {c: s for c, s in series.items() if s}
        for step in range(self._next_step, self.cfg.ticks_per_day):
            ticks = [s[step] for s in live.values()]
            if step > 0:  # the first tick was reported before the session's orders
                self.feeder.on_ticks(ticks)
            cols = self.monitor.cols(t.code for t in ticks)
            self.monitor.update_prices(cols, [t.price_fen for t in ticks])
            if report is not None:
                self.sync.sync()
                res = self.monitor.tick()
                self.keeper.on_tick(res, day.date.isoformat())
                if step == 0:
                    self.keeper.follow_up(self._liquidating(), new_session=True)
            self.broker.poll()
            fills = self.exchange.on_ticks(ticks)
            for f in fills:
                self.all_fills.append(
                    (day.date, f, self.exchange.order(f.order_id), day.bars[f.code])
                )
            self._next_step = step + 1  # the exchange has matched this step: never again
            self.broker.on_fills(fills)
            self._after_fills()
        self._close_session()

    def _after_fills(self) -> None:
        if self._session[2] is not None:
            self.sync.sync()
            self.keeper.follow_up(self._liquidating(), new_session=False)

    def _close_session(self) -> None:
        day, _, report = self._session
        expired = self.exchange.close_day()
        self._note_liquidation_orders()
        if report is not None:
            for o in expired:
                bar = day.bars[o.code]
                if (
                    o.side is Side.SELL
                    and int(o.order_id[1:]) in self.liq_orders
                    and (bar.sealed_down)
                ):
                    report.orders_waiting_behind_seals += 1
                    report.shares_waiting_behind_seals += o.remaining
        self.broker.end_day()
        self.sync.sync()
        if report is not None:
            self.keeper.follow_up(self._liquidating(), new_session=False)
        started = int(self.chain.call("TranchePool", "epoch_started_at"))
        if self.chain.block_time() >= started + int(self.chain.call("TranchePool", "epoch_s")):
            self.chain.send("TranchePool", "close_epoch", actor="keeper")

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
            self.chain = open_financing_chain(
                self.work, self.actors(), genesis_time_s=self.genesis_time_s
            )
            self.world.chain = self.feeder.port = self.sync.chain = self.chain
            self.corporate.chain = self.chain
        self.broker = SimulatedBroker(self.chain, self.exchange, self.work / "broker.db")
        self.keeper = Keeper(self.chain, self.monitor, journal=self.work / "keeper.json")

    def resume(self) -> None:
        """Finish the interrupted step (its fills are settled by the new broker's recovery)
        and the rest of the session."""
        self._after_fills()
        self._continue_session()

    def _liquidating(self) -> list[str]:
        n = self.monitor.n_accounts
        rows = np.flatnonzero(self.monitor.liquidating[:n])
        return [self.monitor.account_id(int(r)) for r in rows]

    def run_day(self, day: TradingDay) -> DayReport:
        report, since = self.begin_day(day)
        self._run_session(day, self._series, report)
        return self.finish_day(report, since)

    def begin_day(self, day: TradingDay) -> tuple[DayReport, int]:
        """Day open: halts into the monitor, the oracle's day, the exchange's session, the
        first tick reported. Returns the day's report and the event cursor it counts from."""
        report = DayReport(day.date.isoformat())
        for code in self.codes:
            bar = day.bars.get(code)
            self.monitor.set_halted(code, bar is None or bar.halted)
        self.feeder.open_day(day)
        self.exchange.open_day(day)
        applied = self.corporate.open_day(day.date, self.names)  # before any order or tick
        report.positions_adjusted = applied.positions_adjusted
        report.dividends_net_fen = applied.net_cash_fen
        self.broker.place_received()
        self.sync.sync()
        self.sync.refresh_all()  # interest accrued overnight on every debt
        series = {
            c: intraday_ticks(day.bars[c], self.cfg.ticks_per_day) if c in day.bars else []
            for c in self.codes
        }
        first = [s[0] for s in series.values() if s]
        self.feeder.on_ticks(first)
        self._series = series
        return report, len(self.chain.events())

    def finish_day(self, report: DayReport, since: int) -> DayReport:
        self._count_events(report, since)
        self._ratios(report)
        return report

    def _count_events(self, report: DayReport, since: int) -> None:
        losses: Counter[str] = Counter()
        for e in self.chain.events(since=since):
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
                self._in_liquidation.discard(str(a["account"]))
                losses["borrower_reserve"] += int(a["reserve_used_fen"])
                if int(a["shortfall_fen"]) > 0:
                    who = str(a["account"])
                    losses["borrower_margin"] += self.deposits.get(who, 0)
            elif e.event == "PenaltyCharged":
                losses["penalty"] += int(a["amount_fen"])
            elif e.event == "ShortfallAbsorbed":
                losses["insurance"] += int(a["insurance_fen"])
                losses["junior"] += int(a["junior_fen"])
                losses["senior"] += int(a["senior_fen"])
            elif e.event == "Filled" and int(a["order_id"]) in self.liq_orders:
                report.liquidation_fills += 1
        report.losses_fen = {k: losses.get(k, 0) for k in LAYERS}

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
        ok8 = True
        for code in self.codes:
            chain_code = code_to_chain(code)
            supply = int(c.call("ShareCertificates", "total_supply", chain_code))
            attributed = sum(
                int(c.call(ENGINE, "positions", who, chain_code)) for who in self.names
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
            int(c.call(ENGINE, "indices", t)[0]) >= 10**27 for t in TIERS
        )
        # no account left locked with open orders after the last close
        inv["no_liquidation_order_left_open"] = all(
            int(c.call(ENGINE, "accounts", who)[7]) == 0 for who in self.names
        )
        report.invariants = inv

    def run(self) -> ReplayReport:
        try:
            self.start()
            return self.finish([self.run_day(d) for d in self.days])
        finally:
            self.close()

    def close(self) -> None:
        """Release the broker's journal and the chain (its writer lock); idempotent."""
        self.broker.close()
        self.corporate.close()
        self.chain.close()

    def start(self) -> None:
        self.fund_and_open()
        self.build_portfolios()

    def finish(self, days: list[DayReport]) -> ReplayReport:
        report = ReplayReport(self.setup.date.isoformat(), self.codes, self.borrowers, days)
        s_nav, j_nav = self.chain.call("TranchePool", "navs")
        report.senior_nav_fen, report.junior_nav_fen = int(s_nav), int(j_nav)
        report.insurance_fen = int(
            self.chain.call("CashToken", "balanceOf", self.chain.address_of("insurance"))
        )
        totals: Counter[str] = Counter()
        for d in days:
            totals.update(d.losses_fen)
        report.losses_fen = {k: totals.get(k, 0) for k in LAYERS}
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


def run_replay(cfg: ReplayConfig) -> ReplayReport:
    return Replay(cfg).run()
