import pytest

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
