"""The platform's use cases on the real financing contracts (embedded chain), the exchange and
the broker, with the December 2015 bars: pool subscriptions at the epoch close, a margin
account that buys through the engine's pre-trade checks and fills asynchronously."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdleverage.audit.reconcile import ChainGateway, Reconciler
from crowdleverage.chain.codes import code_to_chain
from crowdleverage.chain.margin import ORDERBOOK, margin_events
from crowdleverage.chain.roles import Role
from crowdleverage.config import SHIPPED_DATA
from crowdleverage.custody.bridge import Bridge, ref32
from crowdleverage.custody.db import make_engine
from crowdleverage.custody.service import CustodyService
from crowdleverage.domain.errors import ContractRevert, InvalidInput
from crowdleverage.flows.chain_financing import ChainFinancing, actor, precheck_order_amounts
from crowdleverage.market.bars import read_bars
from crowdleverage.market.exchange import Fill, Order
from crowdleverage.market.replay import TradingDay, trading_days
from crowdleverage.risk.session import EpochClose, SessionObserver
from crowdleverage.risk.world import open_financing_chain

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "custody"))
import bridge_crash_worker as bw  # the custody tests' bank statements

DATA = SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv"
CODES = ["000001", "600004", "600406"]
GENESIS = 1_451_350_800  # 2015-12-29 09:00 Asia/Shanghai
WAN = 10_000 * 100
SENIOR_INVESTOR, JUNIOR_INVESTOR, BORROWER = 1, 2, 3


@pytest.fixture(scope="module")
def days() -> list[TradingDay]:
    return list(trading_days(read_bars(DATA), dt.date(2015, 12, 30), dt.date(2015, 12, 31)))


@pytest.fixture
def fin(tmp_path: Path) -> Iterator[ChainFinancing]:
    users = [actor(u) for u in (SENIOR_INVESTOR, JUNIOR_INVESTOR, BORROWER)]
    chain = open_financing_chain(tmp_path / "chain", users, genesis_time_s=GENESIS)
    f = ChainFinancing(chain, codes=CODES, work_dir=tmp_path)
    f.list_securities(CODES)
    yield f
    f.close()
    chain.close()


def fund_pool(fin: ChainFinancing) -> None:
    for uid, senior, amount in (
        (SENIOR_INVESTOR, True, 4_000 * WAN),
        (JUNIOR_INVESTOR, False, 1_000 * WAN),
    ):
        fin.register(uid, Role.INVESTOR)
        fin.mint(uid, amount, ledger_transfer_id=1_000 + uid)
        fin.subscribe(uid, senior, amount)


def test_subscriptions_execute_at_the_epoch_close(fin: ChainFinancing) -> None:
    fund_pool(fin)
    assert fin.units(SENIOR_INVESTOR, True) == 0 and fin.wallet_fen(SENIOR_INVESTOR) == 0
    fin.close_epoch()
    assert fin.units(SENIOR_INVESTOR, True) > 0 and fin.units(JUNIOR_INVESTOR, False) > 0
    assert fin.navs() == (4_000 * WAN, 1_000 * WAN)


def test_senior_alone_waits_for_junior_capital(fin: ChainFinancing) -> None:
    fin.register(SENIOR_INVESTOR, Role.INVESTOR)
    fin.mint(SENIOR_INVESTOR, 100 * WAN, ledger_transfer_id=7)
    fin.subscribe(SENIOR_INVESTOR, True, 100 * WAN)
    fin.close_epoch()
    assert fin.units(SENIOR_INVESTOR, True) == 0  # minimum junior ratio: still queued


def test_redemption_pays_out_after_the_close(fin: ChainFinancing) -> None:
    fund_pool(fin)
    fin.close_epoch()
    units = fin.units(SENIOR_INVESTOR, True)
    fin.redeem(SENIOR_INVESTOR, True, units // 4)
    fin.close_epoch()
    paid = fin.collect(SENIOR_INVESTOR)
    assert paid >= 1_000 * WAN - 1 and fin.wallet_fen(SENIOR_INVESTOR) == paid
    fin.burn(SENIOR_INVESTOR, paid, ledger_transfer_id=99)
    assert fin.wallet_fen(SENIOR_INVESTOR) == 0


def test_a_mint_reference_is_used_once(fin: ChainFinancing) -> None:
    fin.register(SENIOR_INVESTOR, Role.INVESTOR)
    fin.mint(SENIOR_INVESTOR, 100, ledger_transfer_id=5)
    with pytest.raises(ContractRevert):
        fin.mint(SENIOR_INVESTOR, 100, ledger_transfer_id=5)


def test_levered_buy_fills_through_the_broker(fin: ChainFinancing, days: list[TradingDay]) -> None:
    fund_pool(fin)
    fin.close_epoch()
    fin.open_account(BORROWER, 2)
    fin.mint(BORROWER, 50 * WAN, ledger_transfer_id=2_000)
    fin.deposit(BORROWER, 50 * WAN, reserve=False)
    day = days[-1]
    fin.session.open(day)
    wanted = {}
    for code in CODES:  # three lines of ~18万 each (≤ 40% of the account each): 54万 on 50万
        limit = day.bars[code].band.limit_up_fen
        wanted[code] = 18 * WAN // limit // 100 * 100
        fin.request_buy(BORROWER, code, wanted[code], limit)
    assert fin.position(BORROWER, "000001") == 0  # requested, not yet filled
    assert fin.account(BORROWER).debt_fen > 0  # financing drawn at the request
    seen = Seen()
    fin.session.observer = seen
    fin.session.close(EpochClose.SKIP)
    assert {c: fin.position(BORROWER, c) for c in CODES} == wanted
    # the session's hooks saw every fill before it was settled, and nothing left to expire
    assert {c: sum(f.quantity for f in seen.fills if f.code == c) for c in CODES} == wanted
    assert seen.expired == []
    acc = fin.account(BORROWER)
    assert acc.debt_fen > 0 and acc.pending_fen == 0
    assert acc.ratio_bps is not None and acc.ratio_bps >= 15_000


class Seen(SessionObserver):
    def __init__(self) -> None:
        self.fills: list[Fill] = []
        self.expired: list[Order] | None = None

    def on_fills(self, day: TradingDay, fills: list[Fill]) -> None:
        self.fills.extend(fills)

    def on_expired(self, day: TradingDay, expired: list[Order]) -> None:
        self.expired = expired


def test_the_session_closes_the_epoch_as_told(fin: ChainFinancing) -> None:
    fund_pool(fin)
    first = fin.close_epoch()  # waited out: the subscriptions executed
    assert first.executed == 2 and first.figures
    s = fin.session
    assert s.epoch_due_in_s() > 0
    assert s.close_epoch(EpochClose.SKIP) is None
    assert s.close_epoch(EpochClose.DUE) is None  # not due: left open
    fin.chain.advance_time(s.epoch_due_in_s())
    due = s.close_epoch(EpochClose.DUE)
    assert due is not None and due.executed == 0
    assert s.epoch_due_in_s() > 0  # a new epoch started


def test_pre_trade_check_is_the_contracts(fin: ChainFinancing, days: list[TradingDay]) -> None:
    fund_pool(fin)
    fin.close_epoch()
    fin.open_account(BORROWER, 1)
    fin.mint(BORROWER, 10 * WAN, ledger_transfer_id=3_000)
    fin.deposit(BORROWER, 10 * WAN, reserve=False)
    fin.session.open(days[-1])
    with pytest.raises(ContractRevert, match="margin: "):
        fin.request_buy(BORROWER, "000001", 100_000, days[-1].bars["000001"].open)
    assert fin.account(BORROWER).debt_fen == 0  # nothing written
    fin.withdraw(BORROWER, 10 * WAN, reserve=False)  # no debt: everything can leave
    assert fin.wallet_fen(BORROWER) == 10 * WAN


@pytest.mark.parametrize(
    ("fn", "qty", "limit"),
    [("request_buy", 0, 1_000), ("request_buy", 100, 0),
     ("request_sell", 0, 1_000), ("request_sell", 100, 0)],
)  # fmt: skip
def test_precheck_order_amounts_agrees_with_the_contract(
    fin: ChainFinancing, fn: str, qty: int, limit: int
) -> None:
    fin.open_account(BORROWER, 1)
    with pytest.raises(InvalidInput):
        precheck_order_amounts(qty, limit)
    with pytest.raises(InvalidInput):  # the use case checks before the chain
        getattr(fin, fn)(BORROWER, "000001", qty, limit)
    with pytest.raises(ContractRevert, match="margin: "):  # the contract refuses the same
        fin.chain.send(ORDERBOOK, fn, code_to_chain("000001"), qty, limit,
                       actor=actor(BORROWER))  # fmt: skip
    precheck_order_amounts(100, 1_000)  # and lets a real order through to it


def test_the_keeper_acts_on_a_crash(fin: ChainFinancing, days: list[TradingDay]) -> None:
    """A tier-3 account levered near its initial line on 2015-12-31; in the circuit-breaker
    week (2016-01-04 and 01-07, −6% to −8% each) its equity falls below the NAV stop (5% of
    the reference assets the keeper recorded on the setup day) before its reserve would be
    used: the keeper starts a full liquidation on chain (the contract re-checks) and the
    reserve stays the borrower's."""
    fund_pool(fin)
    fin.close_epoch()
    fin.open_account(BORROWER, 3)
    fin.mint(BORROWER, 110 * WAN, ledger_transfer_id=4_000)
    fin.deposit(BORROWER, 100 * WAN, reserve=False)
    fin.deposit(BORROWER, 10 * WAN, reserve=True)
    setup = days[-1]
    fin.session.open(setup)
    for _ in range(12):  # rounds: the 40% limit is measured against assets that grow
        for code in CODES:
            limit = setup.bars[code].open * 101 // 100
            with contextlib.suppress(ContractRevert):  # a limit reached: the contract says no
                fin.request_buy(BORROWER, code, 12 * WAN // limit // 100 * 100, limit)
    fin.session.close(EpochClose.SKIP)
    before = fin.account(BORROWER)
    assert before.ratio_bps is not None and before.ratio_bps < 13_600
    seen = len(fin.chain.events())
    for crash in trading_days(read_bars(DATA), dt.date(2016, 1, 4), dt.date(2016, 1, 7)):
        fin.session.open(crash)
        fin.session.close(EpochClose.SKIP)
    # the keeper recorded the reference at the setup session's first tick (debt drawn)
    assert [e for e in margin_events(fin.chain) if e.event == "ReferenceSet"]
    events = margin_events(fin.chain, since=seen)
    acted = {e.event for e in events}
    assert "LiquidationStarted" in acted, acted
    assert all(e.args["full"] for e in events if e.event == "LiquidationStarted")
    assert "ToppedUp" not in acted  # the stop acts first: the reserve is not spent
    after = fin.account(BORROWER)
    assert after.reserve_fen == before.reserve_fen


def test_custody_cash_reaches_the_pool_and_comes_back(fin: ChainFinancing, tmp_path: Path) -> None:
    """Bank statement → custody ledger → CashToken minted to the investor's own address with
    the ledger transfer id as reference (custody.Bridge) → subscription at the epoch close;
    redemption → proceeds collected → burned → custody payout (pain.001)."""
    custody = CustodyService(make_engine(f"sqlite:///{tmp_path / 'custody.db'}"), bw.ACCOUNT)
    custody.setup()
    users = {"INV-0001": SENIOR_INVESTOR, "INV-0002": JUNIOR_INVESTOR, "INV-0003": BORROWER}
    for n, inv in enumerate(users, start=1):
        custody.register_investor(inv, name=inv, virtual_account=f"VA-{n}",
                                  reference=f"CLREF{n}", payout_account=f"62170{n}")  # fmt: skip
        fin.register(users[inv], Role.INVESTOR)
    bridge = Bridge(custody, fin.chain, lambda inv: fin.address(users[inv]))
    report = custody.import_statement(bw.round_statement(0))  # 10 000, 20 000, 30 000 fen
    assert bridge.process().minted == 3
    for dep in report.deposits:
        assert fin.chain.call("CashToken", "ref_used", ref32(dep.transfer_id))
        assert fin.wallet_fen(users[dep.investor_id]) == dep.amount_fen
    fin.subscribe(JUNIOR_INVESTOR, False, 20_000)
    fin.close_epoch()
    units = fin.units(JUNIOR_INVESTOR, False)
    assert units > 0 and fin.navs() == (0, 20_000)
    fin.redeem(JUNIOR_INVESTOR, False, units)
    fin.close_epoch()
    assert fin.collect(JUNIOR_INVESTOR) == 20_000
    bridge.redeem("INV-0002", 20_000, payout_id=77)
    assert fin.wallet_fen(JUNIOR_INVESTOR) == 0
    assert custody.investor_balances()["INV-0002"] == 20_000  # reserved until the bank pays
    result = Reconciler(custody).check(ChainGateway(fin.chain))
    assert result.ok, result


def test_sell_after_t_plus_1_then_repay_and_withdraw(
    fin: ChainFinancing, days: list[TradingDay]
) -> None:
    fund_pool(fin)
    fin.close_epoch()
    fin.open_account(BORROWER, 2)
    fin.mint(BORROWER, 50 * WAN, ledger_transfer_id=5_000)
    fin.deposit(BORROWER, 50 * WAN, reserve=False)
    setup = days[-1]
    fin.session.open(setup)
    for code in CODES:
        limit = setup.bars[code].band.limit_up_fen
        fin.request_buy(BORROWER, code, 18 * WAN // limit // 100 * 100, limit)
    fin.session.close(EpochClose.SKIP)
    held = fin.position(BORROWER, "000001")
    with pytest.raises(ContractRevert, match="margin: "):  # bought today: T+1 locked
        fin.request_sell(BORROWER, "000001", held, setup.bars["000001"].band.limit_down_fen)
    # 2016-01-05 (01-04 closed early on the circuit breaker, some sells sealed at limit-down)
    [next_day] = trading_days(read_bars(DATA), dt.date(2016, 1, 5), dt.date(2016, 1, 5))
    fin.session.open(next_day)
    for code in CODES:
        fin.request_sell(BORROWER, code, fin.position(BORROWER, code),
                         next_day.bars[code].band.limit_down_fen)  # fmt: skip
    fin.session.close(EpochClose.SKIP)
    assert all(fin.position(BORROWER, c) == 0 for c in CODES)
    debt = fin.account(BORROWER).debt_fen
    assert debt > 0
    fin.repay(BORROWER, debt, from_wallet=False)  # from the account's cash
    acc = fin.account(BORROWER)
    assert acc.debt_fen == 0 and acc.cash_fen > 0
    fin.withdraw(BORROWER, acc.cash_fen, reserve=False)  # no debt: everything can leave
    assert fin.wallet_fen(BORROWER) == acc.cash_fen
