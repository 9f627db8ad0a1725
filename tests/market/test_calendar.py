import datetime as dt

import pytest

from crowdleverage.domain.errors import InvalidInput, OutOfRange
from crowdleverage.market.calendar import SHANGHAI, xshg

D = dt.date


def test_national_day_week_2015_closed() -> None:
    cal = xshg()
    for day in range(1, 8):
        assert not cal.is_trading_day(D(2015, 10, day))
    assert cal.next_trading_day(D(2015, 9, 30)) == D(2015, 10, 8)
    assert cal.previous_trading_day(D(2015, 10, 8)) == D(2015, 9, 30)


def test_circuit_breaker_days_were_trading_days() -> None:
    cal = xshg()
    assert cal.is_trading_day("2016-01-07")
    assert cal.is_trading_day(D(2016, 1, 4))
    assert cal.trading_days(D(2016, 1, 1), D(2016, 1, 10)) == [D(2016, 1, d) for d in range(4, 9)]


def test_weekend_and_counting() -> None:
    cal = xshg()
    assert not cal.is_trading_day(D(2016, 1, 9))
    assert cal.next_trading_day(D(2016, 1, 8)) == D(2016, 1, 11)
    assert len(cal.trading_days(D(2015, 1, 1), D(2015, 12, 31))) == 244
    assert cal.trading_days_between(D(2015, 9, 30), D(2015, 10, 8)) == 1


def test_session_has_lunch_break() -> None:
    s = xshg().session(D(2016, 1, 7))
    assert (s.open.hour, s.open.minute) == (9, 30)
    assert (s.break_start.hour, s.break_start.minute) == (11, 30)
    assert (s.break_end.hour, s.break_end.minute) == (13, 0)
    assert s.close.hour == 15
    assert s.is_trading(dt.datetime(2016, 1, 7, 10, 0, tzinfo=SHANGHAI))
    assert not s.is_trading(dt.datetime(2016, 1, 7, 12, 0, tzinfo=SHANGHAI))
    assert not s.is_trading(dt.datetime(2016, 1, 7, 15, 0, tzinfo=SHANGHAI))


def test_session_of_holiday_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="not an XSHG trading day"):
        xshg().session(D(2015, 10, 5))


@pytest.mark.parametrize("day", [D(1999, 12, 31), D(2099, 1, 5)])
def test_outside_range_is_a_clear_error(day: dt.date) -> None:
    with pytest.raises(OutOfRange, match="outside the XSHG calendar"):
        xshg().is_trading_day(day)


def test_bad_date_text() -> None:
    with pytest.raises(InvalidInput, match="YYYY-MM-DD"):
        xshg().is_trading_day("2016/01/07")
