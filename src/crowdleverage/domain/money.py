"""Money in integer fen (0.01 CNY). No floats in accounting (DESIGN.md §4).

Parsing is strict: "12.34" is 1234 fen; "12.345" is an error, never silently rounded.
Conversions state their rounding direction; platform-side rounding favours the platform.
"""

from __future__ import annotations

import re
from decimal import Decimal

from crowdleverage.domain.errors import InvalidInput

FEN_PER_YUAN = 100
WAN = 10_000  # 万
YI = 100_000_000  # 亿

_YUAN_RE = re.compile(r"^(?P<sign>[+-]?)(?P<int>\d{1,15})(?:\.(?P<frac>\d{1,2}))?$")


def parse_yuan(text: str, *, allow_negative: bool = False) -> int:
    """Parse an amount in 元 with at most two decimals into fen.

    >>> parse_yuan("12.34")
    1234
    """
    if not isinstance(text, str):
        raise InvalidInput(f"amount must be text like '12.34', got {type(text).__name__}")
    s = text.strip().replace("_", "")
    m = _YUAN_RE.match(s)
    if m is None:
        if re.match(r"^[+-]?\d+\.\d{3,}$", s):
            raise InvalidInput(f"amount {text!r} has more than two decimals (fen is the unit)")
        raise InvalidInput(f"amount {text!r} is not a number of 元 like '12.34'")
    frac = (m["frac"] or "").ljust(2, "0")
    fen = int(m["int"]) * FEN_PER_YUAN + int(frac or 0)
    if m["sign"] == "-":
        if not allow_negative:
            raise InvalidInput(f"amount {text!r} must not be negative")
        fen = -fen
    return fen


def parse_price_fen(text: str) -> int:
    """Parse a share price in 元 ("10.05") into fen per share; must be positive."""
    fen = parse_yuan(text)
    if fen <= 0:
        raise InvalidInput(f"price {text!r} must be positive")
    return fen


def fen_to_decimal(fen: int) -> Decimal:
    """Exact value in 元, for display only."""
    return Decimal(fen) / FEN_PER_YUAN


def format_yuan(fen: int) -> str:
    """'1234567' -> '12,345.67' (exact)."""
    sign = "-" if fen < 0 else ""
    q, r = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{q:,}.{r:02d}"


def format_cn(fen: int) -> str:
    """Human display in 元 with 万/亿 (display only; integer arithmetic, two decimals rounded
    half away from zero): amounts ≥ 1亿元 in 亿, ≥ 1万元 in 万, else plain 元.

    >>> format_cn(12_345_678), format_cn(-999_999), format_cn(9_999_999_999)
    ('12.35万元', '-9,999.99元', '1.00亿元')
    """
    sign = "-" if fen < 0 else ""
    a = abs(fen)
    # in hundredths of the unit: 1 万元 = 10**6 fen, 1 亿元 = 10**10 fen
    if a >= YI * FEN_PER_YUAN:
        hundredths, unit = _half_up(a, YI), "亿元"
    elif a >= WAN * FEN_PER_YUAN:
        hundredths, unit = _half_up(a, WAN), "万元"
        if hundredths >= 100 * (YI // WAN):  # 9,999.995万 rounds up to 1.00亿
            hundredths, unit = _half_up(a, YI), "亿元"
    else:
        return f"{sign}{format_yuan(a)}元"
    q, r = divmod(hundredths, 100)
    return f"{sign}{q:,}.{r:02d}{unit}"


def _half_up(a: int, den: int) -> int:
    return (2 * a + den) // (2 * den)


def div_round_half_up(num: int, den: int) -> int:
    """num/den rounded half away from zero, in integers (for price bands)."""
    assert den > 0, "dev: positive denominator"
    q, r = divmod(abs(num), den)
    if 2 * r >= den:
        q += 1
    return q if num >= 0 else -q


def mul_div_down(a: int, b: int, den: int) -> int:
    """floor(a*b/den) for non-negative values: what the platform pays or credits."""
    assert a >= 0 and b >= 0 and den > 0, "dev: non-negative operands"
    return a * b // den


def mul_div_up(a: int, b: int, den: int) -> int:
    """ceil(a*b/den) for non-negative values: what the platform charges (debt, fees)."""
    assert a >= 0 and b >= 0 and den > 0, "dev: non-negative operands"
    return -((-a * b) // den)
