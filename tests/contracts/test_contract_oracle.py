"""PriceOracle: every external function, a negative test beside each positive one."""

from __future__ import annotations

import random

import boa
from contract_system import PAB, System

from crowdleverage.chain.roles import Role

CMB = 600036  # 招商银行


def _report(system: System, prices: list[int], code: int = PAB) -> None:
    for reporter, p in zip(system.reporters, prices, strict=False):
        system.oracle.report(code, p, sender=reporter)


def test_constructor_values(system: System) -> None:
    assert (system.oracle.max_age_s(), system.oracle.quorum(), system.oracle.trading_day()) == (
        600, 3, 0,
    )  # fmt: skip


def test_constructor_rejects_bad_params(system: System) -> None:
    from crowdleverage.chain.artifacts import deployer

    with boa.reverts("oracle: zero max age"):
        deployer("PriceOracle").deploy(system.registry.address, 0, 3)
    with boa.reverts("oracle: quorum not in 1..16"):
        deployer("PriceOracle").deploy(system.registry.address, 600, 17)
    with boa.reverts("oracle: zero registry"):
        deployer("PriceOracle").deploy("0x" + "00" * 20, 600, 3)


def test_open_day_advances_and_logs(system: System) -> None:
    system.oracle.open_day(1, sender=system.operator)
    log = system.oracle.get_logs()[-1]
    assert (log.day_before, log.day_after) == (0, 1)
    assert system.oracle.trading_day() == 1


def test_open_day_rejects_non_operator_and_non_advancing(system: System) -> None:
    with boa.reverts("oracle: caller is not operator"):
        system.oracle.open_day(1, sender=system.reporters[0])
    system.oracle.open_day(5, sender=system.operator)
    with boa.reverts("oracle: day must advance"):
        system.oracle.open_day(5, sender=system.operator)


def test_set_day_params_records_band(system: System) -> None:
    system.open_day(1)
    assert system.oracle.prev_close(PAB) == 1000
    assert system.oracle.band(PAB) == (900, 1100)
    assert not system.oracle.halted(PAB)
    assert system.oracle.day_params(PAB).day == 1


def test_set_day_params_rejects_bad_input(system: System) -> None:
    op = system.operator
    with boa.reverts("oracle: no day open"):
        system.oracle.set_day_params(PAB, 1000, 900, 1100, False, sender=op)
    system.oracle.open_day(1, sender=op)
    with boa.reverts("oracle: caller is not operator"):
        system.oracle.set_day_params(PAB, 1000, 900, 1100, False, sender=system.broker)
    with boa.reverts("oracle: bad security code"):
        system.oracle.set_day_params(0, 1000, 900, 1100, False, sender=op)
    with boa.reverts("oracle: bad security code"):
        system.oracle.set_day_params(1_000_000, 1000, 900, 1100, False, sender=op)
    with boa.reverts("oracle: zero limit-down price"):
        system.oracle.set_day_params(PAB, 1000, 0, 1100, False, sender=op)
    with boa.reverts("oracle: prev close outside band"):
        system.oracle.set_day_params(PAB, 1200, 900, 1100, False, sender=op)


def test_a_day_without_a_price_limit_stores_the_largest_limit_up(system: System) -> None:
    # the feeder sends 2**64 - 1 as the limit-up of a day without a price limit (a new listing)
    system.open_day(1, band=(1, 1000, 2**64 - 1))
    assert system.oracle.band(PAB) == (1, 2**40 - 1)
    _report(system, [5000, 5100, 5200])  # five times the previous close: still in band
    assert system.oracle.price(PAB) == 5100
    with boa.reverts("oracle: price outside band"):
        system.oracle.report(PAB, 2**40, sender=system.reporters[3])
    with boa.reverts("oracle: price too large"):
        system.oracle.set_day_params(PAB, 2**40, 1, 2**64 - 1, False, sender=system.operator)


def test_set_day_params_many(system: System) -> None:
    system.oracle.open_day(1, sender=system.operator)
    system.oracle.set_day_params_many(
        [(PAB, 1000, 900, 1100, False), (CMB, 2000, 1800, 2200, True)], sender=system.operator
    )
    assert system.oracle.band(CMB) == (1800, 2200)
    assert system.oracle.halted(CMB)


def test_set_day_params_many_is_all_or_nothing(system: System) -> None:
    system.oracle.open_day(1, sender=system.operator)
    with boa.reverts("oracle: prev close outside band"):
        system.oracle.set_day_params_many(
            [(PAB, 1000, 900, 1100, False), (CMB, 2300, 1800, 2200, False)],
            sender=system.operator,
        )
    assert system.oracle.day_params(PAB).day == 0


def test_median_of_quorum_is_the_price(system: System) -> None:
    system.open_day(1)
    _report(system, [1010, 1000, 1030])
    assert system.oracle.is_reliable(PAB)
    assert system.oracle.price(PAB) == 1010
    assert system.oracle.latest(PAB) == (1010, 3, True)
    _report(system, [1010, 1000, 1030, 1040])  # even count: floor mean of the middle two
    assert system.oracle.price(PAB) == (1010 + 1030) // 2


def test_below_quorum_is_unreliable(system: System) -> None:
    system.open_day(1)
    _report(system, [1010, 1000])
    assert not system.oracle.is_reliable(PAB)
    assert system.oracle.latest(PAB) == (1005, 2, False)
    with boa.reverts("oracle: price unreliable"):
        system.oracle.price(PAB)
    assert system.oracle.conservative_price(PAB) == 900  # limit-down: worst legal price


def test_stale_reports_stop_counting(system: System) -> None:
    system.open_day(1)
    _report(system, [1010, 1000, 1030])
    boa.env.time_travel(seconds=601)
    assert not system.oracle.is_reliable(PAB)
    boa.env.time_travel(seconds=-1)
    assert system.oracle.is_reliable(PAB)


def test_new_day_invalidates_band_and_reports(system: System) -> None:
    system.open_day(1)
    _report(system, [1010, 1000, 1030])
    system.oracle.open_day(2, sender=system.operator)
    assert not system.oracle.is_reliable(PAB)
    assert system.oracle.conservative_price(PAB) == 0  # no band today: unknown
    system.oracle.set_day_params(PAB, 1010, 909, 1111, False, sender=system.operator)
    assert system.oracle.latest(PAB)[1] == 0


def test_report_rejects_out_of_band(system: System) -> None:
    system.open_day(1)
    with boa.reverts("oracle: price outside band"):
        system.oracle.report(PAB, 1101, sender=system.reporters[0])
    with boa.reverts("oracle: price outside band"):
        system.oracle.report(PAB, 899, sender=system.reporters[0])
    system.oracle.report(PAB, 1100, sender=system.reporters[0])
    system.oracle.report(PAB, 900, sender=system.reporters[1])
    assert system.oracle.report_of(PAB, system.reporters[1])[:2] == (900, 1)


def test_report_rejects_non_reporter_no_band_and_halted(system: System) -> None:
    with boa.reverts("oracle: band not set for today"):
        system.oracle.report(PAB, 1000, sender=system.reporters[0])
    system.open_day(1)
    with boa.reverts("oracle: caller is not reporter"):
        system.oracle.report(PAB, 1000, sender=system.operator)
    with boa.reverts("oracle: bad security code"):
        system.oracle.report(0, 1000, sender=system.reporters[0])
    system.oracle.set_day_params(PAB, 1000, 900, 1100, True, sender=system.operator)
    with boa.reverts("oracle: security halted"):
        system.oracle.report(PAB, 1000, sender=system.reporters[0])


def test_report_logs_previous_price(system: System) -> None:
    system.open_day(1)
    system.oracle.report(PAB, 1000, sender=system.reporters[0])
    system.oracle.report(PAB, 1020, sender=system.reporters[0])
    log = system.oracle.get_logs()[-1]
    assert (log.price_before_fen, log.price_fen, log.day) == (1000, 1020, 1)


def test_band_narrowed_midday_drops_outside_reports(system: System) -> None:
    system.open_day(1)
    _report(system, [1100, 1000, 1010])
    system.oracle.set_day_params(PAB, 1000, 950, 1050, False, sender=system.operator)
    assert system.oracle.latest(PAB)[:2] == (1005, 2)


def test_halted_is_unreliable_and_valued_at_prev_close(system: System) -> None:
    system.open_day(1)
    _report(system, [1010, 1000, 1030])
    system.oracle.set_day_params(PAB, 1000, 900, 1100, True, sender=system.operator)
    assert system.oracle.halted(PAB)
    assert not system.oracle.is_reliable(PAB)
    assert system.oracle.conservative_price(PAB) == 1000


def test_conservative_price_is_median_when_reliable(system: System) -> None:
    system.open_day(1)
    _report(system, [1010, 1000, 1030])
    assert system.oracle.conservative_price(PAB) == 1010


def test_sealed_limit_down(system: System) -> None:
    system.open_day(1)
    _report(system, [900, 900, 900])
    assert system.oracle.is_sealed_limit_down(PAB)
    system.oracle.report(PAB, 905, sender=system.reporters[1])
    system.oracle.report(PAB, 905, sender=system.reporters[2])
    assert not system.oracle.is_sealed_limit_down(PAB)


def test_sealed_limit_down_false_when_unreliable(system: System) -> None:
    system.open_day(1)
    _report(system, [900, 900])
    assert not system.oracle.is_sealed_limit_down(PAB)


def test_report_many_all_or_nothing(system: System) -> None:
    system.oracle.open_day(1, sender=system.operator)
    system.oracle.set_day_params_many(
        [(PAB, 1000, 900, 1100, False), (CMB, 2000, 1800, 2200, False)], sender=system.operator
    )
    r = system.reporters[0]
    system.oracle.report_many([PAB, CMB], [1000, 2000], sender=r)
    assert system.oracle.report_of(CMB, r)[0] == 2000
    with boa.reverts("oracle: price outside band"):
        system.oracle.report_many([PAB, CMB], [1001, 2300], sender=r)
    assert system.oracle.report_of(PAB, r)[0] == 1000
    with boa.reverts("oracle: length mismatch"):
        system.oracle.report_many([PAB], [1000, 2000], sender=r)
    with boa.reverts("oracle: caller is not reporter"):
        system.oracle.report_many([PAB], [1000], sender=system.broker)


def test_too_many_reporters(system: System) -> None:
    system.open_day(1)
    extra = [boa.env.generate_address() for _ in range(17)]
    for a in extra:
        system.register(a, Role.REPORTER)
    for a in extra[:16]:
        system.oracle.report(PAB, 1000, sender=a)
    assert system.oracle.reporters(PAB, 15) == extra[15]
    with boa.reverts("oracle: too many reporters"):
        system.oracle.report(PAB, 1000, sender=extra[16])
    assert system.oracle.price(PAB) == 1000


def test_set_params(system: System) -> None:
    system.oracle.set_params(60, 1, sender=system.operator)
    log = system.oracle.get_logs()[-1]
    assert (log.max_age_before_s, log.max_age_after_s, log.quorum_before, log.quorum_after) == (
        600, 60, 3, 1,
    )  # fmt: skip
    system.open_day(1)
    system.oracle.report(PAB, 1000, sender=system.reporters[0])
    assert system.oracle.price(PAB) == 1000


def test_set_params_rejects(system: System) -> None:
    with boa.reverts("oracle: caller is not operator"):
        system.oracle.set_params(60, 1, sender=system.reporters[0])
    with boa.reverts("oracle: zero max age"):
        system.oracle.set_params(0, 1, sender=system.operator)
    with boa.reverts("oracle: quorum not in 1..16"):
        system.oracle.set_params(60, 0, sender=system.operator)


def test_set_day_params_many_rejects_non_operator_and_closed_day(system: System) -> None:
    with boa.reverts("oracle: no day open"):
        system.oracle.set_day_params_many([(PAB, 1000, 900, 1100, False)], sender=system.operator)
    system.oracle.open_day(1, sender=system.operator)
    with boa.reverts("oracle: caller is not operator"):
        system.oracle.set_day_params_many([(PAB, 1000, 900, 1100, False)], sender=system.broker)


def test_registry_getter(system: System) -> None:
    assert system.oracle.REGISTRY() == system.registry.address


def test_frozen_reporter_cannot_report(system: System) -> None:
    system.open_day(1)
    system.registry.set_frozen(system.reporters[0], True, sender=system.compliance)
    with boa.reverts("oracle: caller is not reporter"):
        system.oracle.report(PAB, 1000, sender=system.reporters[0])


def test_reporter_slots_of_earlier_days_are_reused(system: System) -> None:
    system.open_day(1)
    extra = [boa.env.generate_address() for _ in range(17)]
    for a in extra:
        system.register(a, Role.REPORTER)
    for a in extra[:16]:
        system.oracle.report(PAB, 1000, sender=a)
    system.open_day(2)
    system.oracle.report(PAB, 1010, sender=extra[16])  # takes the slot of extra[0]
    assert system.oracle.reporters(PAB, 0) == extra[16]
    assert system.oracle.report_of(PAB, extra[0]) == (0, 0, 0)
    for a in extra[1:3]:
        system.oracle.report(PAB, 1020, sender=a)
    assert system.oracle.price(PAB) == 1010 + 10  # median of 1010, 1020, 1020


def test_open_day_rejects_day_beyond_64_bits(system: System) -> None:
    with boa.reverts("oracle: day too large"):
        system.oracle.open_day(2**64, sender=system.operator)


def test_stored_median_follows_a_counted_report_ageing_out(system: System) -> None:
    # the median is stored when a report lands; once one of the reports it counted ages out
    # the read falls back to the reports themselves (same result as computing it afresh)
    system.oracle.set_params(600, 2, sender=system.operator)
    system.open_day(1)
    system.oracle.report(PAB, 1000, sender=system.reporters[0])
    boa.env.time_travel(seconds=300)
    system.oracle.report(PAB, 1020, sender=system.reporters[1])
    system.oracle.report(PAB, 1040, sender=system.reporters[2])
    assert system.oracle.latest(PAB) == (1020, 3, True)
    boa.env.time_travel(seconds=300)  # reporter 0's report is exactly max_age old: counts
    assert system.oracle.latest(PAB) == (1020, 3, True)
    boa.env.time_travel(seconds=1)  # now it is stale
    assert system.oracle.latest(PAB) == (1030, 2, True)
    assert system.oracle.price(PAB) == 1030
    boa.env.time_travel(seconds=300)  # all stale
    assert system.oracle.latest(PAB) == (0, 0, False)
    assert system.oracle.conservative_price(PAB) == 900


def test_stored_median_follows_a_wider_window_and_a_new_band(system: System) -> None:
    system.oracle.set_params(600, 1, sender=system.operator)
    system.open_day(1)
    system.oracle.report(PAB, 1000, sender=system.reporters[0])
    boa.env.time_travel(seconds=700)
    system.oracle.report(PAB, 1080, sender=system.reporters[1])  # stored: 1080 alone
    assert system.oracle.latest(PAB) == (1080, 1, True)
    # a wider window brings reporter 0's report back: the stored figure is not used
    system.oracle.set_params(3_600, 1, sender=system.operator)
    assert system.oracle.latest(PAB) == (1040, 2, True)
    # a band set again the same day drops the report now outside it
    system.oracle.set_day_params(PAB, 1000, 950, 1050, False, sender=system.operator)
    assert system.oracle.latest(PAB) == (1000, 1, True)
    system.oracle.set_day_params(PAB, 1000, 900, 1100, True, sender=system.operator)
    assert not system.oracle.is_reliable(PAB)
    assert system.oracle.conservative_price(PAB) == 1000  # halted: previous close


def test_set_params_rejects_a_window_beyond_64_bits(system: System) -> None:
    with boa.reverts("oracle: max age too large"):
        system.oracle.set_params(2**64, 1, sender=system.operator)


def test_stored_median_is_not_used_on_a_new_day_before_its_band(system: System) -> None:
    system.open_day(1)
    _report(system, [1010, 1000, 1030])
    assert system.oracle.latest(PAB) == (1010, 3, True)
    system.oracle.open_day(2, sender=system.operator)  # yesterday's band word is unchanged
    assert system.oracle.latest(PAB) == (0, 0, False)
    assert system.oracle.conservative_price(PAB) == 0


def _model_latest(system: System, code: int) -> tuple[int, int]:
    """(median, count) of today's fresh in-band reports, from the reports themselves."""
    o = system.oracle
    day, max_age, now = o.trading_day(), o.max_age_s(), boa.env.timestamp
    _d, _prev, down, up, _halted = o.day_params(code)
    prices = []
    for i in range(16):
        try:
            reporter = o.reporters(code, i)
        except boa.BoaError:
            break
        p, d, ts = o.report_of(code, reporter)
        if d == day and ts + max_age >= now and down <= p <= up:
            prices.append(p)
    prices.sort()
    n = len(prices)
    if n == 0:
        return 0, 0
    if n % 2:
        return prices[n // 2], n
    return (prices[n // 2 - 1] + prices[n // 2]) // 2, n


def test_stored_median_equals_the_median_of_the_reports(system: System) -> None:
    # random reports, clock moves, bands, windows and day opens: the read (stored figure or
    # computed) always equals the median computed here from the reports
    rng = random.Random(12)
    system.open_day(1)
    day = 1
    for _ in range(150):
        action = rng.random()
        if action < 0.55:
            reporter = rng.choice(system.reporters)
            _d, _prev, down, up, halted = system.oracle.day_params(PAB)
            if not halted and _d == day:
                system.oracle.report(PAB, rng.randint(down, up), sender=reporter)
        elif action < 0.75:
            boa.env.time_travel(seconds=rng.choice([1, 100, 299, 300, 301, 599, 600, 601]))
        elif action < 0.85:
            down = rng.randint(850, 1000)
            system.oracle.set_day_params(PAB, 1000, down, rng.randint(1000, 1150),
                                         rng.random() < 0.1, sender=system.operator)  # fmt: skip
        elif action < 0.93:
            system.oracle.set_params(rng.choice([300, 600, 900]), rng.randint(1, 4),
                                     sender=system.operator)  # fmt: skip
        else:
            day += 1
            system.oracle.open_day(day, sender=system.operator)
            if rng.random() < 0.8:
                system.oracle.set_day_params(PAB, 1000, 900, 1100, False, sender=system.operator)
        median, n, _ok = system.oracle.latest(PAB)
        assert (median, n) == _model_latest(system, PAB)
