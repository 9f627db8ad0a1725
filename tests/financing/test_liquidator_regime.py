"""Liquidator v2 (issue 13): in the stressed regime (OrderBook.regime) the liquidation line
rises and a liquidation closes the account in full (or de-levers to a safer target); every
liquidation sells what trades today first, the most liquid first; the stressed policy and the
the stressed policy is an operator setting, bounded and logged with old and new values (the
liquidity figures are RiskParams', tests/financing/test_policy_hooks.py). These tests study the
lines: the stressed haircuts (RiskParams) are set to the normal ones here."""

from __future__ import annotations

import boa
import pytest
from fin_system import CMB, PAB, PINGAN, YUAN, Platform, limit_down

from crowdleverage.domain import params as P

CODES = (PAB, CMB, PINGAN)
DEFAULT_LIMITS = (4_000, 500, 100, 10_500, 30, 30_000)


@pytest.fixture
def p(platform: Platform) -> Platform:
    platform.fund_pool(DEFAULT_LIMITS)
    platform.params.set_stressed_haircuts(10_000, 0, sender=platform.operator)
    return platform


@pytest.fixture
def levered(p: Platform) -> str:
    """A tier-3 account (initial 133%, warning 125%, line 115%) at about its initial ratio."""
    who = p.open_borrower("regime_borrower", 3, 100_000 * YUAN)
    p.build_portfolio(who, CODES, step=20_000)
    p.next_day()
    return who


def orders(p: Platform) -> list:
    return [e for e in p.liquidator.get_logs() if type(e).__name__ == "LiquidationOrder"]


def test_defaults_are_the_platform_definition_and_the_setter_is_bounded(p: Platform) -> None:
    liq = p.liquidator
    assert (liq.stressed_line_bps(), liq.stressed_target_add_bps(), liq.stressed_full_close()) == (
        P.STRESSED_LINE_BPS, P.STRESSED_TARGET_ADD_BPS, P.STRESSED_FULL_CLOSE
    )  # fmt: skip
    with boa.reverts("margin: caller is not operator"):
        liq.set_stressed_policy(5_000, 500, False, sender=p.keeper)
    with boa.reverts("margin: out of bounds"):
        liq.set_stressed_policy(10_001, 500, False, sender=p.operator)
    with boa.reverts("margin: out of bounds"):
        liq.set_stressed_policy(5_000, 10_001, False, sender=p.operator)
    liq.set_stressed_policy(5_000, 500, False, sender=p.operator)
    [log] = [e for e in liq.get_logs() if type(e).__name__ == "StressedPolicySet"]
    assert (log.old_line_bps, log.new_line_bps, log.old_target_add_bps, log.new_target_add_bps,
            log.old_full_close, log.new_full_close) == (
        P.STRESSED_LINE_BPS, 5_000, P.STRESSED_TARGET_ADD_BPS, 500, P.STRESSED_FULL_CLOSE, False
    )  # fmt: skip
    assert (liq.stressed_line_bps(), liq.stressed_target_add_bps()) == (5_000, 500)


def test_stressed_line_closes_in_full_what_calm_rules_leave_alone(
    p: Platform, levered: str
) -> None:
    who = levered
    p.next_day({c: 940 for c in CODES})  # -6%: ~126%, above the 115% line, below 133%
    ratio = p.ratio(who)
    assert 11_500 < ratio < 13_300
    with boa.reverts("margin: above liquidation line"):
        p.liquidator.start_liquidation(who, sender=p.keeper)
    p.orderbook.set_regime(1, 12_000, sender=p.operator)
    # the stressed line: 115% + STRESSED_LINE_BPS of (133% - 115%); closed in full below it
    assert ratio < P.stressed_lines(P.TIERS[3])[1]
    p.liquidator.start_liquidation(who, sender=p.keeper)
    emitted = orders(p)
    assert {e.code for e in emitted} == set(CODES) and all(e.full for e in emitted)
    assert {e.code: e.qty for e in emitted} == {c: p.engine.positions(who, c) for c in CODES}


def test_stressed_line_share_and_warning_follow_the_setting(p: Platform, levered: str) -> None:
    who = levered
    p.liquidator.set_stressed_policy(5_000, 1_000, True, sender=p.operator)
    p.orderbook.set_regime(1, 12_000, sender=p.operator)
    p.next_day({c: 960 for c in CODES})  # ~129%: above 124% = 115% + 50% × 18%
    assert p.ratio(who) > 12_400
    with boa.reverts("margin: above liquidation line"):
        p.liquidator.start_liquidation(who, sender=p.keeper)
    with boa.reverts("margin: above warning line"):
        p.liquidator.warn(who, sender=p.keeper)
    p.next_day({c: 937 for c in CODES})  # ~124.6%: below the warning line, above the line
    ratio = p.ratio(who)
    assert 12_400 < ratio < 12_500
    with boa.reverts("margin: above liquidation line"):
        p.liquidator.start_liquidation(who, sender=p.keeper)
    p.liquidator.warn(who, sender=p.keeper)
    [log] = [e for e in p.liquidator.get_logs() if type(e).__name__ == "MarginWarning"]
    assert log.warning_bps == 12_500  # max(tier warning 125%, stressed line 124%)


def test_partial_mode_sells_trading_and_most_liquid_first(p: Platform, levered: str) -> None:
    who = levered
    p.liquidator.set_stressed_policy(10_000, 500, False, sender=p.operator)
    p.params.set_liquidity([PAB, CMB, PINGAN], [10, 30, 20], sender=p.operator)
    p.orderbook.set_regime(1, 12_000, sender=p.operator)
    p.next_day({PAB: limit_down(p.prices[PAB]), CMB: 960, PINGAN: 960})  # PAB at limit-down
    p.next_day({PAB: limit_down(p.prices[PAB]), CMB: 990, PINGAN: 990})  # and sealed again
    assert p.oracle.is_sealed_limit_down(PAB)
    ratio = p.ratio(who)
    assert ratio < 13_300
    p.liquidator.start_liquidation(who, sender=p.keeper)
    emitted = orders(p)
    assert emitted and not any(e.full for e in emitted)
    # CMB (most liquid, trading) first; the sealed PAB only if the others do not suffice
    assert emitted[0].code == CMB
    assert PAB not in {e.code for e in emitted}
    held = {c: p.engine.positions(who, c) for c in CODES}
    if len(emitted) == 2:
        assert emitted[1].code == PINGAN and emitted[0].qty == held[CMB]
    for e in emitted:
        p.sell_fill(e.order_id, e.qty, p.prices[e.code])
    # de-levered to the stressed target: initial 133% + 5%
    assert p.ratio(who) >= 13_800
    p.liquidator.end_liquidation(who, sender=p.keeper)
    assert not p.engine.accounts(who)[6]
