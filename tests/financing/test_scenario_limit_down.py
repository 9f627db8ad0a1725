"""Acceptance scenarios with real numbers (DESIGN.md §5.4, §6, §7): a tier-3 (1:3) borrower
holding three main-board stocks through consecutive sealed limit-down days."""

from __future__ import annotations

from collections.abc import Iterator

import boa
import pytest
from fin_system import MAIN, YUAN, Platform, rollback

from crowdleverage.chain.roles import Role

SENIOR_FEN = 8_000_000 * YUAN
JUNIOR_FEN = 2_000_000 * YUAN
MARGIN_FEN = 300_000 * YUAN
RESERVE_FEN = 100_000 * YUAN
INSURANCE_SEED_FEN = 50_000 * YUAN


@pytest.fixture(scope="module")
def book(platform: Platform) -> Iterator[tuple[Platform, str]]:
    """Pool of 10m yuan (8m senior, 2m junior), 50k insurance seed, and a tier-3 borrower
    with 300k margin and 100k reserve levered to the initial line in 600000/600036/601318."""
    with rollback(platform):
        p = platform
        senior = p.new_actor("senior_investor", Role.INVESTOR)
        junior = p.new_actor("junior_investor", Role.INVESTOR)
        p.invest(senior, True, SENIOR_FEN)
        p.invest(junior, False, JUNIOR_FEN)
        p.close_epoch()
        p.mint(p.operator, INSURANCE_SEED_FEN)
        p.cash.transfer(p.insurance.address, INSURANCE_SEED_FEN, sender=p.operator)
        p.insurance.credit(INSURANCE_SEED_FEN, 0, sender=p.operator)
        borrower = p.open_borrower("tier3_borrower", 3, MARGIN_FEN, RESERVE_FEN)
        p.build_portfolio(borrower, MAIN, step=20_000)
        p.next_day()  # T+1: yesterday's buys become sellable
        yield p, borrower


def limit_down_day(p: Platform, sealed: bool = True) -> None:
    """Every main-board stock opens and stays at its limit-down price."""
    p.next_day({c: (p.prices[c] * 9_000 + 5_000) // 10_000 for c in MAIN})
    if sealed:
        assert all(p.oracle.is_sealed_limit_down(c) for c in MAIN)


def fill_liquidation(p: Platform, borrower: str, order_ids: list[int], price_of) -> None:
    for oid in order_ids:
        o = p.orderbook.orders(oid)
        p.sell_fill(oid, o[5] - o[6], price_of(o[1]))


def liquidation_orders(p: Platform, borrower: str) -> list[int]:
    """Order ids of the `LiquidationOrder` events of the last transaction."""
    return [
        e.order_id
        for e in p.liquidator.get_logs()
        if type(e).__name__ == "LiquidationOrder" and e.account == borrower
    ]


def test_book_is_levered_one_to_three(book: tuple[Platform, str]) -> None:
    p, borrower = book
    assets, debt, ratio = p.state(borrower)
    assert 13_300 <= ratio < 13_400
    assert debt > 2 * MARGIN_FEN  # financed more than twice the margin...
    assert debt <= 3 * (assets - debt)  # ...within 1:3
    values = [p.engine.positions(borrower, c) * p.prices[c] for c in MAIN]
    assert all(v * 10_000 <= 4_000 * assets for v in values)


def test_three_limit_down_days_insurance_covers_junior_untouched(
    book: tuple[Platform, str],
) -> None:
    p, borrower = book
    senior0, junior0 = p.pool.senior_claim_fen(), p.pool.junior_claim_fen()
    ins0 = p.insurance.balance_fen()
    # day 1: -10% -> below the 125% warning line, above 115%: warning, then top-up
    limit_down_day(p)
    ratio1 = p.ratio(borrower)
    assert 11_500 <= ratio1 < 12_500
    p.liquidator.warn(borrower, sender=p.keeper)
    with boa.reverts("margin: above liquidation line"):
        p.liquidator.start_liquidation(borrower, sender=p.keeper)
    p.liquidator.top_up(borrower, sender=p.keeper)
    assert p.engine.accounts(borrower)[2] == 0  # the whole reserve went in
    ratio1b = p.ratio(borrower)
    assert ratio1b > ratio1
    # day 2: -10% again: warning, nothing left to top up, still above liquidation
    limit_down_day(p)
    ratio2 = p.ratio(borrower)
    assert 11_500 <= ratio2 < 12_500
    with boa.reverts("margin: no reserve"):
        p.liquidator.top_up(borrower, sender=p.keeper)
    # day 3: -10% sealed: below 115% -> locked, liquidation orders queued, nothing fills
    limit_down_day(p)
    ratio3 = p.ratio(borrower)
    assert ratio3 < 11_500
    p.liquidator.start_liquidation(borrower, sender=p.keeper)
    orders = liquidation_orders(p, borrower)
    assert len(orders) == 3
    assert p.engine.accounts(borrower)[6]  # locked
    with boa.reverts("margin: account in liquidation"):
        p.orderbook.request_buy(MAIN[0], 100, p.prices[MAIN[0]], sender=borrower)
    o = p.orderbook.orders(orders[0])
    p.cash.approve(p.engine.address, 10**12, sender=p.broker)
    with boa.reverts("margin: sealed limit-down"):
        p.orderbook.settle_fill(
            orders[0],
            p.orderbook.fill_count(orders[0]),
            o[5],
            p.prices[o[1]],
            0,
            p.ref(),
            sender=p.broker,
        )
    # day 4: the seal opens: the stocks trade 9.5% down (above the limit): orders fill
    ended = open_and_sell_out(p, borrower, orders)
    # shortfall: insurance pays all of it; both tranches untouched
    assert 0 < ended.shortfall_fen < INSURANCE_SEED_FEN
    assert ended.insurance_paid_fen == ended.shortfall_fen
    assert p.insurance.balance_fen() == ins0 - ended.shortfall_fen
    assert p.pool.junior_claim_fen() == junior0
    assert p.pool.senior_claim_fen() == senior0
    assert p.pool.junior_loss_fen() == p.pool.senior_loss_fen() == 0
    assert p.engine.debt_of(borrower) == 0
    assert p.principal_owed() == p.pool.principal_out_fen() == 0
    assert p.engine.marked_loss_fen() == 0
    assert not p.engine.accounts(borrower)[6]


def open_and_sell_out(p: Platform, borrower: str, orders: list[int]):
    """The seal opens (-9.5%, not at the limit): the queued orders fill; the account is still
    below its line, so the keeper sells the rest and ends the liquidation."""
    p.next_day({c: (p.prices[c] * 9_050 + 5_000) // 10_000 for c in MAIN})
    assert not any(p.oracle.is_sealed_limit_down(c) for c in MAIN)
    fill_liquidation(p, borrower, orders, lambda code: p.prices[code])
    if p.engine.codes_of(borrower):
        with boa.reverts("margin: still below liquidation line"):
            p.liquidator.end_liquidation(borrower, sender=p.keeper)
        p.liquidator.start_liquidation(borrower, sender=p.keeper)
        fill_liquidation(p, borrower, liquidation_orders(p, borrower), lambda c: p.prices[c])
    assert p.engine.codes_of(borrower) == []
    p.liquidator.end_liquidation(borrower, sender=p.keeper)
    return next(e for e in p.liquidator.get_logs() if type(e).__name__ == "LiquidationEnded")


def test_five_sealed_days_reach_junior_senior_untouched(book: tuple[Platform, str]) -> None:
    p, borrower = book
    senior0, junior0 = p.pool.senior_claim_fen(), p.pool.junior_claim_fen()
    ins0 = p.insurance.balance_fen()
    limit_down_day(p)
    p.liquidator.top_up(borrower, sender=p.keeper)
    limit_down_day(p)
    limit_down_day(p)
    p.liquidator.start_liquidation(borrower, sender=p.keeper)
    orders = liquidation_orders(p, borrower)
    # two more sealed days: nothing can be sold, the provisional loss grows
    limit_down_day(p)
    limit_down_day(p)
    p.liquidator.start_liquidation(borrower, sender=p.keeper)  # orders open: re-mark only
    provision = p.engine.marked_loss_fen()
    assert provision > ins0
    # before anyone can exit, junior NAV carries the loss the insurance fund cannot cover
    assert p.pool.navs() == (senior0, junior0 - (provision - ins0))
    ended = open_and_sell_out(p, borrower, orders)
    loss = ended.shortfall_fen - ended.insurance_paid_fen
    assert ended.insurance_paid_fen == ins0  # the fund is exhausted first
    assert p.insurance.balance_fen() == 0
    assert loss > 0
    assert p.pool.junior_claim_fen() == junior0 - loss
    assert p.pool.junior_loss_fen() == loss
    assert p.pool.senior_claim_fen() == senior0
    assert p.pool.senior_loss_fen() == 0
