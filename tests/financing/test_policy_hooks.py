"""Risk policy v2 hooks at RiskParams (issue 12 item 6 / issue 13 item 3): the stressed
regime's haircuts and the liquidity cap of financed buys. Setters are the operator's, bounded
and logged with old and new values; the regime set at the OrderBook reaches the haircuts in
the same call; a buy that draws financing is refused above the cap while one under it
passes (own-cash buys are not capped); sells, cancelled buys and liquidations give the
exposure back."""

from __future__ import annotations

import boa
import pytest
from fin_system import CMB, PAB, SMIC, ST_CODE, YUAN, Platform

from crowdleverage.domain import params as P

NO_SINGLE_LIMIT = (10_000, 500, 100, 10_500, 30, 30_000)  # 5% of pool = 500k yuan per code
LIQUIDITY = 2_000_000 * YUAN  # PAB's published 20-day average traded amount
CAP = LIQUIDITY * P.LIQUIDITY_CAP_BPS // P.BPS  # 200k yuan = 20,000 PAB at 10 yuan


@pytest.fixture
def p(platform: Platform) -> Platform:
    platform.fund_pool(NO_SINGLE_LIMIT)
    return platform


def logs(contract, name: str) -> list:
    return [e for e in contract.get_logs() if type(e).__name__ == name]


# ------------------------------------------------------------------ setters
def test_defaults_are_the_definition(p: Platform) -> None:
    assert tuple(p.params.stressed_haircuts()) == P.engine_stressed_haircuts()
    assert p.params.liquidity_cap_bps() == P.LIQUIDITY_CAP_BPS
    assert {b: v * 9_000 // 10_000 for b, v in P.HAIRCUT_BPS.items()} == P.STRESSED_HAIRCUT_BPS
    assert p.params.regime() == 0 and not p.params.liquidity_published(PAB)


def test_stressed_haircuts_setter_bounded_logged_operator_only(p: Platform) -> None:
    params = p.params
    with boa.reverts("params: caller is not operator"):
        params.set_stressed_haircuts(8_000, 0, sender=p.keeper)
    with boa.reverts("params: stressed scale not in 50..100%"):
        params.set_stressed_haircuts(4_999, 0, sender=p.operator)
    with boa.reverts("params: stressed scale not in 50..100%"):
        params.set_stressed_haircuts(10_001, 0, sender=p.operator)
    with boa.reverts("params: ST haircut above 50%"):
        params.set_stressed_haircuts(8_000, 5_001, sender=p.operator)
    params.set_stressed_haircuts(8_000, 1_000, sender=p.operator)
    [log] = logs(params, "StressedHaircutsSet")
    assert (tuple(log.old), tuple(log.new)) == (P.engine_stressed_haircuts(), (8_000, 1_000))


def test_liquidity_cap_setter_bounded_logged_operator_only(p: Platform) -> None:
    params = p.params
    with boa.reverts("params: caller is not operator"):
        params.set_liquidity_cap(500, sender=p.keeper)
    for bad in (0, 10_001):
        with boa.reverts("params: liquidity cap not in 1..10000"):
            params.set_liquidity_cap(bad, sender=p.operator)
    params.set_liquidity_cap(500, sender=p.operator)
    [log] = logs(params, "LiquidityCapSet")
    assert (log.old_bps, log.new_bps) == (P.LIQUIDITY_CAP_BPS, 500)


def test_liquidity_figures_setter_bounded_logged_operator_only(p: Platform) -> None:
    params = p.params
    with boa.reverts("params: caller is not operator"):
        params.set_liquidity([PAB], [1], sender=p.keeper)
    with boa.reverts("params: length mismatch"):
        params.set_liquidity([PAB, CMB], [1], sender=p.operator)
    with boa.reverts("params: bad security code"):
        params.set_liquidity([0], [1], sender=p.operator)
    with boa.reverts("params: bad security code"):
        params.set_liquidity([1_000_000], [1], sender=p.operator)
    with boa.reverts("params: amount too large"):
        params.set_liquidity([PAB], [2**128], sender=p.operator)
    assert params.liquidity_cap_fen(PAB) == 2**256 - 1  # never published: no cap
    params.set_liquidity([PAB], [7 * YUAN], sender=p.operator)
    params.set_liquidity([PAB], [0], sender=p.operator)
    *_, new = logs(params, "LiquiditySet")
    assert (new.code, new.old_fen, new.new_fen) == (PAB, 7 * YUAN, 0)
    # a published 0 is a figure (no trading): cap 0, unlike a figure never published
    assert params.liquidity_published(PAB) and params.liquidity_fen(PAB) == 0
    assert params.liquidity_cap_fen(PAB) == 0


def test_regime_mirror_only_from_the_order_book(p: Platform) -> None:
    with boa.reverts("params: caller is not order book"):
        p.params.params_regime(1, sender=p.operator)
    p.orderbook.set_regime(1, 12_000, sender=p.operator)
    assert p.params.regime() == 1
    p.orderbook.set_regime(0, 1_000, sender=p.operator)
    assert p.params.regime() == 0


# ------------------------------------------------------------------ stressed haircuts
def test_stressed_regime_raises_haircuts_on_chain(p: Platform) -> None:
    day = p.oracle.trading_day()
    normal = {c: p.params.haircut(c, day) for c in (PAB, SMIC, ST_CODE)}
    assert normal == {PAB: 10_000, SMIC: 8_000, ST_CODE: 0}
    who = p.open_borrower("haircut_borrower", 3, 100_000 * YUAN)
    p.buy(who, PAB, 10_000)  # 100k at 10 yuan, own cash
    p.buy(who, SMIC, 1_000)  # 50k at 50 yuan: 50k financed
    assets0 = p.engine.account_state(who)[0]
    p.orderbook.set_regime(1, 12_000, sender=p.operator)
    stressed = {c: p.params.haircut(c, day) for c in (PAB, SMIC, ST_CODE)}
    assert stressed == {PAB: 9_000, SMIC: 7_200, ST_CODE: 0}
    assert stressed[PAB] == P.stressed_haircut_bps(10_000)
    # the engine values the account at the stressed haircuts in the same block
    cut = 10_000 * 1_000 * 1_000 // 10_000 + 1_000 * 5_000 * 800 // 10_000
    assert p.engine.account_state(who)[0] == assets0 - cut
    assert list(p.params.haircuts([PAB, SMIC] + [0] * 8, day))[:2] == [9_000, 7_200]
    p.orderbook.set_regime(0, 1_000, sender=p.operator)
    assert p.engine.account_state(who)[0] == assets0


def test_stressed_st_haircut_never_above_the_normal_one(p: Platform) -> None:
    day = p.oracle.trading_day()
    p.params.set_st_haircut(3_000, sender=p.operator)
    p.params.set_stressed_haircuts(9_000, 5_000, sender=p.operator)
    p.orderbook.set_regime(1, 12_000, sender=p.operator)
    assert p.params.haircut(ST_CODE, day) == 2_700  # min(3000 × 90%, 5000)
    p.params.set_stressed_haircuts(9_000, 1_000, sender=p.operator)
    assert p.params.haircut(ST_CODE, day) == 1_000


# ------------------------------------------------------------------ liquidity cap
def test_buy_over_the_cap_reverts_under_it_passes(p: Platform) -> None:
    p.params.set_liquidity([PAB], [LIQUIDITY], sender=p.operator)
    assert p.params.liquidity_cap_fen(PAB) == CAP
    who = p.open_borrower("cap_borrower", 3, 100_000 * YUAN)
    p.buy(who, PAB, 15_000)  # 150k, 50k financed: exposure 150k <= 200k
    assert p.engine.debt_of(who) > 0 and p.engine.platform_qty(PAB) == 15_000
    debt0 = p.engine.debt_of(who)
    with boa.reverts("margin: above liquidity cap"):
        p.orderbook.request_buy(PAB, 5_100, 1_000, sender=who)  # 201k > 200k
    assert p.engine.debt_of(who) == debt0
    p.buy(who, PAB, 5_000)  # exactly the cap
    assert p.engine.platform_qty(PAB) * 1_000 == CAP
    # the cap is platform-wide: another account with debt cannot add either
    other = p.open_borrower("cap_other", 3, 100_000 * YUAN)
    p.buy(other, CMB, 10_000)  # unpublished CMB: no cap; 100k of own cash
    p.buy(other, CMB, 5_000)  # 50k financed
    with boa.reverts("margin: above liquidity cap"):
        p.orderbook.request_buy(PAB, 100, 1_000, sender=other)
    # raising the cap share lets it through
    p.params.set_liquidity_cap(2_000, sender=p.operator)
    p.buy(other, PAB, 100)


def test_a_published_zero_refuses_financed_buys_but_not_cash_only_ones(p: Platform) -> None:
    p.params.set_liquidity([PAB], [0], sender=p.operator)
    who = p.open_borrower("zero_cash", 3, 100_000 * YUAN)
    p.buy(who, PAB, 1_000)  # 10k of own cash, no debt after: no cap
    levered = p.open_borrower("zero_levered", 3, 10_000 * YUAN)
    with boa.reverts("margin: above liquidity cap"):
        p.orderbook.request_buy(PAB, 2_000, 1_000, sender=levered)  # 20k: draws 10k


def test_sells_and_cancelled_buys_give_exposure_back(p: Platform) -> None:
    p.params.set_liquidity([PAB], [LIQUIDITY], sender=p.operator)
    who = p.open_borrower("cap_seller", 3, 100_000 * YUAN)
    p.buy(who, PAB, 20_000)  # at the cap
    with boa.reverts("margin: above liquidity cap"):
        p.orderbook.request_buy(PAB, 100, 1_000, sender=who)
    p.next_day()
    oid = p.orderbook.request_sell(PAB, 5_000, 1_000, sender=who)
    assert p.engine.platform_qty(PAB) == 20_000  # a sell order still holds until it fills
    p.sell_fill(oid, 5_000, 1_000)
    assert p.engine.platform_qty(PAB) == 15_000
    open_buy = p.buy(who, PAB, 5_000, fill=False)  # reserved: counts until cancelled
    with boa.reverts("margin: above liquidity cap"):
        p.orderbook.request_buy(PAB, 100, 1_000, sender=who)
    p.orderbook.cancel_order(open_buy, sender=p.broker)
    assert p.engine.platform_qty(PAB) == 15_000
    p.buy(who, PAB, 5_000)


def test_liquidation_sells_give_exposure_back(p: Platform) -> None:
    p.params.set_liquidity([PAB], [LIQUIDITY], sender=p.operator)
    who = p.open_borrower("cap_liquidated", 3, 60_000 * YUAN)
    p.buy(who, PAB, 20_000)  # 200k on 60k margin: ratio ~150%
    p.next_day({PAB: 900})
    p.next_day({PAB: 810})
    p.next_day({PAB: 790})  # ~ 158k / 140k: below the 115% line
    p.liquidator.start_liquidation(who, sender=p.keeper)
    emitted = logs(p.liquidator, "LiquidationOrder")
    assert emitted
    held = p.engine.platform_qty(PAB)
    sold = 0
    for e in emitted:
        p.sell_fill(e.order_id, e.qty, 790)
        sold += e.qty
    assert sold > 0 and p.engine.platform_qty(PAB) == held - sold
