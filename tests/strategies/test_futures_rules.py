"""CFFEX index-futures rules by date, and the ETF's and baskets' fees and units."""

from __future__ import annotations

import datetime as dt

import pytest

from crowdleverage.domain.errors import InvalidInput, RuleViolation
from crowdleverage.market.rules import Side
from crowdleverage.strategies import futures_rules as fr
from crowdleverage.strategies.spot_rules import basket_fee_fen, etf_fee_fen, etf_value_fen, to_li

D = dt.date


@pytest.mark.parametrize(
    ("day", "margin_pct"),
    [
        (D(2015, 8, 25), 10),
        (D(2015, 8, 26), 12),
        (D(2015, 8, 27), 15),
        (D(2015, 8, 28), 20),
        (D(2015, 8, 31), 30),
        (D(2015, 9, 2), 30),
        (D(2015, 9, 7), 40),
        (D(2016, 12, 30), 40),
        (D(2017, 2, 17), 20),
        (D(2017, 9, 18), 15),
        (D(2018, 12, 3), 10),
    ],
)
def test_non_hedge_margin_by_date(day: dt.date, margin_pct: int) -> None:
    assert fr.rules_on("IF", day).margin_bps == margin_pct * 100
    assert fr.rules_on("IH", day).margin_bps == margin_pct * 100


def test_opening_above_ten_lots_on_2015_09_08_is_refused() -> None:
    fr.check_open("IF", D(2015, 9, 8), 10, opened_today=0)  # ten is the cap, allowed
    with pytest.raises(RuleViolation, match="above the 10-lot daily cap"):
        fr.check_open("IF", D(2015, 9, 8), 11, opened_today=0)
    with pytest.raises(RuleViolation):
        fr.check_open("IH", D(2015, 9, 8), 1, opened_today=10)
    # the week before the cap was 600 a day, and none before 2015-08-26
    fr.check_open("IF", D(2015, 9, 2), 600, opened_today=0)
    with pytest.raises(RuleViolation):
        fr.check_open("IF", D(2015, 9, 2), 601, opened_today=0)
    fr.check_open("IF", D(2015, 7, 7), 5_000, opened_today=0)
    assert fr.rules_on("IF", D(2017, 2, 17)).open_cap_lots == 20


def test_close_today_fee_changes_on_2015_09_07() -> None:
    price = fr.to_deci_points(3096.2)
    notional = 3096.2 * 300 * 100  # fen, one lot
    assert fr.notional_fen("IF", price, 1) == round(notional) == 92_886_000
    # 0.0115% of turnover until 2015-09-06, 0.23% from 2015-09-07 (rounded up to the fen)
    assert fr.trade_fee_fen("IF", D(2015, 9, 2), price, 1, close_today=True) == 10_682
    assert fr.trade_fee_fen("IF", D(2015, 9, 7), price, 1, close_today=True) == 213_638
    # an old position closed pays the ordinary 0.0023% on both dates
    assert fr.trade_fee_fen("IF", D(2015, 9, 7), price, 1, close_today=False) == 2_137
    assert fr.trade_fee_fen("IF", D(2015, 8, 25), price, 1, close_today=True) == 2_137
    assert fr.rules_on("IF", D(2017, 2, 17)).close_today_fee_ppm == 920


def test_limit_band_and_seal() -> None:
    band = fr.limit_band("IF", D(2015, 8, 25), fr.to_deci_points(3132.2))
    assert (band.down_deci_points, band.up_deci_points) == (28_190, 34_454)
    assert band.sealed_down(28_190, 28_190)
    assert not band.sealed_down(28_192, 28_190)


def test_margin_rise_is_known_only_after_its_announcement() -> None:
    assert fr.known_margin_step(D(2015, 8, 25)) == 1.0  # the notice came after that close
    assert fr.known_margin_step(D(2015, 8, 26)) == 2.0  # 10% → 20% by 08-28
    assert fr.known_margin_step(D(2015, 9, 7)) == pytest.approx(40 / 30)


def test_bad_rule_inputs() -> None:
    with pytest.raises(InvalidInput, match="IH was listed on 2015-04-16"):
        fr.rules_on("IH", D(2015, 1, 5))
    with pytest.raises(InvalidInput, match="unknown futures product"):
        fr.rules_on("IC", D(2016, 1, 5))
    with pytest.raises(InvalidInput):
        fr.check_open("IF", D(2016, 1, 5), 0, opened_today=0)


def test_etf_units_are_li_not_fen_and_etfs_pay_no_stamp_duty() -> None:
    assert to_li(1.886) == 1886
    with pytest.raises(InvalidInput, match=r"multiple of 0\.001"):
        to_li(1.8865)
    assert etf_value_fen(100, 1886) == 18_860  # 100 × 1.886 元
    assert etf_value_fen(1, 1886) == 188  # 1.886 元 rounds down to 188 fen
    amount = 100_000_000  # 100万元
    assert etf_fee_fen(amount) == 25_000  # commission 2.5 bps only
    # a basket sale pays commission + 0.1% stamp duty + 0.02‰ transfer fee
    assert basket_fee_fen(Side.SELL, D(2015, 8, 25), amount) == 25_000 + 100_000 + 2_000
    assert basket_fee_fen(Side.BUY, D(2015, 8, 25), amount) == 25_000 + 2_000
