import pytest
from hypothesis import given
from hypothesis import strategies as st

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.domain.money import (
    div_round_half_up,
    format_cn,
    format_yuan,
    mul_div_down,
    mul_div_up,
    parse_price_fen,
    parse_yuan,
)


@pytest.mark.parametrize(
    ("text", "fen"),
    [("12.34", 1234), ("12.3", 1230), ("12", 1200), ("0.01", 1), ("1_000.00", 100000)],
)
def test_parse_yuan_exact(text: str, fen: int) -> None:
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("text", ["12.345", "1.001", "abc", "", "1e3", "12.", ".5", "1,000", "NaN"])
def test_parse_yuan_rejects(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_yuan(text)


def test_three_decimals_says_why() -> None:
    with pytest.raises(InvalidInput, match="more than two decimals"):
        parse_yuan("12.345")


def test_negative_only_when_allowed() -> None:
    with pytest.raises(InvalidInput, match="negative"):
        parse_yuan("-1.00")
    assert parse_yuan("-1.05", allow_negative=True) == -105


def test_price_must_be_positive() -> None:
    with pytest.raises(InvalidInput):
        parse_price_fen("0.00")
    assert parse_price_fen("10.05") == 1005


def test_formatting() -> None:
    assert format_yuan(1234567) == "12,345.67"
    assert format_yuan(-5) == "-0.05"
    assert format_cn(1234) == "12.34元"
    assert format_cn(123_456_78) == "12.35万元"
    # SSE+SZSE margin financing peak 2015-06-18: ≈ 2.267 trillion 元 = 22,670 亿元
    assert format_cn(2_267_000_000_000_00) == "22,670.00亿元"


def test_rounding_directions() -> None:
    assert mul_div_down(10, 1, 3) == 3
    assert mul_div_up(10, 1, 3) == 4
    assert mul_div_up(9, 1, 3) == 3
    assert div_round_half_up(11055, 1000) == 11
    assert div_round_half_up(1005 * 11000, 10000) == 1106  # 11.055 → 11.06
    assert div_round_half_up(1005 * 9000, 10000) == 905  # 9.045 → 9.05


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (0, "0.00元"),
        (-1, "-0.01元"),
        (999_999, "9,999.99元"),  # 9,999.99 元: below 1 万
        (1_000_000, "1.00万元"),
        (1_004_999, "1.00万元"),  # 1.004999 万 → down
        (1_005_000, "1.01万元"),  # half → up (away from zero)
        (-1_005_000, "-1.01万元"),
        (9_999_949_999, "9,999.95万元"),
        (9_999_994_999, "9,999.99万元"),
        (9_999_995_000, "1.00亿元"),  # 9,999.995 万 rounds to 10,000.00 万 = 1.00 亿
        (10_000_000_000, "1.00亿元"),
        (123_456_789_012_345, "12,345.68亿元"),
    ],
)
def test_format_cn_units_and_rounding(fen: int, text: str) -> None:
    assert format_cn(fen) == text


@given(st.integers(min_value=-(10**20), max_value=10**20))
def test_format_cn_matches_exact_decimal(fen: int) -> None:
    """The integer formatter equals exact decimal arithmetic (half away from zero) at any size,
    in 元 below 1 万, in 亿 from 1 亿 (or when 万 would round to 10,000.00), else in 万."""
    from decimal import ROUND_HALF_UP, Decimal

    text = format_cn(fen)
    unit = text[-2:] if text[-2:] in ("万元", "亿元") else "元"
    scale = {"万元": 10**6, "亿元": 10**10, "元": 100}[unit]
    exact = (Decimal(fen) / scale).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert Decimal(text.removesuffix(unit).replace(",", "")) == exact
    in_wan = (Decimal(abs(fen)) / 10**6).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    expected = "元" if abs(fen) < 10**6 else "亿元" if in_wan >= 10**4 else "万元"
    assert unit == expected
