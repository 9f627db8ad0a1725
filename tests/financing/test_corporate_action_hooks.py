"""The engine's corporate-action hooks (credit_cash, adjust_position) and the certificates'
mint_adjustment: broker only, one-use references, events, T+1 locks carried over."""

from __future__ import annotations

import boa
import pytest
from fin_system import PAB, YUAN, Platform

MARGIN_FEN = 100_000 * YUAN


@pytest.fixture
def p(platform: Platform) -> Platform:
    platform.fund_pool((10_000, 500, 100, 10_500, 30, 30_000))
    return platform


@pytest.fixture
def borrower(p: Platform) -> str:
    return p.open_borrower("ca_borrower", 3, MARGIN_FEN)


def test_credit_cash_moves_the_dividend_into_margin_cash(p: Platform, borrower: str) -> None:
    net = 1_234 * YUAN
    p.mint(p.broker, net)
    p.cash.approve(p.engine.address, net, sender=p.broker)
    cash0, held0 = p.engine.accounts(borrower)[1], p.engine.held_fen()
    engine_bal0 = p.cash.balanceOf(p.engine.address)
    ref = p.ref()
    p.engine.credit_cash(borrower, net, ref, sender=p.broker)
    [log] = [e for e in p.engine.get_logs() if type(e).__name__ == "CashCredited"]
    assert (log.who, log.amount_fen, log.ref) == (borrower, net, ref)
    assert p.engine.accounts(borrower)[1] == cash0 + net
    assert p.engine.held_fen() == held0 + net
    assert p.cash.balanceOf(p.engine.address) == engine_bal0 + net
    assert p.cash.balanceOf(p.broker) == 0
    p.mint(p.broker, net)
    p.cash.approve(p.engine.address, net, sender=p.broker)
    with boa.reverts("margin: reference used"):
        p.engine.credit_cash(borrower, net, ref, sender=p.broker)
    with boa.reverts("margin: reference used"):
        p.engine.credit_cash(borrower, net, b"\x00" * 32, sender=p.broker)
    with boa.reverts("margin: caller is not broker"):
        p.engine.credit_cash(borrower, net, p.ref(), sender=p.keeper)
    with boa.reverts("margin: no account"):
        p.engine.credit_cash(p.outsider, net, p.ref(), sender=p.broker)
    with boa.reverts("margin: zero amount"):
        p.engine.credit_cash(borrower, 0, p.ref(), sender=p.broker)


def test_bonus_shares_scale_position_and_today_lock(p: Platform, borrower: str) -> None:
    p.buy(borrower, PAB, 3_000)  # yesterday: unlocked today
    p.next_day()
    p.buy(borrower, PAB, 1_000)  # today: T+1 locked
    assert p.engine.sellable(borrower, PAB) == 3_000
    exposure0 = p.engine.platform_qty(PAB)
    ref = p.ref()
    # 10-for-10 bonus issue (10送10): 4,000 -> 8,000, today's 1,000 locked -> 2,000
    p.engine.adjust_position(borrower, PAB, 8_000, ref, sender=p.broker)
    [log] = [e for e in p.engine.get_logs() if type(e).__name__ == "PositionAdjusted"]
    assert (log.who, log.code, log.old_qty, log.new_qty, log.ref) == (
        borrower, PAB, 4_000, 8_000, ref,
    )  # fmt: skip
    assert p.engine.positions(borrower, PAB) == 8_000
    assert p.engine.lots(borrower, PAB)[1] == 2_000
    assert p.engine.sellable(borrower, PAB) == 6_000
    assert p.engine.platform_qty(PAB) == exposure0 + 4_000
    # the broker mints the added certificates with the same lock
    custody0 = p.shares.balance_of(p.engine.address, PAB)
    locked0 = p.shares.locked_balance_of(p.engine.address, PAB)
    p.shares.mint_adjustment(p.engine.address, PAB, 4_000, 1_000, p.ref(), sender=p.broker)
    assert p.shares.balance_of(p.engine.address, PAB) == custody0 + 4_000
    assert p.shares.locked_balance_of(p.engine.address, PAB) == locked0 + 1_000
    assert p.shares.balance_of(p.engine.address, PAB) == p.engine.positions(borrower, PAB)
    p.next_day()
    assert p.engine.sellable(borrower, PAB) == 8_000
    assert p.shares.locked_balance_of(p.engine.address, PAB) == 0


def test_lock_scaling_rounds_down(p: Platform, borrower: str) -> None:
    p.buy(borrower, PAB, 300)
    # 3 shares per 10 (10转3): 300 -> 390, today's 300 locked -> 390; then 390 -> 391
    p.engine.adjust_position(borrower, PAB, 390, p.ref(), sender=p.broker)
    assert p.engine.lots(borrower, PAB)[1] == 390
    p.next_day()
    p.buy(borrower, PAB, 100)
    p.engine.adjust_position(borrower, PAB, 495, p.ref(), sender=p.broker)
    # today's lock 100 * 495 / 490 = 101.02 -> 101
    assert p.engine.lots(borrower, PAB)[1] == 101
    assert p.engine.sellable(borrower, PAB) == 495 - 101


def test_adjust_position_rejections(p: Platform, borrower: str) -> None:
    p.buy(borrower, PAB, 1_000)
    with boa.reverts("margin: caller is not broker"):
        p.engine.adjust_position(borrower, PAB, 2_000, p.ref(), sender=p.operator)
    with boa.reverts("margin: adjustment must increase position"):
        p.engine.adjust_position(borrower, PAB, 1_000, p.ref(), sender=p.broker)
    with boa.reverts("margin: adjustment must increase position"):
        p.engine.adjust_position(borrower, PAB, 500, p.ref(), sender=p.broker)
    with boa.reverts("margin: no position"):
        p.engine.adjust_position(p.outsider, PAB, 2_000, p.ref(), sender=p.broker)
    ref = p.ref()
    p.engine.adjust_position(borrower, PAB, 2_000, ref, sender=p.broker)
    with boa.reverts("margin: reference used"):
        p.engine.adjust_position(borrower, PAB, 4_000, ref, sender=p.broker)
    with boa.reverts("shares: locked above quantity"):
        p.shares.mint_adjustment(p.engine.address, PAB, 100, 101, p.ref(), sender=p.broker)
    with boa.reverts("shares: caller is not broker"):
        p.shares.mint_adjustment(p.engine.address, PAB, 100, 0, p.ref(), sender=p.operator)
    ref = p.ref()
    p.shares.mint_adjustment(p.engine.address, PAB, 100, 0, ref, sender=p.broker)
    with boa.reverts("shares: reference already used"):
        p.shares.mint_adjustment(p.engine.address, PAB, 100, 0, ref, sender=p.broker)
