"""Corporate actions applied by the broker on the real contracts — on the embedded chain and on
anvil — with real unadjusted 2016 bars and the shipped action file:

- 000420, 10 transfer shares per 10 on 2016-10-12: the position doubles at the ex-date open,
  assets and the monitor's ratio do not jump at the reference price;
- 000027, 2.00 元 per 10 before tax on 2016-06-28 (paid the same day): the borrower's equity is
  unchanged across the ex-date once the cash arrives (held over a year: 0% tax since
  2015-09-08), or lower by exactly the tax withheld (held under a month: 20%);
- orders spanning the ex-date: requested after the record date's close and placed at the
  ex-date open, a sell priced before the ex-date is refused by the new band and releases its
  shares; a buy fills at ex-date prices and earns no dividend;
- applying the same day again changes nothing (one-use references).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from anvil_node import anvil

from crowdleverage.broker.corporate_actions import CorporateActionAgent
from crowdleverage.broker.simulated import SimulatedBroker
from crowdleverage.chain.codes import code_to_chain
from crowdleverage.chain.deploy import FINANCING_ACTORS, deploy_financing, deploy_system
from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.margin import ORDERBOOK
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.rpc import RpcChain
from crowdleverage.config import SHIPPED_DATA
from crowdleverage.domain.params import HAIRCUT_BPS
from crowdleverage.domain.security import Security
from crowdleverage.market.bars import read_bars
from crowdleverage.market.calendar import SHANGHAI
from crowdleverage.market.corporate_actions import (
    CorporateAction,
    Lot,
    parse_actions,
    read_actions,
)
from crowdleverage.market.exchange import SimulatedExchange
from crowdleverage.market.replay import Tick, TradingDay, intraday_ticks, trading_days
from crowdleverage.oracle.feeder import OracleFeeder, Reporter
from crowdleverage.risk.keeper import ChainSync
from crowdleverage.risk.monitor import RiskMonitor
from crowdleverage.risk.world import ENGINE, SESSION_ORACLE, World

DATA = SHIPPED_DATA / "market" / "ashare_unadjusted_2016-04_2016-10.csv"
ACTIONS = SHIPPED_DATA / "market" / "corporate_actions.csv"
CODES = ["000001", "000027", "000056", "000333", "000420"]  # trading on every day used
SEED = 20160104
YI = 100_000_000 * 100
MARGIN_FEN = 20_000_000  # 20万元 each
BORROWERS = ("b-long", "b-short", "b-bonus")
ACTORS = ("investor-senior", "investor-junior", *BORROWERS)
GENESIS = int(dt.datetime(2016, 6, 1, 9, 0, tzinfo=SHANGHAI).timestamp())
LONG_HELD = dt.date(2015, 1, 5)  # b-long's shares count as bought over a year before


@pytest.fixture(scope="module")
def days() -> dict[dt.date, TradingDay]:
    bars = read_bars(DATA)
    return {d.date: d for d in trading_days(bars) if d.date >= dt.date(2016, 6, 27)}


@pytest.fixture(scope="module")
def actions() -> dict[str, CorporateAction]:
    return {a.code: a for a in read_actions(ACTIONS) if a.code in CODES}


def _deploy(chain: ChainPort, data_dir: Path) -> ChainPort:
    deploy_system(chain, data_dir, SESSION_ORACLE)
    deploy_financing(chain, data_dir)
    return chain


@pytest.fixture(scope="module", params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def chain(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChainPort]:
    keys = ActorKeys.dev(SEED, dict.fromkeys([*FINANCING_ACTORS, *ACTORS]))
    work = tmp_path_factory.mktemp(f"ca-{request.param}")
    if request.param == "embedded":
        port = EmbeddedChain(work, keys, genesis_time_s=GENESIS)
        yield _deploy(port, work)
        port.close()
        return
    anvil_bin = request.getfixturevalue("anvil_bin")
    with anvil(anvil_bin, "--timestamp", str(GENESIS)) as url:
        rpc = RpcChain(url, keys, None, controlled_clock=True)
        rpc.fund([*FINANCING_ACTORS, *ACTORS], 10**21)
        yield _deploy(rpc, work)
        rpc.close()


@dataclass
class Desk:
    """The platform around one chain: oracle feeder, exchange, broker, corporate-action agent,
    risk monitor following the engine's events."""

    chain: ChainPort
    world: World
    feeder: OracleFeeder
    exchange: SimulatedExchange
    broker: SimulatedBroker
    agent: CorporateActionAgent
    monitor: RiskMonitor
    sync: ChainSync
    who: dict[str, str]

    def open(self, day: TradingDay) -> None:
        if self.exchange.day is not None:  # a test stopped mid-session
            self.exchange.close_day()
            self.broker.end_day()
        self.feeder.open_day(day)
        self.exchange.open_day(day)

    def apply(self, day: TradingDay) -> dict[str, object]:
        """Day open, as the replay does it: corporate actions first, then the orders received
        since the last session are placed."""
        report = self.agent.open_day(day.date, self.who.values())
        self.broker.poll()
        return report.as_dict()

    def report(self, prices: dict[str, int], day: TradingDay, minute: int = 0) -> None:
        at = dt.datetime.combine(day.date, dt.time(9, 30), tzinfo=SHANGHAI)
        at += dt.timedelta(minutes=minute)
        self.feeder.on_ticks([Tick(c, at, p, 0) for c, p in prices.items()])
        self.monitor.update_prices(self.monitor.cols(prices), list(prices.values()))

    def buy(self, day: TradingDay, name: str, code: str, value_fen: int) -> None:
        first = intraday_ticks(day.bars[code], 8)[0].price_fen
        limit = first * 101 // 100
        qty = value_fen // limit // 100 * 100
        self.chain.send(ORDERBOOK, "request_buy", code_to_chain(code), qty, limit, actor=name)

    def trade_day(self, day: TradingDay) -> None:
        """The session tick by tick (the first tick reported already), then the close."""
        series = {c: intraday_ticks(day.bars[c], 8) for c in CODES}
        self.broker.poll()
        self.broker.on_fills(self.exchange.on_ticks([s[0] for s in series.values()]))
        for step in range(1, 8):
            ticks = [s[step] for s in series.values()]
            self.feeder.on_ticks(ticks)
            self.broker.poll()
            self.broker.on_fills(self.exchange.on_ticks(ticks))
        self.exchange.close_day()
        self.broker.end_day()

    def account(self, name: str) -> dict[str, int]:
        return self.world.account(self.who[name])

    def equity(self, name: str) -> int:
        a = self.account(name)
        return a["assets_fen"] - a["debt_fen"]

    def position(self, name: str, code: str) -> int:
        return int(self.chain.call(ENGINE, "positions", self.who[name], code_to_chain(code)))

    def monitor_ratio(self, name: str) -> float:
        self.sync.sync()
        return float(self.monitor.tick().ratio_bps[self.monitor.row(self.who[name])])


@pytest.fixture(scope="module")
def desk(chain: ChainPort, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    work = tmp_path_factory.mktemp("desk")
    w = World(chain)
    w.list_securities(CODES)
    w.invest("investor-senior", True, 4 * YI)
    w.invest("investor-junior", False, 1 * YI)
    w.close_epoch()
    w.fund_broker(YI)
    who = {n: w.open_borrower(n, 2, MARGIN_FEN) for n in BORROWERS}

    def lots(account: str, action: CorporateAction, qty: int) -> list[Lot]:
        held = LONG_HELD if account == who["b-long"] else action.record_date
        return [Lot(qty, held)]

    exchange = SimulatedExchange()
    haircuts = [HAIRCUT_BPS[Security.parse(c).board] for c in CODES]
    monitor = RiskMonitor(CODES, haircuts, threads=1)
    for a in who.values():
        monitor.add_account(a, 2)
    d = Desk(
        chain, w, OracleFeeder(chain, [Reporter(f"reporter{i}") for i in (1, 2, 3)], CODES),
        exchange, SimulatedBroker(chain, exchange, work / "broker.db"),
        CorporateActionAgent(chain, read_actions(ACTIONS), work / "ca.db", lots=lots),
        monitor, ChainSync(chain, monitor), who,
    )  # fmt: skip
    yield d
    d.broker.close()
    d.agent.close()


def _hold_overnight(desk: Desk, record: TradingDay, portfolios: dict[str, list[str]]) -> None:
    """A trading day (the record date of the dividend test): each borrower buys ~35% of its
    margin in each of its securities (so that it borrows), the session trades, the close is
    reported."""
    desk.open(record)
    desk.report({c: intraday_ticks(record.bars[c], 8)[0].price_fen for c in CODES}, record)
    for name, codes in portfolios.items():
        for code in codes:
            desk.buy(record, name, code, MARGIN_FEN * 35 // 100)
    desk.trade_day(record)
    desk.report({c: record.bars[c].close for c in CODES}, record, minute=239)
    for name, codes in portfolios.items():
        assert all(desk.position(name, c) > 0 for c in codes), name
        assert desk.account(name)["debt_fen"] > 0, name


def _open_at_reference(desk: Desk, ex: TradingDay) -> None:
    """The ex-date's first report: every price at its previous close (the reference price
    on an ex-date), i.e. no market move yet."""
    desk.report({c: ex.bars[c].prev_close for c in CODES}, ex)


def test_cash_dividend_equity_and_a_buy_spanning_the_ex_date(desk: Desk, days, actions) -> None:
    record, ex = days[dt.date(2016, 6, 27)], days[dt.date(2016, 6, 28)]
    action = actions["000027"]
    assert (action.record_date, action.pay_date) == (record.date, ex.date)
    _hold_overnight(
        desk, record, {n: ["000027", "000001", "000333"] for n in ("b-long", "b-short")}
    )
    qty = {n: desk.position(n, "000027") for n in ("b-long", "b-short")}
    before = {n: desk.account(n) for n in qty}
    # after the close b-short asks for 1,000 more at the record date's close (6.54 元)
    desk.chain.send(ORDERBOOK, "request_buy", code_to_chain("000027"), 1_000, 654, actor="b-short")
    desk.open(ex)
    assert desk.chain.call("PriceOracle", "prev_close", code_to_chain("000027")) == 634
    applied = desk.apply(ex)
    assert applied["cash_credited"] == 2 and applied["positions_adjusted"] == 0
    _open_at_reference(desk, ex)
    after = {n: desk.account(n) for n in qty}
    gross = {n: q * 20 for n, q in qty.items()}  # 0.20 元 a share
    eq = {n: after[n]["assets_fen"] - after[n]["debt_fen"] for n in qty}
    eq0 = {n: before[n]["assets_fen"] - before[n]["debt_fen"] for n in qty}
    # held over a year (0% since 2015-09-08): the equity is unchanged but for one night's
    # interest (b-long has no open order: its debt moved by the interest alone)
    interest = after["b-long"]["debt_fen"] - before["b-long"]["debt_fen"]
    assert 0 <= interest < 1_000
    assert after["b-long"]["cash_fen"] - before["b-long"]["cash_fen"] == gross["b-long"]
    assert eq["b-long"] == eq0["b-long"] - interest
    # held since the record date (≤ 1 month: 20%): lower by exactly the tax withheld and its
    # night's interest (its pending buy drew financing: debt and pending cash grew alike)
    tax = gross["b-short"] // 5
    assert 0 <= eq0["b-short"] - tax - eq["b-short"] < 1_000
    # the buy spanning the ex-date fills at ex-date prices and earns no dividend
    desk.trade_day(ex)
    assert desk.position("b-short", "000027") == qty["b-short"] + 1_000
    (row,) = [r for r in desk.agent.entitlements(action) if r["account"] == desk.who["b-short"]]
    assert (row["qty"], row["gross_fen"], row["tax_fen"]) == (qty["b-short"], gross["b-short"], tax)
    assert row["cash"] == "applied"
    # the same day again: nothing credited twice
    cash = desk.account("b-long")["cash_fen"]
    again = desk.agent.open_day(ex.date, desk.who.values())
    assert again.cash_credited == 0 and desk.account("b-long")["cash_fen"] == cash


def test_ten_for_ten_ratio_unchanged_and_a_sell_spanning_the_ex_date(
    desk: Desk, days, tmp_path: Path
) -> None:
    bought, record, ex = (days[dt.date(2016, 10, d)] for d in (10, 11, 12))
    _hold_overnight(desk, bought, {"b-bonus": ["000420", "000001", "000333"]})
    desk.open(record)  # the record date: held through it (sellable: bought the day before)
    # a SYNTHETIC cash action (not a real event) on 000333, ex-date 10-11 and paid on 10-12,
    # to exercise a pay date after the ex-date: entitled at the 10-11 open, paid at 10-12's
    synthetic = parse_actions(
        "code,ex_date,record_date,pay_date,bonus_per_10,transfer_per_10,cash_per_10_yuan,source\n"
        "000333,2016-10-11,2016-10-10,2016-10-12,0,0,3.00,inferred: synthetic (test only)\n"
    )
    later = CorporateActionAgent(desk.chain, synthetic, tmp_path / "later.db")
    assert later.open_day(record.date, desk.who.values()).cash_credited == 0
    (owed,) = [e for e in later.entitlements(synthetic[0]) if e["account"] == desk.who["b-bonus"]]
    assert owed["qty"] == desk.position("b-bonus", "000333") and owed["cash"] == "due"
    desk.report({c: intraday_ticks(record.bars[c], 8)[0].price_fen for c in CODES}, record)
    desk.trade_day(record)
    desk.report({c: record.bars[c].close for c in CODES}, record, minute=239)
    held = desk.position("b-bonus", "000420")
    before = desk.account("b-bonus")
    ratio_before = desk.monitor_ratio("b-bonus")
    # after the close the borrower asks to sell a third at 8.02 元, the pre-ex price
    sell = held // 3 // 100 * 100
    desk.chain.send(ORDERBOOK, "request_sell", code_to_chain("000420"), sell, 802, actor="b-bonus")
    desk.open(ex)
    _open_at_reference(desk, ex)  # 000420 at 4.01 元
    halved = desk.account("b-bonus")  # not yet adjusted: half the 000420 value is gone
    assert before["assets_fen"] - halved["assets_fen"] == held * 401
    applied = desk.apply(ex)  # shares adjusted, then the spanning sell placed (and refused)
    assert applied["positions_adjusted"] == 1 and applied["shares_added"] == held
    assert desk.position("b-bonus", "000420") == 2 * held
    after = desk.account("b-bonus")
    assert after["assets_fen"] == before["assets_fen"]  # 2 × held × 4.01 = held × 8.02
    assert after["debt_fen"] - before["debt_fen"] < 1_000  # one night's interest
    # the ratio moves by one night's interest only (< 0.05%), not by half the 000420 value
    assert 0 <= before["ratio_bps"] - after["ratio_bps"] <= before["ratio_bps"] * 5 // 10_000
    # the monitor followed the PositionAdjusted event: it agrees with the engine, no jump
    ratio_after = desk.monitor_ratio("b-bonus")
    assert ratio_after == pytest.approx(after["ratio_bps"], abs=1)
    assert ratio_after == pytest.approx(ratio_before, rel=5e-4)
    # the sell at 8.02 is outside the ex-date band (3.61–4.41): refused, its shares released
    c = code_to_chain("000420")
    assert desk.chain.call(ENGINE, "selling", desk.who["b-bonus"], c) == 0
    assert desk.chain.call(ENGINE, "sellable", desk.who["b-bonus"], c) == 2 * held
    engine = desk.chain.address_of("engine")
    assert desk.chain.call("ShareCertificates", "balance_of", engine, c) == 2 * held
    # once more: the reference is used, nothing added
    again = desk.agent.open_day(ex.date, desk.who.values())
    assert again.positions_adjusted == 0 and desk.position("b-bonus", "000420") == 2 * held
    # a new agent whose journal was lost: the chain's references stop it
    fresh = CorporateActionAgent(desk.chain, read_actions(ACTIONS), tmp_path / "lost.db")
    redo = fresh.open_day(ex.date, desk.who.values())
    fresh.close()
    assert (redo.positions_adjusted, redo.already_applied) == (0, 1)
    assert desk.position("b-bonus", "000420") == 2 * held
    assert desk.chain.call("ShareCertificates", "balance_of", engine, c) == 2 * held
    cash = desk.account("b-bonus")["cash_fen"]
    # the synthetic action's pay date (after the ratio checks: the cash raises the ratio)
    paid = later.open_day(ex.date, desk.who.values())
    later.close()
    net = owed["gross_fen"] - owed["tax_fen"]
    assert paid.cash_credited == 3  # b-long and b-short hold 000333 since June too
    assert owed["gross_fen"] == owed["qty"] * 30 and owed["tax_fen"] == owed["gross_fen"] // 5
    assert desk.account("b-bonus")["cash_fen"] == cash + net
