"""The regime hook (OrderBook.set_regime): operator only, bounded, logged with old and new; in
the stressed regime a buy that draws financing is refused, own-cash buys and sells go on."""

from __future__ import annotations

import boa
import pytest
from fin_system import CMB, PAB, YUAN, Platform


@pytest.fixture
def p(platform: Platform) -> Platform:
    platform.fund_pool((10_000, 500, 100, 10_500, 30, 30_000))
    return platform


def test_set_regime_is_bounded_logged_and_operator_only(p: Platform) -> None:
    with boa.reverts("margin: caller is not operator"):
        p.orderbook.set_regime(1, 3_000, sender=p.keeper)
    with boa.reverts("margin: unknown regime"):
        p.orderbook.set_regime(2, 3_000, sender=p.operator)
    p.orderbook.set_regime(1, 3_000, sender=p.operator)
    [log] = [e for e in p.orderbook.get_logs() if type(e).__name__ == "RegimeChanged"]
    assert (log.old, log.new, log.indicator_bps) == (0, 1, 3_000)
    assert p.orderbook.regime() == 1


def test_stressed_regime_refuses_new_financing_only(p: Platform) -> None:
    who = p.open_borrower("regime_borrower", 3, 100_000 * YUAN)
    p.buy(who, PAB, 5_000)  # 50k of own cash: no draw
    p.orderbook.set_regime(1, 3_000, sender=p.operator)
    debt0, cash0 = p.engine.debt_of(who), p.engine.accounts(who)[1]
    with boa.reverts("stressed regime: no new financing"):
        p.orderbook.request_buy(CMB, 10_000, 1_000, sender=who)  # 100k: needs financing
    assert (p.engine.debt_of(who), p.engine.accounts(who)[1]) == (debt0, cash0)
    p.buy(who, CMB, 1_000)  # 10k of own cash still buys
    p.next_day()
    p.orderbook.request_sell(PAB, 1_000, 1_000, sender=who)
    p.orderbook.set_regime(0, 1_000, sender=p.operator)
    p.orderbook.request_buy(CMB, 10_000, 1_000, sender=who)
    assert p.engine.debt_of(who) > debt0
