"""Liquidator NAV stop (issue 13): the keeper records an account's reference (assets and
equity); once equity falls below reference equity − `nav_stop_bps` of reference assets the
account is closed in full whatever its ratio, as an umbrella trust's stop line would. The
setting is the operator's, bounded and logged; the reference is the keeper's and is cleared
when a liquidation sells the account out."""

from __future__ import annotations

import boa
import pytest
from fin_system import CMB, PAB, PINGAN, YUAN, Platform

from crowdleverage.domain import params as P

CODES = (PAB, CMB, PINGAN)
DEFAULT_LIMITS = (4_000, 500, 100, 10_500, 30, 30_000)


@pytest.fixture
def p(platform: Platform) -> Platform:
    platform.fund_pool(DEFAULT_LIMITS)
    return platform


@pytest.fixture
def levered(p: Platform) -> str:
    """A tier-3 account (initial 133%, line 115%) at about its initial ratio."""
    who = p.open_borrower("stop_borrower", 3, 100_000 * YUAN)
    p.build_portfolio(who, CODES, step=20_000)
    p.next_day()
    return who


def events(p: Platform, name: str) -> list:
    return [e for e in p.liquidator.get_logs() if type(e).__name__ == name]


def test_default_setter_and_reference_are_bounded(p: Platform, levered: str) -> None:
    liq = p.liquidator
    assert (liq.nav_stop_bps(), liq.nav_stop_below_bps()) == (
        P.NAV_STOP_BPS, P.NAV_STOP_BELOW_BPS
    )  # fmt: skip
    with boa.reverts("margin: caller is not operator"):
        liq.set_nav_stop(700, 20_000, sender=p.keeper)
    with boa.reverts("margin: out of bounds"):
        liq.set_nav_stop(5_001, 20_000, sender=p.operator)
    with boa.reverts("margin: out of bounds"):
        liq.set_nav_stop(700, 10_000, sender=p.operator)
    liq.set_nav_stop(700, 20_000, sender=p.operator)
    [log] = events(p, "NavStopSet")
    assert (log.old_bps, log.new_bps, log.old_below_bps, log.new_below_bps) == (
        P.NAV_STOP_BPS, 700, P.NAV_STOP_BELOW_BPS, 20_000
    )  # fmt: skip
    with boa.reverts("margin: caller is not keeper"):
        liq.set_reference(levered, sender=p.operator)
    idle = p.open_borrower("idle_borrower", 1, 10_000 * YUAN)
    with boa.reverts("margin: no debt or no equity"):
        liq.set_reference(idle, sender=p.keeper)
    liq.set_reference(levered, sender=p.keeper)
    assets, debt, _ = p.state(levered)
    [log] = events(p, "ReferenceSet")
    assert (log.account, log.assets_fen, log.equity_fen) == (levered, assets, assets - debt)
    assert tuple(liq.reference(levered)) == (assets, assets - debt)


def test_the_stop_closes_in_full_above_the_ratio_line(p: Platform, levered: str) -> None:
    who = levered
    p.liquidator.set_reference(who, sender=p.keeper)
    ref_assets, ref_equity = p.liquidator.reference(who)
    p.next_day({c: 970 for c in CODES})  # −3%: equity lost ~3% of assets, above the 5% stop
    assets, debt, ratio = p.state(who)
    assert not P.nav_stopped(assets, debt, ref_assets, ref_equity)
    with boa.reverts("margin: above liquidation line"):
        p.liquidator.start_liquidation(who, sender=p.keeper)
    p.next_day({c: 940 for c in CODES})  # −6% from the start: below the 5% stop
    assets, debt, ratio = p.state(who)
    assert ratio > P.TIERS[3].liquidation_ratio_bps  # the ratio line alone would wait
    assert P.nav_stopped(assets, debt, ref_assets, ref_equity)
    p.liquidator.start_liquidation(who, sender=p.keeper)
    emitted = events(p, "LiquidationOrder")
    assert emitted and all(e.full for e in emitted)
    assert {e.code: e.qty for e in emitted} == {c: p.engine.positions(who, c) for c in CODES}
    # sold out: the liquidation ends with no shortfall and the reference is cleared
    for e in emitted:
        p.sell_fill(e.order_id, e.qty, p.prices[e.code])
    p.liquidator.end_liquidation(who, sender=p.keeper)
    [ended] = events(p, "LiquidationEnded")
    assert ended.shortfall_fen == 0
    assert tuple(p.liquidator.reference(who)) == (0, 0)
    assert p.state(who)[1] == 0  # no debt left; the borrower keeps the rest as cash


def test_with_the_stop_off_or_above_its_ratio_only_the_line_counts(
    p: Platform, levered: str
) -> None:
    who = levered
    p.liquidator.set_nav_stop(0, P.NAV_STOP_BELOW_BPS, sender=p.operator)
    p.liquidator.set_reference(who, sender=p.keeper)
    p.next_day({c: 940 for c in CODES})  # −6% from the reference, above the 115% line
    assert p.ratio(who) > P.TIERS[3].liquidation_ratio_bps
    with boa.reverts("margin: above liquidation line"):
        p.liquidator.start_liquidation(who, sender=p.keeper)
    # on, but only below 120%: the account (~125%) is left alone
    p.liquidator.set_nav_stop(P.NAV_STOP_BPS, 12_000, sender=p.operator)
    with boa.reverts("margin: above liquidation line"):
        p.liquidator.start_liquidation(who, sender=p.keeper)
    p.liquidator.set_nav_stop(P.NAV_STOP_BPS, P.NAV_STOP_BELOW_BPS, sender=p.operator)
    p.liquidator.start_liquidation(who, sender=p.keeper)  # the defaults: now it acts
    assert p.engine.accounts(who)[6]  # locked, in liquidation
