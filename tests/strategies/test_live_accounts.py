"""Strategy accounts on the embedded chain: OffPlatformLegs (enrolment, broker settlement,
combined ratio with haircuts, staleness, the brake's refusal of new financing) and the live
keeper unwinding a financed basis book in August–September 2015 before its lines."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from anvil_node import anvil

from crowdleverage.chain.deploy import (
    FINANCING_ACTORS,
    INSTITUTIONAL_TIER,
    deploy_financing,
    deploy_strategy_legs,
    deploy_system,
    read_manifest,
)
from crowdleverage.chain.embedded import DEFAULT_GENESIS_TIME_S
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.margin import ENGINE
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.roles import Role
from crowdleverage.chain.rpc import RpcChain
from crowdleverage.domain.errors import ComplianceBlock, ContractRevert
from crowdleverage.risk.world import (
    DEV_SEED,
    SESSION_ORACLE,
    World,
    open_financing_chain,
    register,
)
from crowdleverage.strategies import basis
from crowdleverage.strategies.accounts import (
    DEFAULT_TIER,
    InvestorClass,
    classify_investor,
    waterfall,
)
from crowdleverage.strategies.backtest import BacktestConfig, RunOptions, run
from crowdleverage.strategies.base import StrategyFrame
from crowdleverage.strategies.brake import (
    BrakeInputs,
    BrakeParams,
    LiquidityBrake,
    Stage,
    regime_proxy,
)
from crowdleverage.strategies.data import MarketData
from crowdleverage.strategies.live import (
    LEGS,
    Leg,
    LegKindOnChain,
    SimulatedLegBroker,
    SpotLeg,
    StrategyAccounts,
    StrategyFinancingStopped,
    StrategyKeeper,
    brake_panel,
    market_inputs,
)

YI = 100_000_000 * 100  # 1亿元 in fen
WAN = 10_000 * 100  # 1万元 in fen
ETFS = (510300, 510330, 510310, 159919)  # CSI 300 ETFs: one security ≤ 40% of an account
DIRS: dict[str, Path] = {}
ACTORS = ["inv-senior", "inv-junior", "pro-a", "pro-b", "pro-c", "ordinary", "basis-desk"]


def band(prev: int) -> tuple[int, int]:
    return (prev * 9_000 + 5_000) // 10_000, (prev * 11_000 + 5_000) // 10_000


class Venue:
    """The operator, reporters and broker of a small market of ETFs on the chain."""

    def __init__(self, world: World) -> None:
        self.w, self.c = world, world.chain
        self.day = int(self.c.call("PriceOracle", "trading_day"))
        self.px: dict[int, int] = {}

    def open_day(self, prices: dict[int, int]) -> None:
        self.day += 1
        self.c.advance_time(86_400)
        self.c.send("PriceOracle", "open_day", self.day, actor="operator")
        rows = []
        for code, p in prices.items():
            prev = self.px.get(code, p)
            lo, hi = band(prev)
            rows.append((code, prev, lo, hi, False))
            self.px[code] = min(max(p, lo), hi)
        self.c.send("PriceOracle", "set_day_params_many", rows, actor="operator")
        codes = list(self.px)
        for r in ("reporter1", "reporter2"):
            self.c.send("PriceOracle", "report_many", codes, [self.px[k] for k in codes], actor=r)

    def fill(self, oid: int, qty: int, price: int, buy: bool) -> None:
        if not buy:
            self.c.send("CashToken", "approve", self.c.address_of("engine"), qty * price,
                        actor="broker")  # fmt: skip
        seq = int(self.c.call("OrderBook", "fill_count", oid))
        self.c.send("OrderBook", "settle_fill", oid, seq, qty, price, 0, self.w.ref("fill"),
                    actor="broker")  # fmt: skip


def _platform(chain: ChainPort) -> World:
    w = World(chain)
    for code in ETFS:
        chain.send("RiskParams", "set_security", code, 10_000, False, 0, actor="operator")
    w.invest("inv-senior", True, 4 * YI)
    w.invest("inv-junior", False, YI)
    w.close_epoch()
    w.fund_broker(YI)
    return w


@pytest.fixture(scope="module", params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The platform with OffPlatformLegs on the embedded chain and on anvil (the same deploy
    script; the tests' expected values are computed independently, so both must agree)."""
    work = DIRS[request.param] = tmp_path_factory.mktemp(f"legs-{request.param}")
    if request.param == "embedded":
        chain: ChainPort = open_financing_chain(work, ACTORS)
        yield _platform(chain)
        chain.close()
        return
    keys = ActorKeys.dev(DEV_SEED, dict.fromkeys([*FINANCING_ACTORS, *ACTORS]))
    node = request.getfixturevalue("anvil_bin")
    with anvil(node, "--timestamp", str(DEFAULT_GENESIS_TIME_S)) as url:
        rpc = RpcChain(url, keys, None, controlled_clock=True)
        rpc.fund([*FINANCING_ACTORS, *ACTORS], 10**21)
        deploy_system(rpc, work, SESSION_ORACLE)
        deploy_financing(rpc, work)
        yield _platform(rpc)
        rpc.close()


@pytest.fixture(scope="module")
def live_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    chain = open_financing_chain(tmp_path_factory.mktemp("legs-live"), ACTORS)
    yield _platform(chain)
    chain.close()


def institutional(w: World, name: str, margin_fen: int, suitability: int = 5) -> str:
    register(w.chain, name, Role.BORROWER, suitability=suitability)
    who = w.chain.address_of(name)
    w.chain.send(ENGINE, "open_account", who, INSTITUTIONAL_TIER, actor="compliance")
    w.mint(name, margin_fen)
    w.chain.send("CashToken", "approve", w.chain.address_of("engine"), margin_fen, actor=name)
    w.chain.send(ENGINE, "deposit", margin_fen, False, actor=name)
    return who


def buy_basket(v: Venue, acc: StrategyAccounts, name: str, budget_fen: int) -> None:
    """Round-robin in steps: one security ≤ 40% of the account's assets at every buy. With
    four balanced holdings a step of at most the holding itself keeps that (2x / 5x)."""
    who = v.c.address_of(name)
    cash = int(v.c.call(ENGINE, "accounts", who)[1])
    target = budget_fen // len(ETFS)
    while True:
        bought = False
        for code in ETFS:
            px = v.px[code]
            held = int(v.c.call(ENGINE, "positions", who, code)) * px
            step = min(target - held, held * 95 // 100 if held else cash // len(ETFS))
            qty = step // px // 100 * 100
            if qty > 0:
                oid = acc.request_buy(name, code, qty, px)
                v.fill(oid, qty, px, buy=True)
                bought = True
        if not bought:
            return


def test_deploy_records_the_contract_and_the_institutional_tier(world: World) -> None:
    c = world.chain
    work = DIRS["embedded" if c.kind == "embedded" else "anvil"]
    manifest = read_manifest(work)
    assert manifest["contracts"]["OffPlatformLegs"]["address"] == c.contract_address(LEGS)
    t = DEFAULT_TIER
    assert tuple(c.call("RiskParams", "tiers", INSTITUTIONAL_TIER)) == (
        t.max_leverage_x100 // 100, t.initial_ratio_bps, t.warning_ratio_bps,
        t.liquidation_ratio_bps, t.rate_apr_bps,
    )  # fmt: skip
    assert deploy_strategy_legs(c, work) == c.contract_address(LEGS)


def test_professional_investors_only() -> None:
    pro = classify_investor(entity=False, financial_assets_fen=600 * WAN, experience_years=3)
    assert pro is InvestorClass.PROFESSIONAL
    assert classify_investor(entity=False, financial_assets_fen=600 * WAN, experience_years=1) is (
        InvestorClass.ORDINARY
    )
    assert classify_investor(entity=True, financial_institution=True) is InvestorClass.PROFESSIONAL
    assert (
        classify_investor(
            entity=True, net_assets_fen=3_000 * WAN, financial_assets_fen=900 * WAN,
            experience_years=5,
        )
        is InvestorClass.ORDINARY
    )  # fmt: skip


def test_enrol_settle_and_combined_ratio(world: World) -> None:
    c, acc = world.chain, StrategyAccounts(world.chain)
    v = Venue(world)
    v.open_day({code: 400 for code in ETFS})
    institutional(world, "ordinary", 100 * WAN, suitability=4)
    with pytest.raises(ComplianceBlock):
        acc.enrol("ordinary", InvestorClass.ORDINARY)
    with pytest.raises(ContractRevert, match="legs: professional investors only"):
        acc.enrol("ordinary", InvestorClass.PROFESSIONAL)  # the chain checks C5 itself
    who = institutional(world, "pro-a", 100 * WAN)
    with pytest.raises(ContractRevert, match="legs: caller is not compliance"):
        c.send(LEGS, "enrol", who, c.address_of("broker"), actor="operator")
    acc.enrol("pro-a", InvestorClass.PROFESSIONAL)
    with pytest.raises(ContractRevert, match="legs: already enrolled"):
        acc.enrol("pro-a", InvestorClass.PROFESSIONAL)
    buy_basket(v, acc, "pro-a", 280 * WAN)  # 100万 margin, ≈180万 financed
    assets, debt, _ = (int(x) for x in c.call(ENGINE, "account_state", who))
    assert debt > 170 * WAN

    # the broker reports a short future (settled: worth 0 until the price moves), an H share
    # valued by the oracle (code 510330 stands in for its feed) and 50万 cash
    fut = Leg(LegKindOnChain.FUTURES, "IF1509", -2, 350_000, 300, 2_100_000 * 100 // 10)
    h = Leg(LegKindOnChain.SHARE, "00939.HK", 10_000, 390, 1, 0, oracle_code=510330)
    day = v.day
    with pytest.raises(ContractRevert, match="legs: a short leg must be negative"):
        bad = Leg(LegKindOnChain.SHORT, "601318", 5, 100, 1)
        acc.settle("pro-a", day, "s-5", 0, [bad], broker="broker")
    acc.settle("pro-a", day, "s-1", 50 * WAN, [fut, h], broker="broker")
    with pytest.raises(ContractRevert, match="legs: reference already used"):
        acc.settle("pro-a", day + 0, "s-1", 0, [], broker="broker")
    with pytest.raises(ContractRevert, match="legs: caller is not the account's broker"):
        acc.settle("pro-a", day, "s-2", 0, [], broker="operator")
    with pytest.raises(ContractRevert, match="legs: day not after last settlement"):
        acc.settle("pro-a", day, "s-3", 0, [], broker="broker")
    with pytest.raises(ContractRevert, match="legs: day in the future"):
        acc.settle("pro-a", day + 1, "s-4", 0, [], broker="broker")

    h_value = 10_000 * v.px[510330]  # marked by the oracle, not the broker's 390
    counted = 50 * WAN * 9_000 // 10_000 + h_value * 5_000 // 10_000
    # the debt as the combined view sees it: interest accrued over the settlements' blocks
    assets, debt, _ = (int(x) for x in c.call(ENGINE, "account_state", who))
    got = acc.combined("pro-a")
    assert (got.engine_assets_fen, got.debt_fen, got.counted_fen) == (assets, debt, counted)
    assert got.ratio_bps == (assets + counted) * 10_000 // debt
    nlv, cnt, margin, stale = c.call(LEGS, "off_platform", who)
    assert (nlv, cnt, margin, stale) == (50 * WAN + h_value, counted, fut.margin_fen, False)

    # next day: ETFs −5%, the future +2% against the short: its variation counts in full
    v.open_day({code: 380 for code in ETFS})
    got = acc.combined("pro-a")
    h_value = 10_000 * 380
    assert got.counted_fen == 50 * WAN * 9_000 // 10_000 + h_value // 2
    fut_move = -2 * (357_000 - 350_000) * 300  # the broker's settlement on day 2
    fut2 = Leg(LegKindOnChain.FUTURES, "IF1509", -2, 357_000, 300, 0)
    acc.settle("pro-a", v.day, "s-6", 50 * WAN + fut_move, [fut2, h], broker="broker")
    got = acc.combined("pro-a")
    assets2, debt2, _ = (int(x) for x in c.call(ENGINE, "account_state", who))
    assert got.counted_fen == (50 * WAN + fut_move) * 9_000 // 10_000 + h_value // 2
    assert got.assets_fen == assets2 + got.counted_fen and got.debt_fen == debt2

    # two days without a report: gains no longer count, losses still do
    v.open_day({code: 380 for code in ETFS})
    v.open_day({code: 380 for code in ETFS})
    assert c.call(LEGS, "off_platform", who)[3] is True
    assert acc.combined("pro-a").counted_fen == 0


def test_the_brake_stops_new_strategy_financing(world: World) -> None:
    c, acc = world.chain, StrategyAccounts(world.chain)
    v = Venue(world)
    v.open_day({code: 400 for code in ETFS})
    institutional(world, "pro-b", 100 * WAN)
    acc.enrol("pro-b", InvestorClass.PROFESSIONAL)
    buy_basket(v, acc, "pro-b", 150 * WAN)
    orders = len(c.events("OrderBook", "OrderRequested"))
    try:
        c.send(LEGS, "set_brake_stage", int(Stage.NO_NEW), actor="keeper")
        with pytest.raises(StrategyFinancingStopped, match="legs: strategy financing stopped"):
            acc.request_buy("pro-b", ETFS[0], 10_000, 400)
        assert len(c.events("OrderBook", "OrderRequested")) == orders  # nothing placed
        acc.check_financing("inv-senior", 10**12)  # not a strategy account: not concerned
        with pytest.raises(ContractRevert, match="legs: caller is not operator or keeper"):
            c.send(LEGS, "set_brake_stage", 0, actor="pro-b")
        c.send(LEGS, "set_brake_stage", 0, actor="keeper")
        debt = int(c.call(ENGINE, "account_state", c.address_of("pro-b"))[1])
        cap = debt + 10 * WAN + 100  # 1 元 of slack: interest accrues while set_cap is mined
        c.send(LEGS, "set_cap", c.address_of("pro-b"), cap, actor="keeper")
        # calls mine no block: the debt they see now is the one the check compares
        room = cap - int(c.call(ENGINE, "account_state", c.address_of("pro-b"))[1])
        assert 10 * WAN <= room <= 10 * WAN + 100
        acc.check_financing("pro-b", room)
        with pytest.raises(StrategyFinancingStopped, match="legs: above strategy exposure cap"):
            acc.check_financing("pro-b", room + 1)
        # an account marked as unwinding takes financing again once the brake is NORMAL and
        # its combined ratio is above the initial line
        c.send(LEGS, "set_unwinding", c.address_of("pro-b"), True, actor="keeper")
        with pytest.raises(StrategyFinancingStopped, match="legs: strategy account unwinding"):
            acc.check_financing("pro-b", 0)
        keeper = StrategyKeeper(c, acc, SimulatedLegBroker(), LiquidityBrake())
        keeper.track("pro-b", [SpotLeg(code) for code in ETFS])
        day = dt.date(2015, 10, 8)
        acts = keeper.on_day(day, BrakeInputs(day, 0, 0.0, 1.0, 0.0), {})
        assert acts.unwound == () and acts.sells == ()
        assert c.call(LEGS, "accounts", c.address_of("pro-b"))[5] is False
    finally:
        c.send(LEGS, "set_brake_stage", 0, actor="keeper")


def test_keeper_unwinds_at_once_below_the_liquidation_line(world: World) -> None:
    """A futures loss at the broker takes the combined ratio under the liquidation line while
    the brake is NORMAL and the engine's own ratio is fine: the keeper closes the futures
    through the broker port and sells the whole financed leg, and the account takes no new
    financing while it is unwound."""
    c, acc = world.chain, StrategyAccounts(world.chain)
    v = Venue(world)
    v.open_day({code: 400 for code in ETFS})
    who = institutional(world, "pro-c", 100 * WAN)
    acc.enrol("pro-c", InvestorClass.PROFESSIONAL)
    buy_basket(v, acc, "pro-c", 280 * WAN)
    broker = SimulatedLegBroker()
    broker.deposit("pro-c", 10 * WAN)
    broker.open("pro-c", "IF", LegKindOnChain.FUTURES, -5, 350_000, multiplier=300, product="IF")
    v.open_day({code: 400 for code in ETFS})  # T+1: the ETFs are sellable
    day = dt.date(2015, 10, 8)
    cash, legs = broker.settle_day("pro-c", day, {"IF": 420_000})  # +20% against the short
    assert cash == 10 * WAN - 5 * 70_000 * 300 < 0
    acc.settle("pro-c", v.day, "c-1", cash, legs, broker="broker")
    got = acc.combined("pro-c")
    assert got.ratio_bps is not None and got.ratio_bps < DEFAULT_TIER.liquidation_ratio_bps
    assert int(c.call(ENGINE, "account_state", who)[2]) > DEFAULT_TIER.initial_ratio_bps
    keeper = StrategyKeeper(c, acc, broker, LiquidityBrake())
    keeper.track("pro-c", [SpotLeg(code) for code in ETFS])
    held = {code: int(c.call(ENGINE, "positions", who, code)) for code in ETFS}
    acts = keeper.on_day(day, BrakeInputs(day, 0, 0.0, 1.0, 0.0), {"IF": 420_000})
    assert acts.brake.stage is Stage.NORMAL and acts.unwound == ("pro-c",)
    assert acts.closes == (("pro-c", "IF", 5),) and broker.quantity("pro-c", "IF") == 0
    assert sorted((code, qty) for _, _, code, qty in acts.sells) == sorted(held.items())
    assert c.call(LEGS, "accounts", who)[5] is True
    with pytest.raises(StrategyFinancingStopped, match="legs: strategy account unwinding"):
        acc.request_buy("pro-c", ETFS[0], 100, 400)


# ── the 2015 basis book, live ─────────────────────────────────────────────────────────────

START, RULE_CHANGE, END = dt.date(2015, 8, 24), dt.date(2015, 9, 7), dt.date(2015, 9, 11)


def bare_first_call(market: MarketData) -> tuple[dt.date, int]:
    """The same book (long spot, short IF from START, 2.3× equity) in the rules-aware
    backtest without a brake: the day of its first margin call and its forced exits."""
    sf = basis.build(market, basis.BasisParams())
    f = sf.frame.copy()
    f["signal"] = np.where(f.index >= pd.Timestamp(START), 1, 0)
    book = StrategyFrame(sf.name, sf.a, sf.b, f)
    bare = run(book, BacktestConfig(notional_x_equity=2.3), options=RunOptions(crowd_multiple=20),
               date_from=dt.date(2015, 7, 1), date_to=dt.date(2015, 9, 30))  # fmt: skip
    calls = bare.daily.index[bare.daily["margin_calls"] > 0]
    return calls[0].date(), bare.stats["forced_exits"]


def test_brake_unwinds_a_live_financed_basis_book_before_its_lines(
    live_world: World, market: MarketData
) -> None:
    """Long a CSI 300 ETF basket financed on the engine (priced at the index / 1000: no
    CSI 300 ETF data is shipped) and short IF at the broker, from 2015-08-24 into the margin
    steps to 40% on 2015-09-07. Without a brake the same book (rules-aware backtest) gets
    its first margin call on the rule change and is forced out. Live, the brake, fed each
    day with that day's data only, stops new financing and the keeper unwinds the book on its
    schedule — futures closed through the broker port, ETFs sold through the OrderBook — flat
    before that first call, the combined ratio never under the warning line, the engine never
    liquidating; the loss goes down the waterfall to the borrower's margin only."""
    world = live_world
    first_call, bare_exits = bare_first_call(market)
    assert first_call == RULE_CHANGE and bare_exits == 1
    c, acc = world.chain, StrategyAccounts(world.chain)
    f = basis.build(market, basis.BasisParams()).frame
    f = f[(f.index >= pd.Timestamp(START) - pd.Timedelta(days=120))]
    regime = regime_proxy(market.indices["000300"]["close"]).reindex(f.index).ffill()
    idx = market.indices["000300"]["close"].reindex(f.index)
    days = [ts for ts in f.index if START <= ts.date() <= END]

    def etf_fen(ts: pd.Timestamp) -> int:
        return int(idx.loc[ts] // 10)  # index / 1000 in 元 → fen

    def if_fen(ts: pd.Timestamp) -> int:
        return round(f.loc[ts, "b_px"] * 100)  # fen per index point

    v = Venue(world)
    v.open_day({code: etf_fen(days[0]) for code in ETFS})
    institutional(world, "basis-desk", 200 * WAN)
    acc.enrol("basis-desk", InvestorClass.PROFESSIONAL)
    buy_basket(v, acc, "basis-desk", 540 * WAN)
    broker = SimulatedLegBroker()
    broker.deposit("basis-desk", 150 * WAN)
    lots = 5
    broker.open("basis-desk", "IF", LegKindOnChain.FUTURES, -lots, if_fen(days[0]),
                multiplier=300, product="IF")  # fmt: skip
    brake = LiquidityBrake(BrakeParams(unwind_days=3))  # a 3-day schedule (default 5)
    keeper = StrategyKeeper(c, acc, broker, brake)
    keeper.track("basis-desk", [SpotLeg(code) for code in ETFS])
    equity0 = 200 * WAN + 150 * WAN
    pool_fen = int(c.call("TranchePool", "total_assets_fen"))
    ratios, stages, refused_on, flat_on = [], [], None, None
    for i, ts in enumerate(days):
        day = ts.date()
        if i:
            v.open_day({code: etf_fen(ts) for code in ETFS})
        cash, legs = broker.settle_day("basis-desk", day, {"IF": if_fen(ts)})
        acc.settle("basis-desk", v.day, f"bk-{day}", cash, legs, broker="broker")
        t = f.index.get_loc(ts)
        gross = sum(int(c.call(ENGINE, "positions", c.address_of("basis-desk"), k)) * v.px[k]
                    for k in ETFS)  # fmt: skip
        inputs = market_inputs(
            f, t, side=1 if gross else 0, book_fen=gross, pool_assets_fen=pool_fen,
            params=brake.params, regime=float(regime.iloc[t]), crowd_multiple=20,
        )  # fmt: skip
        acts = keeper.on_day(day, inputs, {"IF": if_fen(ts)})
        for _, oid, code, qty in acts.sells:
            v.fill(oid, qty, v.px[code], buy=False)
        stages.append(acts.brake.stage)
        if acts.brake.stage >= Stage.NO_NEW and refused_on is None:
            with pytest.raises(StrategyFinancingStopped):
                acc.request_buy("basis-desk", ETFS[0], 100, v.px[ETFS[0]])
            refused_on = day
        ratio = acc.combined("basis-desk").ratio_bps
        ratios.append(ratio)
        held = sum(int(c.call(ENGINE, "positions", c.address_of("basis-desk"), k)) for k in ETFS)
        if flat_on is None and held == 0 and broker.quantity("basis-desk", "IF") == 0:
            flat_on = day
    assert refused_on is not None and refused_on < RULE_CHANGE
    assert Stage.UNWIND in stages
    assert flat_on is not None and flat_on < first_call
    unwind_days = [s for s in stages if s is Stage.UNWIND]
    assert len(unwind_days) >= 2  # an orderly schedule, not one dump
    live = [r for r in ratios if r is not None]
    assert min(live) >= DEFAULT_TIER.warning_ratio_bps
    a = world.account(c.address_of("basis-desk"))
    assert a["locked"] == 0 and a["open_liq"] == 0  # never liquidated by the engine
    # the desk repays what it can from the sale proceeds; what is left is its equity
    equity = a["assets_fen"] - a["debt_fen"] + broker.accounts["basis-desk"].cash_fen
    loss = max(0, equity0 - equity)
    layers = {"borrower_margin": equity0, "insurance": 10 * YI, "junior": YI, "senior": 4 * YI}
    panel = brake_panel(c)  # the operator's risk panel and the transparency page
    assert panel["stage"] == "UNWIND" and panel["new_financing"] is False
    assert panel["strategy_accounts_open"] >= 1 and panel["strategy_accounts_unwinding"] >= 1
    split = waterfall(loss, layers)
    assert split["borrower_margin"] == loss and sum(split.values()) == loss
    assert split["insurance"] == split["junior"] == split["senior"] == split["unabsorbed"] == 0
