"""Keeper against the real margin engine (embedded chain): warnings once per day and across
a restart, top-ups, liquidation start, reverts when the chain disagrees, rate limit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdleverage.chain.margin import margin_events, placed_order_id
from crowdleverage.chain.params import set_st_status
from crowdleverage.config import SHIPPED_DATA
from crowdleverage.domain import params as P
from crowdleverage.domain.errors import ContractRevert
from crowdleverage.domain.params import TIERS
from crowdleverage.market.bars import read_bars
from crowdleverage.market.replay import trading_days
from crowdleverage.oracle.feeder import OracleFeeder, Reporter
from crowdleverage.risk.keeper import (
    FIRST_ACTION_SHARE,
    KEEP_BATCH,
    ChainSync,
    Keeper,
    KeeperConfig,
)
from crowdleverage.risk.monitor import AccountState, RiskMonitor
from crowdleverage.risk.world import World, open_financing_chain

DATA = SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv"
CODES = ["000001", "600004", "600406"]
CHAIN_CODES = [1, 600004, 600406]
PRICES = [1_000, 1_380, 1_630]
GENESIS = 1_451_350_800  # 2015-12-29 09:00 Asia/Shanghai
YI = 100_000_000 * 100
ACTORS = ["investor-senior", "investor-junior", "k-warn", "k-topup", "k-liq", "k-rate-a",
          "k-rate-b", "k-st", "k-stress", "k-stop", "k-noted", "k-relever", "k-phase",
          "k-shift", "k-intraday", "k-kill0-0", "k-kill0-1", "k-kill1-0", "k-kill1-1"]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    bars = read_bars(DATA)
    (day,) = trading_days(bars, dt.date(2015, 12, 31), dt.date(2015, 12, 31))
    chain = open_financing_chain(
        tmp_path_factory.mktemp("keeper-chain"), ACTORS, genesis_time_s=GENESIS
    )
    w = World(chain)
    w.list_securities(CODES)
    w.invest("investor-senior", True, 4 * YI)
    w.invest("investor-junior", False, YI)
    w.close_epoch()
    w.fund_broker(YI)
    feeder = OracleFeeder(chain, [Reporter(f"reporter{i}") for i in (1, 2, 3)], CODES)
    feeder.open_day(day)
    chain.set_block_time(chain.block_time() + 60)
    for r in ("reporter1", "reporter2"):  # prices inside each one's band of the day
        chain.send("PriceOracle", "report_many", CHAIN_CODES, PRICES, actor=r)
    yield w
    chain.close()


def levered_borrower(world: World, name: str, tier: int, reserve_fen: int = 0) -> str:
    """A borrower near its tier's initial ratio: margin 10万, three stocks bought round-robin
    (the 40% single-security limit) until the pre-trade checks refuse more."""
    who = world.open_borrower(name, tier, 10_000_000, reserve_fen)
    for _ in range(40):
        bought = False
        for code, price in zip(CHAIN_CODES, PRICES, strict=True):
            qty = 1_000_000 // price // 100 * 100
            while qty > 0:
                try:
                    tx = world.chain.send("OrderBook", "request_buy", code, qty, price, actor=name)
                except ContractRevert:
                    qty = qty // 2 // 100 * 100
                    continue
                oid = placed_order_id(tx)
                world.chain.send("OrderBook", "settle_fill", oid, 0, qty, price, 0,
                                 world.ref("fill"), actor="broker")  # fmt: skip
                bought = True
                break
        if not bought:
            break
    assert world.account(who)["ratio_bps"] < TIERS[tier].initial_ratio_bps + 300
    return who


def set_haircut(world: World, bps: int) -> None:
    for code in CHAIN_CODES:
        world.chain.send("RiskParams", "set_security", code, bps, False, 0, actor="operator")


def monitor_for(world: World, accounts: dict[str, int], haircut_bps: int) -> RiskMonitor:
    m = RiskMonitor(CODES, [haircut_bps] * 3)
    for who, tier in accounts.items():
        m.add_account(who, tier)
    sync = ChainSync(world.chain, m)
    for who in accounts:
        sync.refresh(who)
    m.update_prices([0, 1, 2], PRICES)
    return m


def test_warning_once_per_day_even_across_a_restart(world, tmp_path: Path):
    who = levered_borrower(world, "k-warn", 3)
    set_haircut(world, 9_000)  # 133% → ~120%: below the 125% warning line, above 115%
    try:
        m = monitor_for(world, {who: 3}, 9_000)
        res = m.tick()
        assert AccountState(res.state[0]) is AccountState.WARNING
        journal = tmp_path / "keeper.json"
        keeper = Keeper(world.chain, m, journal=journal, config=KeeperConfig(cooldown_s=0))
        assert keeper.on_tick(res, "2015-12-31") == 1
        assert keeper.on_tick(res, "2015-12-31") == 0  # already warned today
        restarted = Keeper(world.chain, m, journal=journal, config=KeeperConfig(cooldown_s=0))
        assert restarted.on_tick(res, "2015-12-31") == 0
        warnings = world.chain.events("Liquidator", "MarginWarning")
        assert [e.args["account"] for e in warnings].count(who) == 1
        assert restarted.on_tick(res, "2016-01-04") == 1  # a new day warns again
    finally:
        set_haircut(world, 10_000)


def test_an_action_found_on_chain_after_a_restart_is_not_done_again(world, tmp_path: Path):
    """The trading session re-running a tick a crash interrupted tells a new keeper what the
    chain shows it did (`note_done`): a warning mined before the crash (its journal line
    lost) counts for the day and the account cools down; a skipped one counts for nothing."""
    who = levered_borrower(world, "k-noted", 3)
    set_haircut(world, 9_000)
    try:
        m = monitor_for(world, {who: 3}, 9_000)
        res = m.tick()
        assert AccountState(res.state[0]) is AccountState.WARNING
        journal = tmp_path / "keeper.json"
        keeper = Keeper(world.chain, m, journal=journal)
        keeper.note_done(who, "warn", "2015-12-31")
        assert keeper.on_tick(res, "2015-12-31") == 0  # warned already (and cooling down)
        again = Keeper(world.chain, m, journal=journal, config=KeeperConfig(cooldown_s=0))
        assert again.on_tick(res, "2015-12-31") == 0  # the warning is in the day's journal
        skipped = Keeper(world.chain, m, journal=tmp_path / "other.json")
        skipped.note_done(who, "warn", "2015-12-31", skipped=True)
        assert skipped.on_tick(res, "2015-12-31") == 0  # cooling down: not tried again
        warned = {str(e.args["account"]).lower() for e in world.chain.events("Liquidator")
                  if e.event == "MarginWarning"}  # fmt: skip
        assert who.lower() not in warned  # nothing was sent: the chain has no warning yet
        fresh = Keeper(world.chain, m, journal=tmp_path / "other.json",
                       config=KeeperConfig(cooldown_s=0))  # fmt: skip
        assert fresh.on_tick(res, "2015-12-31") == 1  # a skip was no warning: it warns now
    finally:
        set_haircut(world, 10_000)


def test_top_up_moves_the_reserve_and_a_second_one_is_refused_harmlessly(world):
    who = levered_borrower(world, "k-topup", 3, reserve_fen=5_000_000)
    set_haircut(world, 9_000)
    try:
        m = monitor_for(world, {who: 3}, 9_000)
        res = m.tick()
        assert AccountState(res.state[0]) is AccountState.TOPUP_DUE
        keeper = Keeper(world.chain, m, config=KeeperConfig(cooldown_s=0))
        assert keeper.on_tick(res, "2015-12-31") == 1
        assert world.account(who)["reserve_fen"] < 5_000_000
        assert world.account(who)["ratio_bps"] >= 12_500
        assert keeper.on_tick(res, "2015-12-31") == 0  # the chain says: above warning now
        assert keeper.stats.moved_back["margin: above warning line"] == 1
    finally:
        set_haircut(world, 10_000)


def test_liquidation_starts_and_a_stale_signal_is_handled_not_fatal(world):
    who = levered_borrower(world, "k-liq", 3)
    set_haircut(world, 8_500)  # 133% → ~113%: below the 115% liquidation line
    m = monitor_for(world, {who: 3}, 8_500)
    res = m.tick()
    assert AccountState(res.state[0]) is AccountState.LIQUIDATION_DUE
    set_haircut(world, 10_000)  # the chain moves back before the keeper acts
    keeper = Keeper(world.chain, m, config=KeeperConfig(cooldown_s=0))
    assert keeper.on_tick(res, "2015-12-31") == 0
    assert keeper.stats.moved_back == {"margin: above liquidation line": 1}
    assert not world.account(who)["locked"]
    set_haircut(world, 8_500)  # down again: now the engine agrees
    try:
        assert keeper.on_tick(res, "2015-12-31") == 1
        acct = world.account(who)
        # locked, but everything was bought today (T+1): nothing may be sold yet
        assert acct["locked"] and acct["open_liq"] == 0
        # the next session: the keeper's follow-up emits the next round
        (jan4,) = trading_days(read_bars(DATA), dt.date(2016, 1, 4), dt.date(2016, 1, 4))
        feeder = OracleFeeder(world.chain, [Reporter(f"reporter{i}") for i in (1, 2, 3)], CODES)
        feeder.open_day(jan4)
        world.chain.set_block_time(world.chain.block_time() + 60)
        for r in ("reporter1", "reporter2"):
            world.chain.send("PriceOracle", "report_many", CHAIN_CODES, PRICES, actor=r)
        assert keeper.follow_up([who], new_session=True) == 1
        assert world.account(who)["open_liq"] >= 1
        orders = [
            e.args for e in world.chain.events("OrderBook", "LiquidationOrder")
            if e.args["account"] == who
        ]  # fmt: skip
        assert orders and all(o["qty"] > 0 for o in orders)
    finally:
        set_haircut(world, 10_000)


def test_rate_limit_acts_on_the_worst_first_and_defers_the_rest(world):
    a = levered_borrower(world, "k-rate-a", 3)
    b = levered_borrower(world, "k-rate-b", 2)
    set_haircut(world, 8_000)
    try:
        m = monitor_for(world, {a: 3, b: 2}, 8_000)
        res = m.tick()
        assert res.ratio_bps[m.row(a)] < res.ratio_bps[m.row(b)]
        keeper = Keeper(world.chain, m, config=KeeperConfig(max_actions_per_tick=1))
        assert keeper.on_tick(res, "2015-12-31") == 1
        assert keeper.stats.deferred == 1
        assert world.account(a)["locked"] and not world.account(b)["locked"]
        assert keeper.on_tick(res, "2015-12-31") == 1  # a is cooling down: b's turn
    finally:
        set_haircut(world, 10_000)


def test_a_security_turning_st_is_revalued_and_warned_never_bought(world: World) -> None:
    """The day's data says 600004 turned ST: the operator's day open sets it at RiskParams,
    the monitor re-values it at the ST haircut (0) from the event, the keeper's warning is
    accepted by the chain, and no buy of it is financed (even with a non-zero ST haircut)."""
    who = levered_borrower(world, "k-st", 3)
    m = RiskMonitor(CODES, [10_000] * 3)
    m.add_account(who, 3)
    sync = ChainSync(world.chain, m)
    sync.refresh(who)
    m.update_prices([0, 1, 2], PRICES)
    sync.sync()
    assert m.tick().state[m.row(who)] == AccountState.HEALTHY
    try:
        assert set_st_status(world.chain, {"600004": True, "600406": False}) == ["600004"]
        assert set_st_status(world.chain, {"600004": True}) == []  # only changes are sent
        sync.sync()
        state = AccountState(int(m.tick().state[m.row(who)]))
        assert state in (AccountState.WARNING, AccountState.LIQUIDATION_DUE)
        assert world.account(who)["ratio_bps"] < TIERS[3].warning_ratio_bps  # the chain agrees
        before = len(margin_events(world.chain, "MarginWarning"))
        world.chain.send("Liquidator", "warn", who, actor="keeper")
        assert len(margin_events(world.chain, "MarginWarning")) == before + 1
        world.chain.send("RiskParams", "set_st_haircut", 5_000, actor="operator")
        with pytest.raises(ContractRevert, match="margin: security not financeable"):
            world.chain.send("OrderBook", "request_buy", 600004, 100, PRICES[1], actor="k-st")
    finally:
        world.chain.send("RiskParams", "set_st_haircut", 0, actor="operator")
        set_st_status(world.chain, {"600004": False})


def test_stressed_regime_cuts_haircuts_on_chain_and_in_the_monitor_at_the_next_tick(
    world: World,
) -> None:
    """The operator sets the stressed regime at the OrderBook: RiskParams values every
    security at its stressed haircut in the same call, and the keeper's next tick brings the
    monitor to the chain's valuation (haircuts re-read, lines raised); calm again, back."""
    who = levered_borrower(world, "k-stress", 3)
    m = RiskMonitor(CODES, [10_000] * 3)
    m.add_account(who, 3)
    sync = ChainSync(world.chain, m)
    sync.refresh(who)
    m.update_prices([0, 1, 2], PRICES)
    sync.sync()
    keeper = Keeper(world.chain, m, config=KeeperConfig(cooldown_s=0, max_actions_per_tick=0))
    calm = m.tick()
    calm_ratio = int(calm.ratio_bps[m.row(who)])
    assert abs(calm_ratio - world.account(who)["ratio_bps"]) <= 1
    day = world.chain.call("PriceOracle", "trading_day")
    try:
        world.chain.send("OrderBook", "set_regime", 1, 12_000, actor="operator")
        assert [world.chain.call("RiskParams", "haircut", c, day) for c in CHAIN_CODES] == [
            P.stressed_haircut_bps(10_000)
        ] * 3
        chain_ratio = world.account(who)["ratio_bps"]
        assert chain_ratio < calm_ratio * 9_100 // 10_000  # ~90% of the collateral counts
        keeper.on_tick(calm, "2015-12-31")  # the next tick: sync_regime, then a re-tick
        stressed = m.tick()
        assert abs(int(stressed.ratio_bps[m.row(who)]) - chain_ratio) <= 1
        assert AccountState(int(stressed.state[m.row(who)])) is AccountState.LIQUIDATION_DUE
    finally:
        world.chain.send("OrderBook", "set_regime", 0, 1_000, actor="operator")
    keeper.on_tick(stressed, "2015-12-31")
    assert abs(int(m.tick().ratio_bps[m.row(who)]) - calm_ratio) <= 1


def test_nav_stop_is_detected_and_closes_an_account_above_its_lines(world: World) -> None:
    # Arrange: a tier-3 account at ~133%; the keeper records its reference on chain
    who = levered_borrower(world, "k-stop", 3)
    m = monitor_for(world, {who: 3}, 10_000)
    keeper = Keeper(world.chain, m, config=KeeperConfig(cooldown_s=0))
    assert keeper.mark_references() == 1
    assert keeper.mark_references() == 0  # recorded once
    ref_assets, ref_equity = keeper.reference(who)
    acct = world.account(who)
    assert 0 < ref_equity < ref_assets and acct["debt_fen"] > 0
    set_haircut(world, 9_400)  # haircut value −6%: ratio ~125%, above the 115% line
    try:
        m = monitor_for(world, {who: 3}, 9_400)
        res = m.tick()
        assert AccountState(res.state[0]) < AccountState.LIQUIDATION_DUE  # the lines wait
        assert res.ratio_bps[0] > TIERS[3].liquidation_ratio_bps
        # Act: the keeper sees equity below reference equity − 5% of reference assets
        keeper = Keeper(world.chain, m, config=KeeperConfig(cooldown_s=0))
        assert keeper.on_tick(res, "2015-12-31") == 1
        # Assert: the Liquidator agreed (re-checked on chain) and locked the account in full
        assert keeper.stats.calls["start_liquidation"] == 1
        started = [e.args for e in world.chain.events("Liquidator", "LiquidationStarted")
                   if e.args["account"] == who]  # fmt: skip
        assert started and started[-1]["full"] is True
        assert world.account(who)["locked"]
    finally:
        set_haircut(world, 10_000)


def buy_round_robin(world: World, name: str, n: int) -> None:
    """`n` buys of about 5,000 元 each, round-robin over the three stocks, filled at once."""
    for i in range(n):
        code, price = CHAIN_CODES[i % 3], PRICES[i % 3]
        qty = 500_000 // price // 100 * 100
        tx = world.chain.send("OrderBook", "request_buy", code, qty, price, actor=name)
        oid = placed_order_id(tx)
        world.chain.send("OrderBook", "settle_fill", oid, 0, qty, price, 0, world.ref("fill"),
                         actor="broker")  # fmt: skip


def test_nav_stop_reference_follows_an_account_that_levers_up(world: World) -> None:
    # Arrange: a tier-3 account with a little debt; the keeper records its reference
    who = world.open_borrower("k-relever", 3, 10_000_000)
    buy_round_robin(world, "k-relever", 24)  # ~12万 of stock on 10万 margin
    m = monitor_for(world, {who: 3}, 10_000)
    keeper = Keeper(world.chain, m, config=KeeperConfig(cooldown_s=0))
    assert keeper.mark_references() == 1
    assets0, equity0 = keeper.reference(who)
    assert 0 < assets0 - equity0 < 3_000_000  # debt ≈ 2万
    # Act: a new financed buy fills (debt ×4); the monitor learns it from the chain
    buy_round_robin(world, "k-relever", 12)
    m = monitor_for(world, {who: 3}, 10_000)
    keeper.monitor = m
    # Assert: the reference follows — the chain's larger book, same equity
    assert keeper.mark_references() == 1
    assets1, equity1 = keeper.reference(who)
    acct = world.account(who)
    assert assets1 > assets0 + 5_000_000 and assets1 - equity1 == acct["debt_fen"]
    assert abs(equity1 - equity0) <= 10_000  # a financed buy does not change equity
    assert keeper.mark_references() == 0  # nothing grew since
    # an account below its reference equity that levers up keeps its old reference
    set_haircut(world, 9_800)  # equity −2% of assets: above the 5% stop
    try:
        buy_round_robin(world, "k-relever", 6)
        keeper.monitor = monitor_for(world, {who: 3}, 9_800)
        assert world.account(who)["debt_fen"] * 10_000 > (assets1 - equity1) * 10_100
        assert keeper.mark_references() == 0
        assert keeper.reference(who) == (assets1, equity1)
    finally:
        set_haircut(world, 10_000)


def test_the_stressed_set_phases_in_on_chain_and_the_switch_day_values_at_calm_haircuts(
    world: World,
) -> None:
    """The operator's schedule (`apply_on_chain` with the stressed run): the switch day sets
    the Liquidator's line share to 0 and the stressed haircut scale to 100% before the regime,
    so no account's value or line moves at the switch; each later stressed day 1/5 more; calm
    again, the full stressed set is back (what the transparency page shows)."""
    from crowdleverage.risk.regime import Regime, RegimePoint, apply_on_chain, stressed_run

    day = world.chain.call("PriceOracle", "trading_day")
    who = levered_borrower(world, "k-phase", 3)
    calm_ratio = world.account(who)["ratio_bps"]

    def point(regime: Regime) -> RegimePoint:
        return RegimePoint(dt.date(2016, 1, 4), regime, False, 12_000, 0, 0, 900, ())

    def chain_set() -> tuple[int, int]:
        line = int(world.chain.call("Liquidator", "stressed_line_bps"))
        return line, int(world.chain.call("RiskParams", "stressed_haircuts")[0])

    try:
        assert apply_on_chain(world.chain, point(Regime.STRESSED), run=1)
        assert int(world.chain.call("OrderBook", "regime")) == 1
        assert chain_set() == (0, 10_000)
        assert world.chain.call("RiskParams", "haircut", CHAIN_CODES[0], day) == 10_000
        assert world.account(who)["ratio_bps"] == calm_ratio  # the switch moved nothing
        with pytest.raises(ContractRevert, match="margin: above liquidation line"):
            world.chain.send("Liquidator", "start_liquidation", who, actor="keeper")
        assert not apply_on_chain(world.chain, point(Regime.STRESSED), run=2)
        assert chain_set() == (1_800, 9_800)
        assert world.chain.call("RiskParams", "haircut", CHAIN_CODES[0], day) == 9_800
        apply_on_chain(world.chain, point(Regime.STRESSED), run=9)
        assert chain_set() == (P.STRESSED_LINE_BPS, P.STRESSED_HAIRCUT_SCALE_BPS)
    finally:
        apply_on_chain(world.chain, point(Regime.CALM), run=0)
    assert int(world.chain.call("OrderBook", "regime")) == 0
    assert chain_set() == (P.STRESSED_LINE_BPS, P.STRESSED_HAIRCUT_SCALE_BPS)
    pts = [point(Regime.CALM), point(Regime.STRESSED), point(Regime.STRESSED)]
    assert stressed_run(pts) == 2 and stressed_run(pts[:1]) == 0


def test_a_stressed_haircut_step_at_flat_prices_moves_no_account_to_its_nav_stop(
    world: World,
) -> None:
    """The stressed set phases in at unchanged prices: the haircut steps lower the account's
    collateral value, but the keeper moves its NAV-stop reference equity by the same fen
    (`Liquidator.shift_references`), so an account 2% into its 5% stop is not stopped by two
    2% steps; without the shift it would be (checked with the Liquidator's own rule). Calm
    again, the haircuts and the reference come back."""
    from crowdleverage.chain.structs import read_reference
    from crowdleverage.risk.regime import Regime, RegimePoint, apply_on_chain

    # Arrange: a tier-3 account (~133%) with its reference, then a 2% "market" fall of its
    # collateral value (the board haircut as the stand-in for prices, as above)
    who = levered_borrower(world, "k-shift", 3)
    keeper = Keeper(world.chain, monitor_for(world, {who: 3}, 10_000),
                    config=KeeperConfig(cooldown_s=0))  # fmt: skip
    assert keeper.mark_references() == 1
    ref0 = read_reference(world.chain, who)
    set_haircut(world, 9_800)

    def point(regime: Regime) -> RegimePoint:
        return RegimePoint(dt.date(2016, 1, 4), regime, False, 12_000, 0, 0, 900, ())

    def stopped(ref_equity: int) -> bool:
        a = world.account(who)
        return P.nav_stopped(a["assets_fen"], a["debt_fen"], ref0.assets, ref_equity)

    try:
        keeper.monitor = monitor_for(world, {who: 3}, 9_800)
        assert not stopped(ref0.equity)  # 2% of its assets below: inside the 5% stop
        # Act: the switch day (no haircut change) and two phase steps (scale 98%, 96%)
        for run in (1, 2, 3):
            apply_on_chain(world.chain, point(Regime.STRESSED), run=run, references=keeper)
        # Assert: 2 × ~2% of collateral value went, the reference equity with it
        ref = read_reference(world.chain, who)
        assert ref.assets == ref0.assets
        drop = ref0.equity - ref.equity
        assert ref0.assets * 300 // 10_000 < drop < ref0.assets * 450 // 10_000
        assert stopped(ref0.equity)  # the old reference would have stopped it: no market loss
        assert not stopped(ref.equity)
        with pytest.raises(ContractRevert, match="margin: above liquidation line"):
            world.chain.send("Liquidator", "start_liquidation", who, actor="keeper")
        m = monitor_for(world, {who: 3}, P.stressed_haircut_bps(9_800, scale_bps=9_600))
        keeper.monitor = m
        keeper.on_tick(m.tick(), "2016-01-06")
        assert keeper.stats.calls["start_liquidation"] == 0
        shifts = [e.args for e in world.chain.events("Liquidator", "ReferenceShifted")
                  if e.args["account"] == who]  # fmt: skip
        assert [s["up"] for s in shifts] == [False, False]
    finally:
        apply_on_chain(world.chain, point(Regime.CALM), run=0, references=keeper)
        set_haircut(world, 10_000)
    # calm again: the haircuts rose back, and the reference equity with them (to the fen's
    # rounding of the per-security haircut values)
    assert abs(read_reference(world.chain, who).equity - ref0.equity) <= 100
    with pytest.raises(ContractRevert, match="margin: caller is not keeper"):
        world.chain.send("Liquidator", "shift_references", [who], [1], True, actor="k-shift")
    with pytest.raises(ContractRevert, match="margin: shift out of bounds"):
        world.chain.send("Liquidator", "shift_references", [who], [ref0.assets], False,
                         actor="keeper")  # fmt: skip


class _Killed(BaseException):
    """The process dies (not an error the keeper could handle)."""


class _DiesAtShift:
    """The keeper's chain, killing the process at its `shift_references` number `at` (0-based)."""

    def __init__(self, chain: object, at: int) -> None:
        self._chain, self._at = chain, at

    def __getattr__(self, name: str) -> object:
        return getattr(self._chain, name)

    def send(self, contract: str, fn: str, *args: object, actor: str) -> object:
        if fn == "shift_references":
            if self._at == 0:
                raise _Killed
            self._at -= 1
        return self._chain.send(contract, fn, *args, actor=actor)  # type: ignore[attr-defined]


@pytest.mark.parametrize("killed_at", [0, 1])
def test_a_restart_between_a_haircut_step_and_its_shifts_completes_them(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, killed_at: int
) -> None:
    """The process dies after the stressed phase step is on chain and before (0) or between
    (1: one account per call) its reference shifts: the restarted keeper finds the shift file
    written before the step and shifts each reference that was not shifted yet, once — as the
    step alone would have. Without the file the restart would leave the step as a loss."""
    from crowdleverage.chain.structs import read_reference
    from crowdleverage.risk import keeper as keeper_module
    from crowdleverage.risk.regime import Regime, RegimePoint, apply_on_chain

    monkeypatch.setattr(keeper_module, "KEEP_BATCH", 1)
    names = [f"k-kill{killed_at}-{i}" for i in range(2)]
    accounts = {levered_borrower(world, n, 3): 3 for n in names}
    journal = tmp_path / "keeper.json"

    def point(regime: Regime) -> RegimePoint:
        return RegimePoint(dt.date(2016, 1, 4), regime, False, 12_000, 0, 0, 900, ())

    def keeper(chain: object) -> Keeper:
        return Keeper(chain, monitor_for(world, accounts, 10_000),
                      config=KeeperConfig(cooldown_s=0), journal=journal)  # fmt: skip

    first = keeper(_DiesAtShift(world.chain, killed_at))
    assert first.mark_references() == 2
    refs0 = {w: read_reference(world.chain, w) for w in accounts}

    def shifts(w: str) -> list[bool]:
        return [bool(e.args["up"]) for e in world.chain.events("Liquidator", "ReferenceShifted")
                if e.args["account"] == w]  # fmt: skip

    try:
        # Act: the switch day (no haircut change), then the first phase step, killed
        apply_on_chain(world.chain, point(Regime.STRESSED), run=1, references=first)
        with pytest.raises(_Killed):
            apply_on_chain(world.chain, point(Regime.STRESSED), run=2, references=first)
        assert journal.with_suffix(".shift.json").exists()
        assert sum(len(shifts(w)) for w in accounts) == killed_at  # what landed before
        # the restart: a new keeper, the same journal, the session's open again
        apply_on_chain(world.chain, point(Regime.STRESSED), run=2, references=keeper(world.chain))
        # Assert: each reference shifted down once, by the step's ~2% of its collateral value
        assert not journal.with_suffix(".shift.json").exists()
        for w, ref0 in refs0.items():
            assert shifts(w) == [False]
            drop = ref0.equity - read_reference(world.chain, w).equity
            assert ref0.assets * 150 // 10_000 < drop < ref0.assets * 250 // 10_000
    finally:
        apply_on_chain(world.chain, point(Regime.CALM), run=0, references=keeper(world.chain))
    for w, ref0 in refs0.items():  # calm again: the step undone, the reference with it
        assert abs(read_reference(world.chain, w).equity - ref0.equity) <= 100


def test_the_reference_follows_an_intraday_financed_buy_at_its_tick(world: World) -> None:
    """A financed buy settles during the session: the tick's follow-up (the session's
    `finish_step`: chain sync, then `follow_up(new_session=False)`) re-marks the NAV-stop
    reference at once, not at the next session's open; a tick without one sends nothing."""
    # Arrange: a tier-3 account with a little debt and its reference; a monitor kept in step
    # with the chain through its events, as the session's
    who = world.open_borrower("k-intraday", 3, 10_000_000)
    buy_round_robin(world, "k-intraday", 24)
    m = monitor_for(world, {who: 3}, 10_000)
    sync = ChainSync(world.chain, m)
    sync.sync()
    keeper = Keeper(world.chain, m, config=KeeperConfig(cooldown_s=0))
    assert keeper.mark_references() == 1
    assets0, equity0 = keeper.reference(who)
    keeper.follow_up([], new_session=False)  # a quiet tick
    assert keeper.stats.calls["set_reference"] == 1
    # Act: intraday, the account levers up (debt ×4) and the tick's fills settle on chain
    buy_round_robin(world, "k-intraday", 12)
    sync.sync()
    keeper.follow_up([], new_session=False)
    # Assert: re-marked at this tick, from the chain's larger book
    assert keeper.stats.calls["set_reference"] == 2
    assets1, equity1 = keeper.reference(who)
    assert assets1 > assets0 + 5_000_000 and assets1 - equity1 == world.account(who)["debt_fen"]
    assert abs(equity1 - equity0) <= 10_000
    keeper.follow_up([], new_session=False)  # nothing grew since: no transaction
    assert keeper.stats.calls["set_reference"] == 2


def test_a_part_budget_sizes_the_keepers_batches_by_the_cpu_per_action_kind() -> None:
    """Without a part budget a `keep` batch takes up to `KEEP_BATCH` actions; with one, the
    actions estimated to fit in it (a kind not timed yet: a share of the budget, a
    liquidation's start all of it), the estimates following what batches took; a budget of
    0: one action a batch."""
    keeper = Keeper(None, RiskMonitor([], []))
    warns = [(f"0x{i:040x}", "warn") for i in range(70)]
    starts = [(f"0x{i:040x}", "start_liquidation") for i in range(3)]
    assert keeper._chunk(warns) == KEEP_BATCH
    keeper.part_budget_s = 0.0
    assert keeper._chunk(warns) == keeper._chunk(starts) == 1
    keeper.part_budget_s = 0.04
    assert keeper._chunk(warns) == round(1 / FIRST_ACTION_SHARE)
    assert keeper._chunk(starts) == 1
    keeper._timed(warns[:4], 0.0004)  # 0.1 ms each
    assert keeper._chunk(warns) == KEEP_BATCH
    assert keeper._chunk([*warns[:3], *starts]) == 3  # the start would not fit after them
    keeper._timed(starts[:1], 0.01)
    assert keeper._chunk(starts) == 3
