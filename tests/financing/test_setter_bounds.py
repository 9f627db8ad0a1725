"""Every operator setter of the margin system refuses out-of-range values, and the engine's
hooks refuse every caller but the contract named for them."""

from __future__ import annotations

import boa
import pytest
from fin_system import PAB, Platform

LIMITS = (4_000, 500, 100, 10_500, 30, 30_000)


@pytest.mark.parametrize(
    ("tier", "t", "reason"),
    [
        (0, (1, 20_000, 15_000, 13_000, 800), "margin: tier not in 1..8"),
        (9, (1, 20_000, 15_000, 13_000, 800), "margin: tier not in 1..8"),
        (1, (0, 20_000, 15_000, 13_000, 800), "margin: zero leverage"),
        (1, (1, 20_000, 15_000, 10_000, 800), "margin: lines not ordered"),  # liquidation 100%
        (1, (1, 20_000, 13_000, 15_000, 800), "margin: lines not ordered"),
        (1, (1, 15_000, 15_000, 13_000, 800), "margin: lines not ordered"),
    ],
)
def test_set_tier_refuses(platform: Platform, tier: int, t: tuple[int, ...], reason: str) -> None:
    with boa.reverts(reason):
        platform.engine.set_tier(tier, t, sender=platform.operator)


@pytest.mark.parametrize(
    ("code", "haircut", "reason"),
    [
        (0, 10_000, "margin: bad security code"),
        (1_000_000, 10_000, "margin: bad security code"),
        (PAB, 10_001, "margin: haircut above 100%"),
    ],
)
def test_set_security_refuses(platform: Platform, code: int, haircut: int, reason: str) -> None:
    with boa.reverts(reason):
        platform.engine.set_security(code, haircut, False, 0, sender=platform.operator)


@pytest.mark.parametrize(
    ("index", "value", "reason"),
    [
        (0, 10_001, "margin: limit above 100%"),
        (1, 10_001, "margin: limit above 100%"),
        (0, 0, "margin: zero limit"),
        (1, 0, "margin: zero limit"),
        (2, 10_000, "margin: fee above 100%"),
        (4, 10_000, "margin: fee above 100%"),
        (3, 10_000, "margin: floor not above 100%"),
        (3, 9_999, "margin: floor not above 100%"),
        (5, 10_000, "margin: floor not above 100%"),
    ],
)
def test_set_limits_refuses(platform: Platform, index: int, value: int, reason: str) -> None:
    bad = list(LIMITS)
    bad[index] = value
    with boa.reverts(reason):
        platform.engine.set_limits(tuple(bad), sender=platform.operator)


def test_set_limits_logs_old_and_new(platform: Platform) -> None:
    old = tuple(platform.engine.limits())
    new = (5_000, 400, 200, 11_000, 40, 25_000)
    platform.engine.set_limits(new, sender=platform.operator)
    [log] = [e for e in platform.engine.get_logs() if type(e).__name__ == "LimitsSet"]
    assert (tuple(log.old), tuple(log.new)) == (old, new)
    assert tuple(platform.engine.limits()) == new


def test_setters_need_the_operator(platform: Platform) -> None:
    p = platform
    with boa.reverts("margin: caller is not operator"):
        p.engine.set_limits(LIMITS, sender=p.keeper)
    with boa.reverts("margin: caller is not operator"):
        p.engine.set_tier(1, (1, 20_000, 15_000, 13_000, 800), sender=p.compliance)
    with boa.reverts("margin: caller is not operator"):
        p.engine.set_security(PAB, 10_000, False, 0, sender=p.broker)
    with boa.reverts("margin: caller is not operator"):
        p.engine.pause(sender=p.keeper)


def test_connect_is_once_and_not_to_zero(platform: Platform) -> None:
    p = platform
    with boa.reverts("margin: already connected"):
        p.engine.connect(p.outsider, p.outsider, sender=p.operator)
    with boa.reverts("margin: zero address"):
        p.engine.connect("0x" + "00" * 20, p.outsider, sender=p.operator)
    assert (p.engine.liquidator(), p.engine.orderbook()) == (
        p.liquidator.address, p.orderbook.address,
    )  # fmt: skip


def test_hooks_refuse_everyone_but_their_contract(platform: Platform) -> None:
    p = platform
    for caller in (p.operator, p.keeper, p.broker, p.liquidator.address):
        with boa.reverts("margin: caller is not order book"):
            p.engine.ob_sell(p.outsider, PAB, 100, 1_000, True, sender=caller)
        with boa.reverts("margin: caller is not order book"):
            p.engine.ob_close(p.outsider, PAB, True, False, 0, 0, 0, sender=caller)
    for caller in (p.operator, p.keeper, p.broker, p.orderbook.address):
        with boa.reverts("margin: caller is not liquidator"):
            p.engine.liq_top_up(p.outsider, 0, sender=caller)
        with boa.reverts("margin: caller is not liquidator"):
            p.engine.liq_end(p.outsider, True, sender=caller)
    with boa.reverts("margin: caller is not liquidator"):
        p.orderbook.liq_order(p.outsider, PAB, 100, 900, True, sender=p.keeper)
