import datetime as dt

import pytest

from crowdleverage.domain.errors import InvalidInput, RuleViolation
from crowdleverage.domain.security import Security
from crowdleverage.market.rules import (
    PriceBand,
    Side,
    check_order,
    price_band,
    round_to_lot,
    sellable_quantity,
    stamp_duty_rate_ppm,
    trading_fees,
)

D = dt.date
S = Security.parse


def test_main_board_band_rounds_half_up() -> None:
    band = price_band(S("600000"), D(2016, 1, 4), 1005)
    assert (band.limit_down_fen, band.limit_up_fen) == (905, 1106)


def test_st_band_is_five_percent() -> None:
    band = price_band(S("600000"), D(2016, 1, 4), 1005, st=True)
    assert (band.limit_down_fen, band.limit_up_fen) == (955, 1055)  # 9.5475 → 9.55, 10.5525


def test_chinext_before_and_after_reform() -> None:
    before = price_band(S("300059"), D(2015, 7, 8), 1005)
    after = price_band(S("300059"), D(2021, 1, 4), 1005)
    assert before.limit_bps == 1000 and (before.limit_down_fen, before.limit_up_fen) == (905, 1106)
    assert after.limit_bps == 2000 and (after.limit_down_fen, after.limit_up_fen) == (804, 1206)
    assert price_band(S("300059"), D(2020, 8, 21), 1000).limit_bps == 1000
    assert price_band(S("300059"), D(2020, 8, 24), 1000).limit_bps == 2000


def test_star_twenty_percent_and_not_before_launch() -> None:
    assert price_band(S("688981"), D(2021, 1, 4), 5000).limit_up_fen == 6000
    with pytest.raises(InvalidInput, match="STAR opened"):
        price_band(S("688001"), D(2019, 7, 19), 5000)


def test_bse_thirty_percent() -> None:
    band = price_band(S("833819"), D(2022, 3, 1), 1000)
    assert (band.limit_down_fen, band.limit_up_fen) == (700, 1300)


def test_new_listing_unlimited_first_five_days() -> None:
    for n in range(1, 6):
        assert (
            price_band(S("688981"), D(2020, 7, 16), 2739, listing_day_index=n).limit_up_fen is None
        )
    assert price_band(S("688981"), D(2020, 7, 23), 2739, listing_day_index=6).limit_bps == 2000
    # pre-2023 main-board IPO first day: +44% / −36% of the issue price
    first = price_band(S("603900"), D(2016, 11, 23), 1000, listing_day_index=1)
    assert (first.limit_down_fen, first.limit_up_fen) == (640, 1440)


def test_band_needs_positive_prev_close() -> None:
    with pytest.raises(InvalidInput):
        price_band(S("600000"), D(2016, 1, 4), 0)


def test_order_checks() -> None:
    band = PriceBand(905, 1106, 1000)
    check_order(Side.BUY, 200, 1000, band)
    with pytest.raises(RuleViolation, match="outside the day's band"):
        check_order(Side.BUY, 100, 1107, band)
    with pytest.raises(RuleViolation, match="lot"):
        check_order(Side.BUY, 150, 1000, band)
    # odd lots only when selling the whole holding
    check_order(Side.SELL, 150, 1000, band, holding=150)
    with pytest.raises(RuleViolation, match="odd lot"):
        check_order(Side.SELL, 150, 1000, band, holding=250)
    with pytest.raises(RuleViolation, match="exceeds the sellable"):
        check_order(Side.SELL, 300, 1000, band, holding=200)
    with pytest.raises(RuleViolation, match="positive"):
        check_order(Side.BUY, 0, 1000, band)
    assert round_to_lot(1_234) == 1_200


def test_t_plus_one() -> None:
    lots = [(D(2016, 1, 6), 1000), (D(2016, 1, 7), 500)]
    assert sellable_quantity(lots, D(2016, 1, 7)) == 1000
    assert sellable_quantity(lots, D(2016, 1, 8)) == 1500
    assert sellable_quantity(lots, D(2016, 1, 6)) == 0


def test_stamp_duty_by_date() -> None:
    assert stamp_duty_rate_ppm(Side.SELL, D(2008, 1, 2)) == 3000
    assert stamp_duty_rate_ppm(Side.BUY, D(2008, 5, 5)) == 1000
    assert stamp_duty_rate_ppm(Side.BUY, D(2016, 1, 4)) == 0
    assert stamp_duty_rate_ppm(Side.SELL, D(2016, 1, 4)) == 1000
    assert stamp_duty_rate_ppm(Side.SELL, D(2023, 8, 28)) == 500


def test_fees_by_date() -> None:
    sh = S("600000")
    # sell 1,000 × ¥10.05 on 2016-01-04: commission min ¥5, stamp 0.1%, transfer 0.02‰ (up)
    fees = trading_fees(sh, Side.SELL, D(2016, 1, 4), 1000, 1005)
    assert (fees.commission_fen, fees.stamp_duty_fen, fees.transfer_fee_fen) == (500, 1005, 21)
    assert fees.total_fen == 1526
    # the same sell in 2024: stamp duty halved, transfer fee 0.01‰
    later = trading_fees(sh, Side.SELL, D(2024, 1, 4), 1000, 1005)
    assert (later.stamp_duty_fen, later.transfer_fee_fen) == (503, 11)
    # buys pay no stamp duty; SSE before 2015-08: 0.6‰ of face value, at least ¥1
    buy = trading_fees(sh, Side.BUY, D(2015, 6, 1), 100_000, 1005)
    assert (buy.stamp_duty_fen, buy.transfer_fee_fen) == (0, 6000)
    assert trading_fees(S("000001"), Side.BUY, D(2015, 6, 1), 1000, 1005).transfer_fee_fen == 0
    big = trading_fees(sh, Side.BUY, D(2016, 1, 4), 100_000, 1005)
    assert big.commission_fen == 25125  # 0.025% of ¥1,005,000


def test_fees_reject_nonsense() -> None:
    with pytest.raises(InvalidInput):
        trading_fees(S("600000"), Side.BUY, D(2016, 1, 4), 0, 1005)
