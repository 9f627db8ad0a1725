"""The replay's book file and the umbrella-trust comparator."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.market.bars import Bar, with_band
from crowdleverage.market.replay import TradingDay
from crowdleverage.risk.book import Book, load_book
from crowdleverage.risk.umbrella import umbrella_trust

BOOK = """
[pool]
senior_yuan = 8_000_000
junior_yuan = 2_000_000
insurance_seed_yuan = 100_000
target_utilisation_pct = 75

[stocks]
count = 30
per_borrower = [2, 4]

[tiers.1]
borrowers = 2
[tiers.3]
borrowers = 5
margin_yuan = [100_000, 300_000]
reserve_pct = 20
with_reserve_pct = 40

[[borrower]]
tier = 2
margin_yuan = 500_000
reserve_yuan = 50_000
"""


def test_a_book_file_scales_drawn_margins_to_the_target_utilisation(tmp_path: Path):
    path = tmp_path / "book.toml"
    path.write_text(BOOK)
    book = load_book(path)
    assert book.pool_fen == 1_000_000_000 and book.insurance_seed_fen == 10_000_000
    assert book.stocks == 30 and book.stocks_per_borrower == (2, 4)
    plan = book.plan(np.random.default_rng(1))
    assert [b.tier for b in plan].count(1) == 2 and [b.tier for b in plan].count(3) == 5
    explicit = plan[-1]
    assert (explicit.tier, explicit.margin_fen, explicit.reserve_fen) == (2, 50_000_000, 5_000_000)
    planned = sum(b.planned_loan_fen for b in plan)
    # scaled margins round down to the yuan: a little under the target, never over
    assert 0.745 * book.pool_fen < planned <= 0.75 * book.pool_fen
    t3 = [b for b in plan if b.tier == 3]
    assert [b.reserve_fen > 0 for b in t3] == [True, True, False, False, False]
    assert all(b.reserve_fen == b.margin_fen * 2_000 // 10_000 for b in t3[:2])
    codes = [f"60{i:04d}" for i in range(30)]
    assigned = book.assign_stocks(plan, codes, np.random.default_rng(2))
    assert all(2 <= len(b.codes) <= 4 for b in assigned)
    assert [b.name for b in assigned] == [b.name for b in plan]


def test_the_default_book_plans_to_lend_at_least_70_percent():
    book = Book()
    plan = book.plan(np.random.default_rng(20160104))
    assert sum(b.planned_loan_fen for b in plan) >= 0.7 * book.pool_fen
    assert {b.tier for b in plan} == {1, 2, 3}
    smaller = book.with_options(borrowers_per_tier=2, pool_yuan=5_000_000, utilisation_pct=70)
    assert smaller.borrower_count == 6 and smaller.pool_fen == 500_000_000
    assert smaller.junior_fen * 5 == smaller.pool_fen  # the split is kept


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[pool]\njunior_yuan = 0\n", "junior must be positive"),
        ("[pool]\ntarget_utilisation_pct = 95\n", "0–90%"),
        ("[pool]\nsenior = 1\n", "unknown key"),
        ("[tiers.4]\nborrowers = 1\n", "unknown key"),
        ("[tiers.1]\nmargin_yuan = [5, 1]\n", "margin min ≤ max"),
        ("[[borrower]]\ntier = 9\nmargin_yuan = 1\n", "tier must be one of"),
        ("[pool\n", "book file"),
        ("[stocks]\nper_borrower = [3, 12]\n", "within 1..10"),
    ],
)
def test_a_bad_book_file_is_refused_with_the_reason(tmp_path: Path, text: str, why: str):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=why):
        load_book(path)


def day(d: int, o: int, h: int, lo: int, c: int, prev: int, halted: bool = False) -> TradingDay:
    date = dt.date(2016, 1, d)
    bar = with_band(Bar("600000", date, o, h, lo, c, prev, 0 if halted else 10, 10 * c, halted))
    return TradingDay(date, {"600000": bar})


def test_an_umbrella_trust_stops_at_090_and_sells_only_when_the_seal_opens():
    # 2:1 on one stock at 10.00: day 4 locked at 9.00 (NAV 0.90 → stop), day 5 locked at
    # 8.10 (nothing sells), day 6 halted, day 7 opens at 7.29 and trades: sold at 7.29.
    # assets 3 × 0.729 = 2.187, senior 2 → junior 0.187: a loss of 81.3%
    days = [
        day(4, 900, 900, 900, 900, 1000),
        day(5, 810, 810, 810, 810, 900),
        day(6, 810, 810, 810, 810, 810, halted=True),
        day(7, 729, 760, 729, 750, 810),
        day(8, 800, 820, 790, 800, 750),
    ]
    r = umbrella_trust({"600000": 1.0}, {"600000": 1000}, 2.0, days)
    assert r.stopped_on == "2016-01-04" and r.unsold_at_end == 0
    assert r.junior_loss_pct == pytest.approx(81.3) and r.senior_loss_pct == 0.0


def test_an_umbrella_trust_above_the_line_keeps_its_positions():
    days = [day(4, 950, 960, 940, 950, 1000), day(5, 950, 990, 950, 980, 950)]
    r = umbrella_trust({"600000": 1.0}, {"600000": 1000}, 1.0, days)
    # NAV 0.98 at the end: junior assets 2 × 0.98 − 1 = 0.96 → 4% loss
    assert r.stopped_on is None and r.unsold_at_end == 1
    assert r.junior_loss_pct == pytest.approx(4.0)


def test_the_shipped_book_files_load_and_default_toml_is_the_default_book():
    books = Path(__file__).resolve().parents[2] / "src" / "crowdleverage" / "risk" / "books"
    assert load_book(books / "default.toml") == Book()
    wave1 = load_book(books / "wave1.toml")
    assert wave1.pool_fen == 25_000_000_000 and wave1.target_utilisation_bps == 0


def test_the_setup_planner_keeps_financed_buys_under_the_liquidity_cap():
    from crowdleverage.domain.params import TIERS
    from crowdleverage.risk.book import BorrowerSpec
    from crowdleverage.risk.replay import BuyPlanner

    spec = BorrowerSpec("b", 3, 1_000_000_00, 0, codes=("600000", "600004", "600009"))
    prices = {"600000": 1_000, "600004": 1_000, "600009": 1_000}
    limits = {c: 1_010 for c in prices}
    haircuts = {c: 10_000 for c in prices}

    def plan(caps: dict[str, int] | None) -> tuple[dict[str, int], list[tuple[str, int, int]]]:
        platform = dict.fromkeys(prices, 0)
        bp = BuyPlanner(spec, prices, limits, haircuts, TIERS[3], platform, 10**15, caps)
        steps = []
        while (step := bp.next_buy()) is not None:
            code, qty = step
            draw = bp._after(code, qty)[1]
            steps.append((code, qty, draw))
            bp.bought(code, qty)
        return platform, steps

    free, _ = plan(None)
    cap = 60_000_000  # 60万 of 600000 for the whole platform
    assert free["600000"] * limits["600000"] > cap  # without the cap the plan goes above it
    capped, steps = plan({"600000": cap})
    assert capped["600000"] * limits["600000"] <= cap < free["600000"] * limits["600000"]
    assert any(code == "600000" and draw > 0 for code, _, draw in steps)  # some financed
    assert capped["600004"] > 0 and capped["600009"] > 0
