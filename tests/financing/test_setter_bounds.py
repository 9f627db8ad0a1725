"""Every operator setter of the margin system (the risk parameters at `RiskParams`, the
engine's pause and wiring) refuses out-of-range values, and the engine's hooks refuse every
caller but the contract named for them."""

from __future__ import annotations

import boa
import pytest
from fin_system import PAB, Platform, compiled

LIMITS = (4_000, 500, 100, 10_500, 30, 30_000)


@pytest.mark.parametrize(
    ("tier", "t", "reason"),
    [
        (0, (1, 20_000, 15_000, 13_000, 800), "params: tier not in 1..8"),
        (9, (1, 20_000, 15_000, 13_000, 800), "params: tier not in 1..8"),
        (1, (0, 20_000, 15_000, 13_000, 800), "params: leverage not in 1..10"),
        (1, (1, 20_000, 15_000, 10_000, 800), "params: lines not ordered"),  # liquidation 100%
        (1, (1, 20_000, 13_000, 15_000, 800), "params: lines not ordered"),
        (1, (1, 15_000, 15_000, 13_000, 800), "params: lines not ordered"),
        (1, (11, 20_000, 15_000, 13_000, 800), "params: leverage not in 1..10"),
        (1, (1, 100_001, 15_000, 13_000, 800), "params: initial line above 1000%"),
        (1, (1, 20_000, 15_000, 13_000, 10_000), "params: rate not below 100%"),
    ],
)
def test_set_tier_refuses(platform: Platform, tier: int, t: tuple[int, ...], reason: str) -> None:
    with boa.reverts(reason):
        platform.params.set_tier(tier, t, sender=platform.operator)


@pytest.mark.parametrize(
    ("code", "haircut", "reason"),
    [
        (0, 10_000, "params: bad security code"),
        (1_000_000, 10_000, "params: bad security code"),
        (PAB, 10_001, "params: haircut above 100%"),
    ],
)
def test_set_security_refuses(platform: Platform, code: int, haircut: int, reason: str) -> None:
    with boa.reverts(reason):
        platform.params.set_security(code, haircut, False, 0, sender=platform.operator)


def test_set_security_refuses_a_listing_day_beyond_its_32_bits(platform: Platform) -> None:
    with boa.reverts("params: day too large"):
        platform.params.set_security(PAB, 10_000, False, 2**32, sender=platform.operator)
    platform.params.set_security(PAB, 10_000, False, 2**32 - 1, sender=platform.operator)
    assert tuple(platform.params.securities(PAB)) == (10_000, False, 2**32 - 1)


def test_packed_params_keep_each_field_apart(platform: Platform) -> None:
    """The setters of the global word and of a security's word leave the other fields."""
    p = platform
    params = p.params
    limits, stressed = tuple(params.limits()), tuple(params.stressed_haircuts())
    security = tuple(params.securities(PAB))
    params.set_liquidity([PAB], [2**100 - 1], sender=p.operator)
    params.set_st_haircut(4_321, sender=p.operator)
    params.set_liquidity_cap(777, sender=p.operator)
    assert tuple(params.limits()) == limits and tuple(params.stressed_haircuts()) == stressed
    assert tuple(params.securities(PAB)) == security
    assert params.liquidity_fen(PAB) == 2**100 - 1 and params.st_haircut_bps() == 4_321
    assert params.liquidity_cap_bps() == 777
    params.set_security(PAB, 8_000, True, 12, sender=p.operator)
    assert params.liquidity_fen(PAB) == 2**100 - 1
    assert tuple(params.securities(PAB)) == (8_000, True, 12)


def test_the_engine_hooks_at_riskparams_refuse_everyone_but_the_engine(platform: Platform) -> None:
    p = platform
    for caller in (p.operator, p.keeper, p.orderbook.address, p.liquidator.address):
        with boa.reverts("params: caller is not engine"):
            p.params.engine_exposure(PAB, 100, 0, sender=caller)
        with boa.reverts("params: caller is not engine"):
            p.params.engine_buy(
                3, PAB, 100, 1_000, 0, 10**9, 0, 0, 10**12, 1, 1_000, 0, [0] * 10, [0] * 10,
                sender=caller,
            )  # fmt: skip


@pytest.mark.parametrize(
    ("index", "value", "reason"),
    [
        (0, 10_001, "params: limit above 100%"),
        (1, 10_001, "params: limit above 100%"),
        (0, 0, "params: zero limit"),
        (1, 0, "params: zero limit"),
        (2, 10_000, "params: fee above 100%"),
        (4, 10_000, "params: fee above 100%"),
        (3, 10_000, "params: floor not above 100%"),
        (3, 9_999, "params: floor not above 100%"),
        (5, 10_000, "params: floor not above 100%"),
        (3, 100_001, "params: floor above 1000%"),  # the packed word keeps 20 bits a limit
        (5, 100_001, "params: floor above 1000%"),
    ],
)
def test_set_limits_refuses(platform: Platform, index: int, value: int, reason: str) -> None:
    bad = list(LIMITS)
    bad[index] = value
    with boa.reverts(reason):
        platform.params.set_limits(tuple(bad), sender=platform.operator)


def test_set_limits_logs_old_and_new(platform: Platform) -> None:
    old = tuple(platform.params.limits())
    new = (5_000, 400, 200, 11_000, 40, 25_000)
    platform.params.set_limits(new, sender=platform.operator)
    [log] = [e for e in platform.params.get_logs() if type(e).__name__ == "LimitsSet"]
    assert (tuple(log.old), tuple(log.new)) == (old, new)
    assert tuple(platform.params.limits()) == new


def test_setters_need_the_operator(platform: Platform) -> None:
    p = platform
    with boa.reverts("params: caller is not operator"):
        p.params.set_limits(LIMITS, sender=p.keeper)
    with boa.reverts("params: caller is not operator"):
        p.params.set_tier(1, (1, 20_000, 15_000, 13_000, 800), sender=p.compliance)
    with boa.reverts("params: caller is not operator"):
        p.params.set_security(PAB, 10_000, False, 0, sender=p.broker)
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
    # the order book is fixed at deployment: `connect` only confirms it
    with boa.env.prank(p.admin):
        other = compiled("MarginEngine").deploy(
            p.cash.address, p.registry.address, p.oracle.address, p.pool.address,
            p.insurance.address, p.params.address, p.outsider,
        )  # fmt: skip
    with boa.reverts("margin: not the deployed order book"):
        other.connect(p.liquidator.address, p.orderbook.address, sender=p.operator)
    other.connect(p.liquidator.address, p.outsider, sender=p.operator)
    assert (other.liquidator(), other.orderbook()) == (p.liquidator.address, p.outsider)
    with boa.reverts("margin: zero address"):
        compiled("MarginEngine").deploy(
            p.cash.address, p.registry.address, p.oracle.address, p.pool.address,
            p.insurance.address, p.params.address, "0x" + "00" * 20,
        )  # fmt: skip


def test_hooks_refuse_everyone_but_their_contract(platform: Platform) -> None:
    p = platform
    for caller in (p.operator, p.keeper, p.broker, p.liquidator.address):
        with boa.reverts("margin: caller is not order book"):
            p.engine.ob_sell(p.outsider, PAB, 100, 1_000, True, sender=caller)
        with boa.reverts("margin: caller is not order book"):
            p.engine.ob_close(1, PAB, True, False, 0, 0, 0, sender=caller)
    for caller in (p.operator, p.keeper, p.broker, p.orderbook.address):
        with boa.reverts("margin: caller is not liquidator"):
            p.engine.liq_top_up(p.outsider, 0, sender=caller)
        with boa.reverts("margin: caller is not liquidator"):
            p.engine.liq_end(p.outsider, True, sender=caller)
    with boa.reverts("margin: caller is not liquidator"):
        p.orderbook.liq_order(p.outsider, PAB, 100, 900, True, sender=p.keeper)


def test_set_tier_logs_old_and_new_and_keeps_interest(platform: Platform) -> None:
    p = platform
    old = tuple(p.params.tiers(3))
    index_before = p.engine.indices(3)
    boa.env.time_travel(seconds=365 * 86_400)
    new = (3, 14_000, 13_000, 12_000, 2_000)
    p.params.set_tier(3, new, sender=p.operator)
    [log] = [e for e in p.params.get_logs() if type(e).__name__ == "TierSet"]
    assert (int(log.tier), tuple(log.old), tuple(log.new)) == (3, old, new)
    # a year at the old rate (10%) accrued before the change; the new rate applies from now
    value, _at, rate = p.engine.indices(3)
    assert rate == 2_000
    assert value == index_before[0] * 11 // 10 + (1 if index_before[0] % 10 else 0)


def test_set_security_logs_old_and_new(platform: Platform) -> None:
    p = platform
    p.params.set_security(PAB, 10_000, True, 0, sender=p.operator)
    [log] = [e for e in p.params.get_logs() if type(e).__name__ == "SecuritySet"]
    assert (tuple(log.old), tuple(log.new)) == ((10_000, False, 0), (10_000, True, 0))


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (
            lambda p: p.params.set_st_haircut(5_001, sender=p.operator),
            "params: ST haircut above 50%",
        ),
        (
            lambda p: p.params.set_version("", b"\0" * 32, sender=p.operator),
            "params: empty version",
        ),
        (lambda p: p.params.connect(p.outsider, sender=p.operator), "params: already connected"),
        (lambda p: p.params.set_st_haircut(0, sender=p.keeper), "params: caller is not operator"),
        (
            lambda p: p.params.set_version("v", b"\0" * 32, sender=p.broker),
            "params: caller is not operator",
        ),
        (lambda p: p.engine.params_rate(1, 0, sender=p.operator), "margin: caller is not params"),
    ],
)
def test_other_params_setters_refuse(platform: Platform, call: object, reason: str) -> None:
    with boa.reverts(reason):
        call(platform)  # type: ignore[operator]
