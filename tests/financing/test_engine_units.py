"""MarginEngine: every external function, its positive path and its revert paths."""

from __future__ import annotations

import boa
import pytest
from fin_system import CMB, NEW_CODE, PAB, PINGAN, SMIC, ST_CODE, YUAN, Platform

from crowdleverage.chain.roles import Role

MARGIN_FEN = 100_000 * YUAN
DEFAULT_LIMITS = (4_000, 500, 100, 10_500, 30, 30_000)
RELAXED = (10_000, 500, 100, 10_500, 30, 30_000)


@pytest.fixture
def p(platform: Platform) -> Platform:
    """A 10m-yuan pool (8m senior, 2m junior)."""
    # most unit tests buy one security; the 40% rule has its own tests
    platform.fund_pool(RELAXED)
    return platform


@pytest.fixture
def borrower(p: Platform) -> str:
    return p.open_borrower("borrower", 3, MARGIN_FEN, 10_000 * YUAN)


# ------------------------------------------------------------------ accounts
def test_open_account_sets_tier_and_needs_compliance(p: Platform) -> None:
    who = p.new_actor("b", Role.BORROWER)
    with boa.reverts("margin: caller is not compliance"):
        p.engine.open_account(who, 2, sender=p.operator)
    with boa.reverts("margin: account is not a borrower"):
        p.engine.open_account(p.outsider, 2, sender=p.compliance)
    with boa.reverts("margin: unknown tier"):
        p.engine.open_account(who, 7, sender=p.compliance)
    p.engine.open_account(who, 2, sender=p.compliance)
    assert p.engine.accounts(who)[0] == 2


def test_tier_change_needs_no_debt(p: Platform, borrower: str) -> None:
    p.buy(borrower, PAB, 20_000)
    with boa.reverts("margin: repay before changing tier"):
        p.engine.open_account(borrower, 1, sender=p.compliance)


def test_deposit_to_margin_and_reserve(p: Platform, borrower: str) -> None:
    acct = p.engine.accounts(borrower)
    assert (acct[1], acct[2]) == (MARGIN_FEN, 10_000 * YUAN)
    assert p.cash.balanceOf(p.engine.address) == p.engine.held_fen() == MARGIN_FEN + 10_000 * YUAN
    with boa.reverts("margin: zero amount"):
        p.engine.deposit(0, False, sender=borrower)
    with boa.reverts("margin: no account"):
        p.engine.deposit(1, False, sender=p.outsider)


def test_withdraw_without_debt_takes_everything_even_paused(p: Platform, borrower: str) -> None:
    p.engine.pause(sender=p.operator)
    p.engine.withdraw(MARGIN_FEN, False, sender=borrower)
    p.engine.withdraw(10_000 * YUAN, True, sender=borrower)
    assert p.cash.balanceOf(borrower) == MARGIN_FEN + 10_000 * YUAN
    with boa.reverts("margin: insufficient cash"):
        p.engine.withdraw(1, False, sender=borrower)
    with boa.reverts("margin: insufficient reserve"):
        p.engine.withdraw(1, True, sender=borrower)


def test_withdraw_with_debt_only_above_withdrawal_line(p: Platform, borrower: str) -> None:
    p.buy(borrower, PAB, 10_000)  # 100k yuan of shares, no financing yet
    p.buy(borrower, CMB, 10_000)  # 100k more: financed
    assert p.engine.debt_of(borrower) > 0
    assert p.ratio(borrower) < 30_000
    with boa.reverts("margin: ratio below withdrawal line"):
        p.engine.withdraw(1, True, sender=borrower)
    p.engine.pause(sender=p.operator)
    with boa.reverts("margin: paused"):
        p.engine.withdraw(1, True, sender=borrower)


def test_repay_from_wallet_and_cash_interest_first(p: Platform, borrower: str) -> None:
    p.buy(borrower, PAB, 10_000)
    p.buy(borrower, CMB, 10_000)
    principal = p.engine.accounts(borrower)[4]
    boa.env.time_travel(seconds=30 * 86_400)
    debt = p.engine.debt_of(borrower)
    interest = debt - principal
    # 10% APR for 30 days on the principal, rounded up
    assert interest == pytest.approx(
        principal * 1_000 * 30 // (10_000 * 365), abs=5
    )  # index and debt each round up
    p.mint(borrower, debt)
    p.cash.approve(p.engine.address, debt, sender=borrower)
    pending0 = p.pool.interest_pending_fen()  # rounding dust of the released reservations
    engine_cash, held = p.cash.balanceOf(p.engine.address), p.engine.held_fen()
    pool_cash, idle = p.cash.balanceOf(p.pool.address), p.pool.idle_fen()
    p.engine.repay(debt + 5 * YUAN, True, sender=borrower)  # capped at the debt
    logs = p.engine.get_logs()  # the repayment's, the CashToken's included
    assert p.engine.debt_of(borrower) == 0
    assert p.pool.interest_pending_fen() - pending0 == interest
    # the wallet pays the pool directly, on the engine's allowance: one transfer
    moves = [(e.sender, e.receiver, e.value) for e in logs if type(e).__name__ == "Transfer"]
    assert moves == [(borrower, p.pool.address, debt)]
    assert (p.cash.balanceOf(p.engine.address), p.engine.held_fen()) == (engine_cash, held)
    assert p.cash.balanceOf(p.pool.address) - pool_cash == p.pool.idle_fen() - idle == debt
    assert p.cash.allowance(borrower, p.engine.address) == 0
    assert p.principal_owed() == p.pool.principal_out_fen() == p.engine.total_principal_fen() == 0
    with boa.reverts("margin: no debt"):
        p.engine.repay(1, False, sender=borrower)


def test_repay_from_cash_works_paused_and_checks_cash(p: Platform, borrower: str) -> None:
    p.buy(borrower, PAB, 10_000)
    p.buy(borrower, CMB, 10_000)
    p.engine.pause(sender=p.operator)
    with boa.reverts("margin: insufficient cash"):
        p.engine.repay(p.engine.debt_of(borrower), False, sender=borrower)
    p.mint(borrower, 1_000 * YUAN)
    p.cash.approve(p.engine.address, 1_000 * YUAN, sender=borrower)
    p.engine.deposit(1_000 * YUAN, False, sender=borrower)
    before = p.engine.debt_of(borrower)
    p.engine.repay(1_000 * YUAN, False, sender=borrower)
    # the scaled debt shrinks by no more than paid: at most 1 fen of rounding stays
    assert before - 1_000 * YUAN <= p.engine.debt_of(borrower) <= before - 1_000 * YUAN + 1
    with boa.reverts("margin: zero amount"):
        p.engine.repay(0, False, sender=borrower)


# ------------------------------------------------------------------ buys
def test_buy_draws_financing_and_settles(p: Platform, borrower: str) -> None:
    oid = p.orderbook.request_buy(PAB, 20_000, 1_000, sender=borrower)
    gross = 20_000 * 1_000
    cost = gross + (gross * 30 + 9_999) // 10_000
    drawn = cost - MARGIN_FEN
    # debt rounds up through the index: never below what was drawn, at most 1 fen above
    assert drawn <= p.engine.debt_of(borrower) <= drawn + 1
    assert p.pool.principal_out_fen() == drawn
    assert p.engine.accounts(borrower)[3] == cost  # pending
    p.orderbook.settle_fill(
        oid, p.orderbook.fill_count(oid), 5_000, 990, 1_500, p.ref(), sender=p.broker
    )
    assert p.cash.balanceOf(p.broker) == 5_000 * 990 + 1_500
    assert p.shares.balance_of(p.engine.address, PAB) == 5_000
    assert p.engine.positions(borrower, PAB) == 5_000
    assert p.engine.sellable(borrower, PAB) == 0  # T+1
    p.orderbook.cancel_order(oid, sender=p.broker)  # rest unfilled: released, financing repaid
    assert p.engine.accounts(borrower)[3] == 0
    # the unfilled financing went back; index rounding (up, for the platform) leaves <= 2 fen
    assert p.engine.debt_of(borrower) <= 2
    assert p.engine.buying(borrower, PAB) == 0
    assert p.engine.platform_qty(PAB) == 5_000
    p.next_day()
    assert p.engine.sellable(borrower, PAB) == 5_000


@pytest.mark.parametrize(
    ("code", "qty", "price", "reason"),
    [
        (PAB, 150, 1_000, "margin: quantity not whole lots"),
        (PAB, 0, 1_000, "margin: quantity not whole lots"),
        (PAB, 100, 0, "margin: zero price"),
        (ST_CODE, 100, 300, "margin: security not financeable"),
        (NEW_CODE, 100, 2_000, "margin: security not financeable"),
        (999_999, 100, 1_000, "margin: security not financeable"),
        (PAB, 100_000, 1_000, "margin: ratio below initial"),
        (CMB, 2_000, 1_000, "margin: single security above 40%"),
    ],
)
def test_buy_pre_trade_rejections(
    p: Platform, borrower: str, code: int, qty: int, price: int, reason: str
) -> None:
    p.buy(borrower, CMB, 10_000)
    p.buy(borrower, PINGAN, 10_000)
    p.params.set_limits(DEFAULT_LIMITS, sender=p.operator)
    with boa.reverts(reason):
        p.orderbook.request_buy(code, qty, price, sender=borrower)


def test_buy_rejected_halted_unreliable_paused_and_outsider(p: Platform, borrower: str) -> None:
    p.next_day(halted=frozenset({PAB}))
    with boa.reverts("margin: security not financeable"):
        p.orderbook.request_buy(PAB, 100, 1_000, sender=borrower)
    boa.env.time_travel(seconds=11 * 86_400)  # every report is stale
    with boa.reverts("oracle: price unreliable"):
        p.orderbook.request_buy(CMB, 100, 1_000, sender=borrower)
    p.engine.pause(sender=p.operator)
    with boa.reverts("margin: paused"):
        p.orderbook.request_buy(CMB, 100, 1_000, sender=borrower)
    p.engine.unpause(sender=p.operator)
    with boa.reverts("margin: caller is not borrower"):
        p.orderbook.request_buy(CMB, 100, 1_000, sender=p.outsider)


def test_buy_star_board_haircut_80(p: Platform, borrower: str) -> None:
    p.buy(borrower, SMIC, 800)  # 40k yuan at 50 yuan
    assets, debt, _ = p.state(borrower)
    assert debt == 0
    # filled at the limit without fee: the fee allowance came back
    assert assets == MARGIN_FEN - 800 * 5_000 + 800 * 5_000 * 8_000 // 10_000


def test_platform_exposure_and_utilisation_limits(p: Platform) -> None:
    p.params.set_limits((10_000, 500, 100, 10_500, 30, 30_000), sender=p.operator)
    big = p.open_borrower("big", 1, 600_000 * YUAN)
    # 5% of 10m = 500k yuan per security
    with boa.reverts("margin: platform exposure above 5%"):
        p.orderbook.request_buy(PAB, 50_100, 1_000, sender=big)
    p.params.set_limits((10_000, 10_000, 100, 10_500, 30, 30_000), sender=p.operator)
    p.pool.set_params(2_000, 10, 500, 1_000, 1_000, 86_400, sender=p.operator)
    with boa.reverts("pool: utilisation above limit"):
        p.orderbook.request_buy(PAB, 100_000, 1_000, sender=big)


def test_too_many_securities(p: Platform, borrower: str) -> None:
    p.params.set_limits((10_000, 10_000, 100, 10_500, 30, 30_000), sender=p.operator)
    codes = [600000 + i for i in range(11)]
    for code in codes:
        p.params.set_security(code, 10_000, False, 0, sender=p.operator)
        p.limit_bps[code] = 1_000
        p.oracle.set_day_params(code, 1_000, 900, 1_100, False, sender=p.operator)
        p.set_price(code, 1_000)
    for code in codes[:10]:
        p.buy(borrower, code, 100)
    with boa.reverts("margin: too many securities"):
        p.orderbook.request_buy(codes[10], 100, 1_000, sender=borrower)


# ------------------------------------------------------------------ fills
def test_fill_rejections(p: Platform, borrower: str) -> None:
    oid = p.buy(borrower, PAB, 1_000, fill=False)
    ref = p.ref()
    with boa.reverts("margin: caller is not broker"):
        p.orderbook.settle_fill(oid, 0, 100, 1_000, 0, ref, sender=p.outsider)
    with boa.reverts("margin: fill above limit"):
        p.orderbook.settle_fill(oid, 0, 100, 1_001, 0, ref, sender=p.broker)
    with boa.reverts("margin: fill exceeds order"):
        p.orderbook.settle_fill(oid, 0, 1_100, 1_000, 0, ref, sender=p.broker)
    with boa.reverts("margin: fill exceeds reserved cash"):
        p.orderbook.settle_fill(oid, 0, 1_000, 1_000, 10_000, ref, sender=p.broker)
    with boa.reverts("margin: empty fill reference"):
        p.orderbook.settle_fill(oid, 0, 100, 1_000, 0, b"\0" * 32, sender=p.broker)
    with boa.reverts("orderbook: fill out of sequence"):
        p.orderbook.settle_fill(oid, 1, 100, 1_000, 0, ref, sender=p.broker)
    assert p.orderbook.fill_count(oid) == 0
    p.orderbook.settle_fill(oid, 0, 100, 1_000, 0, ref, sender=p.broker)
    assert p.orderbook.fill_count(oid) == 1
    # a retried fill (the broker lost its journal entry) names a number already taken
    with boa.reverts("orderbook: fill already settled"):
        p.orderbook.settle_fill(oid, 0, 100, 1_000, 0, ref, sender=p.broker)
    assert p.orderbook.orders(oid)[6] == 100 and p.engine.positions(borrower, PAB) == 100
    p.orderbook.settle_fill(oid, 1, 900, 1_000, 0, p.ref(), sender=p.broker)
    assert p.orderbook.fill_count(oid) == 2
    # the closing fill retried: refused as settled, not as a closed order
    with boa.reverts("orderbook: fill already settled"):
        p.orderbook.settle_fill(oid, 1, 900, 1_000, 0, p.ref(), sender=p.broker)
    with boa.reverts("margin: order not open"):
        p.orderbook.settle_fill(oid, 2, 100, 1_000, 0, p.ref(), sender=p.broker)
    with boa.reverts("margin: order not open"):
        p.orderbook.cancel_order(oid, sender=p.broker)
    with boa.reverts("margin: caller is not broker"):
        p.orderbook.cancel_order(oid, sender=p.outsider)
    # the fills recorded no reference at the certificates (the order's count settles once),
    # so their reference-free paths are the engine's order book's alone
    assert not p.shares.ref_used(ref)
    for caller in (p.broker, p.operator, p.outsider):
        with boa.reverts("shares: caller is not order book"):
            p.shares.mint_fill(PAB, 100, p.ref(), sender=caller)
        with boa.reverts("shares: caller is not order book"):
            p.shares.burn_fill(PAB, 100, p.ref(), sender=caller)


def test_sell_flow_and_rejections(p: Platform, borrower: str) -> None:
    buy = p.buy(borrower, PAB, 1_100, fill=False)
    p.orderbook.settle_fill(
        buy, p.orderbook.fill_count(buy), 1_050, 1_000, 0, p.ref(), sender=p.broker
    )
    p.orderbook.cancel_order(buy, sender=p.broker)
    with boa.reverts("margin: not enough sellable shares"):
        p.orderbook.request_sell(PAB, 100, 1_000, sender=borrower)  # T+1
    p.next_day()
    with boa.reverts("margin: quantity not whole lots"):
        p.orderbook.request_sell(PAB, 150, 1_000, sender=borrower)
    with boa.reverts("margin: zero price"):
        p.orderbook.request_sell(PAB, 100, 0, sender=borrower)
    oid = p.orderbook.request_sell(PAB, 1_050, 1_000, sender=borrower)  # whole holding: odd ok
    with boa.reverts("margin: not enough sellable shares"):
        p.orderbook.request_sell(PAB, 100, 1_000, sender=borrower)
    p.cash.approve(p.engine.address, 10**9, sender=p.broker)
    with boa.reverts("margin: fill below limit"):
        p.orderbook.settle_fill(
            oid, p.orderbook.fill_count(oid), 100, 999, 0, p.ref(), sender=p.broker
        )
    with boa.reverts("margin: fee exceeds proceeds"):
        p.orderbook.settle_fill(
            oid, p.orderbook.fill_count(oid), 100, 1_000, 100_000, p.ref(), sender=p.broker
        )
    cash0 = p.engine.accounts(borrower)[1]
    p.sell_fill(oid, 1_000, 1_010, fee_fen=500)
    assert p.engine.accounts(borrower)[1] == cash0 + 1_000 * 1_010 - 500
    p.orderbook.cancel_order(oid, sender=p.broker)
    assert p.engine.sellable(borrower, PAB) == 50
    assert p.shares.total_supply(PAB) == 50


def test_an_order_is_one_slot_naming_the_account_by_its_id(p: Platform, borrower: str) -> None:
    """Orders keep the account's engine id (given at opening); the view gives the address."""
    n = p.engine.account_count()
    assert n >= 1 and p.engine.account_of(n) == borrower
    assert p.engine.account_of(n + 1) == "0x" + "00" * 20
    p.engine.open_account(borrower, 2, sender=p.compliance)  # a tier change keeps the id
    assert p.engine.account_count() == n and p.engine.account_of(n) == borrower
    oid = p.buy(borrower, PAB, 1_000, fill=False)
    o = p.orderbook.orders(oid)
    assert (o[0], o[1], o[2], o[4], o[5], o[6]) == (borrower, PAB, True, True, 1_000, 0)
    assert o[8] >= 1_000 * 1_000  # reserved: gross plus the fee allowance
    p.orderbook.settle_fill(
        oid, p.orderbook.fill_count(oid), 400, 990, 100, p.ref(), sender=p.broker
    )
    o = p.orderbook.orders(oid)
    assert (o[0], o[4], o[6]) == (borrower, True, 400)
    p.next_day()
    p.orderbook.cancel_order(oid, sender=p.broker)
    # a limit price beyond the order's 31 bits is refused when the order is written
    with boa.reverts("orders: too large"):
        p.orderbook.request_sell(PAB, 400, 2**31, sender=borrower)
    sell = p.orderbook.request_sell(PAB, 400, 2**31 - 1, sender=borrower)
    assert tuple(p.orderbook.orders(sell))[:7] == (borrower, PAB, False, False, True, 400, 0)
    assert p.orderbook.orders(sell)[7] == 2**31 - 1
    assert p.orderbook.orders(sell + (1 << 38))[0] == "0x" + "00" * 20  # unknown id: all zero
    assert p.orderbook.orders(sell + 1)[0] == "0x" + "00" * 20  # another account: none


def test_a_closed_orders_slot_is_reused_under_a_new_generation(p: Platform, borrower: str) -> None:
    """An account's next order takes its lowest closed slot with the generation bumped: the
    id is new (account id | slot << 32 | generation << 38), the old one reads as unknown, and
    at most 48 of a borrower's orders are open at once."""
    zero = "0x" + "00" * 20
    n = p.engine.account_count()
    first = p.buy(borrower, PAB, 100)  # filled: closed
    assert first == n | 1 << 38  # slot 0, generation 1
    assert p.orderbook.fill_count(first) == 1 and not p.orderbook.orders(first)[4]
    second = p.buy(borrower, PAB, 100, fill=False)
    assert second == n | 2 << 38  # slot 0 again, generation 2
    assert p.orderbook.orders(first)[0] == zero and p.orderbook.fill_count(first) == 0
    assert p.orderbook.orders(second)[0] == borrower and p.orderbook.fill_count(second) == 0
    # a fill or a cancel naming the superseded id settles nothing
    with boa.reverts("orderbook: unknown order"):
        p.orderbook.settle_fill(first, 1, 100, p.prices[PAB], 0, p.ref(), sender=p.broker)
    with boa.reverts("margin: order not open"):
        p.orderbook.cancel_order(first, sender=p.broker)
    opened = [second] + [p.buy(borrower, PAB, 100, fill=False) for _ in range(47)]
    assert opened[1:] == [n | s << 32 | 1 << 38 for s in range(1, 48)]
    assert p.orderbook.open_orders(n) == opened
    with boa.reverts("orderbook: too many open orders"):
        p.orderbook.request_buy(PAB, 100, p.prices[PAB], sender=borrower)
    p.orderbook.cancel_order(opened[3], sender=p.broker)
    again = p.buy(borrower, PAB, 100, fill=False)
    assert again == n | 3 << 32 | 2 << 38 and len({*opened, first, again}) == 50
    assert max(opened) < 2**53  # exact as a JSON number


def test_sell_blocked_in_sealed_limit_down(p: Platform, borrower: str) -> None:
    p.buy(borrower, PAB, 1_000)
    p.next_day({PAB: 900})
    assert p.oracle.is_sealed_limit_down(PAB)
    oid = p.orderbook.request_sell(PAB, 1_000, 900, sender=borrower)
    p.cash.approve(p.engine.address, 10**9, sender=p.broker)
    with boa.reverts("margin: sealed limit-down"):
        p.orderbook.settle_fill(
            oid, p.orderbook.fill_count(oid), 1_000, 900, 0, p.ref(), sender=p.broker
        )


# ------------------------------------------------------------------ keeper
def levered(p: Platform, borrower: str) -> None:
    p.params.set_limits(DEFAULT_LIMITS, sender=p.operator)
    p.build_portfolio(borrower, (PAB, CMB, PINGAN), step=20_000)
    p.next_day()


def test_warn_top_up_and_their_rejections(p: Platform, borrower: str) -> None:
    levered(p, borrower)
    with boa.reverts("margin: above warning line"):
        p.liquidator.warn(borrower, sender=p.keeper)
    with boa.reverts("margin: above warning line"):
        p.liquidator.top_up(borrower, sender=p.keeper)
    with boa.reverts("margin: caller is not keeper"):
        p.liquidator.warn(borrower, sender=p.outsider)
    p.next_day({c: 930 for c in (PAB, CMB, PINGAN)})
    ratio = p.ratio(borrower)
    assert ratio < 12_500
    p.liquidator.warn(borrower, sender=p.keeper)
    log = p.liquidator.get_logs()[0]
    assert (log.ratio_bps, log.warning_bps) == (ratio, 12_500)
    p.liquidator.top_up(borrower, sender=p.keeper)
    assert p.ratio(borrower) > ratio
    with boa.reverts("margin: no account"):
        p.liquidator.warn(p.outsider, sender=p.keeper)


def test_start_and_end_liquidation_rejections(p: Platform, borrower: str) -> None:
    levered(p, borrower)
    with boa.reverts("margin: above liquidation line"):
        p.liquidator.start_liquidation(borrower, sender=p.keeper)
    with boa.reverts("margin: not in liquidation"):
        p.liquidator.end_liquidation(borrower, sender=p.keeper)
    p.next_day({c: 900 for c in (PAB, CMB, PINGAN)})
    p.next_day({c: 810 for c in (PAB, CMB, PINGAN)})
    p.liquidator.start_liquidation(borrower, sender=p.keeper)
    with boa.reverts("margin: liquidation orders open"):
        p.liquidator.end_liquidation(borrower, sender=p.keeper)
    with boa.reverts("margin: account in liquidation"):
        p.engine.withdraw(1, True, sender=borrower)
    with boa.reverts("margin: account in liquidation"):
        p.orderbook.request_sell(PAB, 100, 900, sender=borrower)


def test_partial_liquidation_restores_and_unlocks(p: Platform, borrower: str) -> None:
    levered(p, borrower)
    p.next_day({c: 900 for c in (PAB, CMB, PINGAN)})
    p.next_day({c: 810 for c in (PAB, CMB, PINGAN)})  # 108%: between floor and line
    ratio0 = p.ratio(borrower)
    p.liquidator.start_liquidation(borrower, sender=p.keeper)
    events = [e for e in p.liquidator.get_logs() if type(e).__name__ == "LiquidationOrder"]
    assert events and not events[0].full
    held0 = sum(p.engine.positions(borrower, c) for c in (PAB, CMB, PINGAN))
    p.next_day({c: 800 for c in (PAB, CMB, PINGAN)})
    ratio_before = p.ratio(borrower)
    for e in events:
        p.sell_fill(e.order_id, e.qty, p.prices[e.code])
        # DESIGN §8.7: a liquidation fill never lowers the remaining position's ratio
        assert p.ratio(borrower) >= ratio_before
        ratio_before = p.ratio(borrower)
    sold = held0 - sum(p.engine.positions(borrower, c) for c in (PAB, CMB, PINGAN))
    assert 0 < sold < held0
    assert p.insurance.penalties_fen() > 0
    p.liquidator.end_liquidation(borrower, sender=p.keeper)
    assert not p.engine.accounts(borrower)[6]
    assert p.ratio(borrower) >= 11_500 > ratio0 - 1_000


# ------------------------------------------------------------------ operator
def test_operator_settings_and_rejections(p: Platform) -> None:
    tier = (4, 12_500, 12_000, 11_000, 1_200)
    with boa.reverts("params: caller is not operator"):
        p.params.set_tier(4, tier, sender=p.outsider)
    with boa.reverts("params: lines not ordered"):
        p.params.set_tier(4, (4, 12_000, 12_500, 11_000, 1_200), sender=p.operator)
    with boa.reverts("params: tier not in 1..8"):
        p.params.set_tier(9, tier, sender=p.operator)
    with boa.reverts("params: leverage not in 1..10"):
        p.params.set_tier(4, (0, 12_500, 12_000, 11_000, 1_200), sender=p.operator)
    p.params.set_tier(4, tier, sender=p.operator)
    assert p.params.tiers(4) == tier
    with boa.reverts("params: bad security code"):
        p.params.set_security(0, 10_000, False, 0, sender=p.operator)
    with boa.reverts("params: haircut above 100%"):
        p.params.set_security(PAB, 10_001, False, 0, sender=p.operator)
    with boa.reverts("params: limit above 100%"):
        p.params.set_limits((10_001, 500, 100, 10_500, 30, 30_000), sender=p.operator)
    with boa.reverts("params: fee above 100%"):
        p.params.set_limits((4_000, 500, 10_000, 10_500, 30, 30_000), sender=p.operator)
    with boa.reverts("params: caller is not operator"):
        p.params.set_limits((4_000, 500, 100, 10_500, 30, 30_000), sender=p.outsider)
    with boa.reverts("margin: not paused"):
        p.engine.unpause(sender=p.operator)
    p.engine.pause(sender=p.operator)
    with boa.reverts("margin: already paused"):
        p.engine.pause(sender=p.operator)
    with boa.reverts("margin: caller is not operator"):
        p.engine.unpause(sender=p.outsider)


def test_interest_index_monotonic_and_rate_change(p: Platform, borrower: str) -> None:
    p.buy(borrower, PAB, 10_000)
    p.buy(borrower, CMB, 10_000)
    d0 = p.engine.debt_of(borrower)
    boa.env.time_travel(seconds=1)
    d1 = p.engine.debt_of(borrower)
    assert d1 >= d0
    p.params.set_tier(3, (3, 13_300, 12_500, 11_500, 2_000), sender=p.operator)
    boa.env.time_travel(seconds=365 * 86_400)
    d2 = p.engine.debt_of(borrower)
    assert d2 >= d1 * 12_000 // 10_000  # 20% APR now, at least simple interest


def test_leverage_cap_of_the_tier_binds_beside_the_ratio(p: Platform) -> None:
    # a tier whose 120% initial line alone would allow 1:5; its 1:1 leverage cap binds
    p.params.set_tier(4, (1, 12_000, 11_500, 11_000, 800), sender=p.operator)
    who = p.open_borrower("capped", 4, 100_000 * YUAN)
    with boa.reverts("margin: leverage above tier"):
        p.orderbook.request_buy(PAB, 30_000, 1_000, sender=who)  # 300k on 100k: 1:2
    p.buy(who, PAB, 19_000)  # 190k on 100k: within 1:1
    assets, debt, _ = p.state(who)
    assert debt <= assets - debt


def test_pool_views_for_the_transparency_page(p: Platform, borrower: str) -> None:
    assets = p.pool.total_assets_fen()
    assert assets == 10_000_000 * YUAN
    assert p.pool.utilisation_bps() == 0
    p.buy(borrower, PAB, 20_000)  # ~100k financed
    out = p.pool.principal_out_fen()
    assert p.pool.utilisation_bps() == (out * 10_000 + assets - 1) // assets
    assert p.pool.navs() == (p.pool.senior_claim_fen(), p.pool.junior_claim_fen())
    assert p.engine.codes_of(borrower) == [PAB]


def test_frozen_borrower_can_neither_trade_nor_deposit(p: Platform, borrower: str) -> None:
    """Compliance enforcement on chain: a frozen (or expired/revoked) identity loses the
    borrower role check; repaying stays possible (DESIGN §8.10), trading and deposits do not."""
    p.mint(borrower, 1_000)
    p.cash.approve(p.engine.address, 1_000, sender=borrower)
    p.registry.set_frozen(borrower, True, sender=p.compliance)
    with boa.reverts("margin: caller is not borrower"):
        p.orderbook.request_buy(CMB, 100, p.prices[CMB], sender=borrower)
    with boa.reverts("cash: sender not verified"):  # the cash token refuses a frozen holder
        p.engine.deposit(1_000, False, sender=borrower)
    p.registry.set_frozen(borrower, False, sender=p.compliance)
    p.buy(borrower, CMB, 100)
    p.registry.revoke(borrower, sender=p.compliance)
    with boa.reverts("margin: caller is not borrower"):
        p.orderbook.request_buy(CMB, 100, p.prices[CMB], sender=borrower)


# ------------------------------------------------------------------ financing held at the pool
def _cash_conserved(p: Platform) -> None:
    """The engine holds the accounts' cash but the open orders' financing, which the pool
    holds until the fills pay the broker."""
    undisbursed = p.pool.undisbursed_fen()
    assert p.cash.balanceOf(p.engine.address) + undisbursed == p.engine.held_fen()
    open_drawn = sum(
        p.orderbook.orders(i)[9]
        for a in range(1, p.engine.account_count() + 1)
        for i in p.orderbook.open_orders(a)
    )
    assert undisbursed == open_drawn


def test_financing_stays_at_the_pool_until_the_fill(p: Platform, borrower: str) -> None:
    engine_cash, pool_cash = p.cash.balanceOf(p.engine.address), p.cash.balanceOf(p.pool.address)
    oid = p.buy(borrower, PAB, 20_000, fill=False)
    drawn = p.orderbook.orders(oid)[9]
    assert drawn > 0 and p.pool.undisbursed_fen() == drawn
    # the loan is booked, the cash has not moved
    assert p.cash.balanceOf(p.engine.address) == engine_cash
    assert p.cash.balanceOf(p.pool.address) == pool_cash
    _cash_conserved(p)
    broker_cash = p.cash.balanceOf(p.broker)
    price = p.prices[PAB]
    # a first part is paid from the account's own cash (financing is the last part reserved)
    own = p.orderbook.orders(oid)[8] - drawn
    first = own // price // 100 * 100
    p.orderbook.settle_fill(
        oid, p.orderbook.fill_count(oid), first, price, 0, p.ref(), sender=p.broker
    )
    assert p.pool.undisbursed_fen() == drawn and p.orderbook.orders(oid)[9] == drawn
    assert p.cash.balanceOf(p.engine.address) == engine_cash - first * price
    # the rest draws on the financing: the pool pays the broker
    p.orderbook.settle_fill(
        oid, p.orderbook.fill_count(oid), 20_000 - first, price, 0, p.ref(), sender=p.broker
    )
    assert p.cash.balanceOf(p.broker) == broker_cash + 20_000 * price
    assert p.pool.undisbursed_fen() == 0 and not p.orderbook.orders(oid)[4]
    _cash_conserved(p)
    assert p.pool.principal_out_fen() == p.principal_owed() > 0


def test_closed_order_returns_financing_the_debt_no_longer_needs(
    p: Platform, borrower: str
) -> None:
    """The borrower repays from free cash while a financed buy is open: at the cancel the
    order's financing repays what is still owed and the rest comes back to the engine as the
    account's cash."""
    p.buy(borrower, PAB, 5_000)  # debt-free: own cash
    oid = p.buy(borrower, CMB, 20_000, fill=False)
    drawn = p.orderbook.orders(oid)[9]
    debt = p.engine.debt_of(borrower)
    p.mint(borrower, debt)
    p.cash.approve(p.engine.address, debt, sender=borrower)
    p.engine.repay(debt // 2, True, sender=borrower)
    _cash_conserved(p)
    owed = p.engine.debt_of(borrower)
    assert owed < drawn
    engine_cash = p.cash.balanceOf(p.engine.address)
    p.orderbook.cancel_order(oid, sender=p.broker)
    assert p.engine.debt_of(borrower) == 0 and p.pool.undisbursed_fen() == 0
    assert p.cash.balanceOf(p.engine.address) == engine_cash + drawn - owed
    _cash_conserved(p)
    assert p.pool.principal_out_fen() == p.principal_owed() == 0


def test_settle_fills_settles_each_as_settle_fill(p: Platform, borrower: str) -> None:
    other = p.open_borrower("other", 3, MARGIN_FEN)
    a = p.buy(borrower, PAB, 20_000, fill=False)
    b = p.buy(other, CMB, 20_000, fill=False)
    price = (p.prices[PAB], p.prices[CMB])
    refs = [p.ref(), p.ref()]
    with boa.reverts("margin: caller is not broker"):
        p.orderbook.settle_fills([a], [0], [100], [price[0]], [0], refs[:1], sender=p.operator)
    with boa.reverts("margin: length mismatch"):
        p.orderbook.settle_fills([a, b], [0, 0], [100], price, [0, 0], refs, sender=p.broker)
    with boa.reverts("margin: length mismatch"):
        p.orderbook.settle_fills([a, b], [0], [100, 100], price, [0, 0], refs, sender=p.broker)
    # one bad item (above the limit) reverts the whole batch
    with boa.reverts("margin: fill above limit"):
        p.orderbook.settle_fills(
            [a, b],
            [0, 0],
            [20_000, 20_000],
            [price[0], price[1] + 1],
            [0, 0],
            refs,
            sender=p.broker,
        )
    assert p.orderbook.orders(a)[6] == 0
    n = p.orderbook.settle_fills(
        [a, b], [0, 0], [20_000, 10_000], list(price), [0, 0], refs, sender=p.broker
    )
    assert n == 2
    fills = [e for e in p.orderbook.get_logs() if type(e).__name__ == "Filled"]
    assert [(f.order_id, f.qty) for f in fills] == [(a, 20_000), (b, 10_000)]
    assert p.engine.positions(borrower, PAB) == 20_000 and p.engine.positions(other, CMB) == 10_000
    assert not p.orderbook.orders(a)[4] and p.orderbook.orders(b)[4]
    assert p.shares.balance_of(p.engine.address, CMB) == 10_000
    # the batch retried: its fills' numbers are taken
    with boa.reverts("orderbook: fill already settled"):
        p.orderbook.settle_fills([b], [0], [100], [price[1]], [0], refs[1:], sender=p.broker)
    # two fills of one order in one batch carry consecutive numbers
    with boa.reverts("orderbook: fill out of sequence"):
        p.orderbook.settle_fills(
            [b, b],
            [1, 3],
            [100, 100],
            [price[1]] * 2,
            [0, 0],
            [p.ref(), p.ref()],
            sender=p.broker,
        )
    p.orderbook.settle_fills(
        [b, b], [1, 2], [100, 100], [price[1]] * 2, [0, 0], [p.ref(), p.ref()], sender=p.broker
    )
    assert p.orderbook.fill_count(b) == 3 and p.orderbook.orders(b)[6] == 10_200
    _cash_conserved(p)
