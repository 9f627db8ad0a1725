"""A-share securities: exchange and board from the code prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from crowdleverage.domain.errors import InvalidInput


class Exchange(StrEnum):
    SSE = "SSE"  # 上海证券交易所
    SZSE = "SZSE"  # 深圳证券交易所
    BSE = "BSE"  # 北京证券交易所


class Board(StrEnum):
    MAIN = "MAIN"  # 主板 (incl. the former SZSE SME board, merged 2021)
    STAR = "STAR"  # 科创板
    CHINEXT = "CHINEXT"  # 创业板
    BSE = "BSE"  # 北交所


# Prefix → (exchange, board). Longest prefix wins. Equities only; indices are handled apart.
_PREFIXES: dict[str, tuple[Exchange, Board]] = {
    "600": (Exchange.SSE, Board.MAIN),
    "601": (Exchange.SSE, Board.MAIN),
    "603": (Exchange.SSE, Board.MAIN),
    "605": (Exchange.SSE, Board.MAIN),
    "688": (Exchange.SSE, Board.STAR),
    "689": (Exchange.SSE, Board.STAR),
    "000": (Exchange.SZSE, Board.MAIN),
    "001": (Exchange.SZSE, Board.MAIN),
    "002": (Exchange.SZSE, Board.MAIN),
    "003": (Exchange.SZSE, Board.MAIN),
    "300": (Exchange.SZSE, Board.CHINEXT),
    "301": (Exchange.SZSE, Board.CHINEXT),
    "43": (Exchange.BSE, Board.BSE),
    "83": (Exchange.BSE, Board.BSE),
    "87": (Exchange.BSE, Board.BSE),
    "88": (Exchange.BSE, Board.BSE),
    "920": (Exchange.BSE, Board.BSE),
}

_CODE_RE = re.compile(
    r"^(?:(?P<pre>sh|sz|bj)\.?)?(?P<code>\d{6})(?:\.(?P<suf>sh|sz|bj|ss))?$", re.I
)
_SUFFIX_EXCHANGE = {"sh": Exchange.SSE, "ss": Exchange.SSE, "sz": Exchange.SZSE, "bj": Exchange.BSE}


@dataclass(frozen=True, slots=True)
class Security:
    """A listed A-share equity: six-digit code, exchange and board."""

    code: str
    exchange: Exchange
    board: Board

    @classmethod
    def parse(cls, text: str) -> Security:
        """'600000', '600000.SH', 'sz300750' → Security; unknown prefixes are an error."""
        m = _CODE_RE.match(text.strip()) if isinstance(text, str) else None
        if m is None:
            raise InvalidInput(
                f"security code {text!r} is not six digits (e.g. 600000 or 600000.SH)"
            )
        code = m["code"]
        match = next((_PREFIXES[p] for p in (code[:3], code[:2]) if p in _PREFIXES), None)
        if match is None:
            raise InvalidInput(f"security code {code} matches no A-share board")
        exchange, board = match
        tag = (m["pre"] or m["suf"] or "").lower()
        if tag and _SUFFIX_EXCHANGE[tag] is not exchange:
            raise InvalidInput(f"security code {code} is listed on {exchange}, not {tag.upper()}")
        return cls(code, exchange, board)

    @property
    def symbol(self) -> str:
        suffix = {Exchange.SSE: "SH", Exchange.SZSE: "SZ", Exchange.BSE: "BJ"}[self.exchange]
        return f"{self.code}.{suffix}"

    def __str__(self) -> str:
        return self.code
