"""The margin page's line prices (web/margin.py) against a brute-force scan of the engine's
arithmetic: floor(assets × 10000 / debt) < line, collateral floored per position."""

from __future__ import annotations

import random

from crowdleverage.web.margin import (
    BPS,
    SCALE,
    Holding,
    _whole_account,
    collateral_fen,
    line_price,
    under,
)


def _brute(other: int, qty: int, h: int, debt: int, line: int, top: int) -> int | None:
    best = None
    for p in range(top + 1):
        if under(other + collateral_fen(qty, p, h), debt, line):
            best = p
    return best


def test_single_stock_line_price_is_the_highest_price_under_the_line() -> None:
    rng = random.Random(16)
    for _ in range(300):
        qty, h = rng.choice([100, 300, 1700, 12_300]), rng.choice([10_000, 8_000, 5_000])
        debt = rng.randint(1_000_00, 2_000_000_00)
        line = rng.choice([13_000, 12_000, 11_500, 15_000])
        other = rng.randint(0, debt * 2)
        got = line_price(other, qty, h, debt, line)
        top = 3_000  # ≤ 30 元: the scan covers every price the formula may give
        want = _brute(other, qty, h, debt, line, top)
        if got is None:
            assert want is None
        elif got <= top:
            assert got == want, (other, qty, h, debt, line)
        else:  # beyond the scan: it still has to be under, one fen more not
            assert want == top
    assert line_price(0, 100, 10_000, 0, 13_000) is None  # no debt, no line


def test_whole_account_factor_is_tight_to_the_fen() -> None:
    rng = random.Random(61)
    for _ in range(60):
        hs = [
            Holding(
                code=f"{i:06d}",
                quantity=rng.choice([100, 2_000, 31_000]),
                sellable=0,
                last_fen=0,
                halted=False,
                sealed=False,
                engine_price_fen=rng.randint(200, 6_000),
                haircut_bps=rng.choice([10_000, 8_000]),
                collateral_fen=0,
                cost_fen=None,
            )
            for i in range(rng.randint(1, 6))
        ]
        rest = rng.randint(0, 500_000_00)
        value = sum(collateral_fen(x.quantity, x.engine_price_fen, x.haircut_bps) for x in hs)
        debt = rng.randint(1, (rest + value) // 1)  # some accounts far above, some under
        line = 13_000
        k, prices = _whole_account(rest, hs, debt, line)
        if k is None:
            assert not under(rest, debt, line)
            continue
        at = rest + sum(collateral_fen(x.quantity, prices[x.code], x.haircut_bps) for x in hs)
        assert under(at, debt, line)
        if k < SCALE:
            nxt = rest + sum(
                collateral_fen(x.quantity, x.engine_price_fen * (k + 1) // SCALE, x.haircut_bps)
                for x in hs
            )
            assert not under(nxt, debt, line)
            up = rest + sum(
                collateral_fen(x.quantity, prices[x.code] + 1, x.haircut_bps) for x in hs
            )
            assert not under(up, debt, line)
    assert BPS == 10_000
