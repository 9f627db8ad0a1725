"""End-of-window accounting against hand-computed cases (DESIGN.md §6, §11): a borrower
liquidated in full behind two sealed limit-down days, and open liquidations at the end
valued at the conservative price. Amounts in fen; the arithmetic is written out."""

from __future__ import annotations

import datetime as dt

from crowdleverage.domain.security import Security
from crowdleverage.market.bars import Bar, with_band
from crowdleverage.market.rules import Side, trading_fees
from crowdleverage.risk.accounting import (
    LAYERS,
    BorrowerEnd,
    WriteOff,
    end_marks,
    settle,
    tier_table,
    tranche_returns,
)

DAY = dt.date(2016, 1, 7)


def bar(code: str, prev: int, o: int, h: int, lo: int, c: int, halted: bool = False) -> Bar:
    vol = 0 if halted else 1_000
    return with_band(Bar(code, DAY, o, h, lo, c, prev, vol, vol * c, halted))


# ── a tier-3 borrower liquidated in full behind two sealed days ───────────────────────────
# margin 100,000元, reserve 10,000元; loan 300,000元; 40,000 × 600000 bought at 10.00元.
# Days 1 and 2 sealed at limit-down (9.00, 8.10): nothing sells; the reserve is topped up
# into cash on day 1. Day 3 opens at limit-down 7.29 and trades: all 40,000 sell at 7.29.
#   amount     40,000 × 729            = 29,160,000
#   commission 29,160,000 × 2.5 bps    =      7,290
#   stamp duty 0.1%                    =     29,160
#   transfer   0.02‰ = 583.2 → up      =        584
#   penalty    1% (to insurance)       =    291,600
#   net                                = 28,831,366
# cash 1,000,000 (topped-up reserve) + net = 29,831,366
# debt 30,000,000 + 3 days at 10% (24,657.5 → 24,658) = 30,024,658; repaid with all cash:
# 193,292 of principal is left and written off; the insurance fund pays it, all of it out of
# the liquidation's own penalty (291,600 ≥ 193,292): junior and senior untouched.
MARGIN, RESERVE = 10_000_000, 1_000_000
NET = 29_160_000 - 7_290 - 29_160 - 584 - 291_600
CASH_AFTER_SALE = 1_000_000 + NET
DEBT = 30_000_000 + 24_658
LEFT = DEBT - CASH_AFTER_SALE


def test_the_hand_computed_numbers_add_up():
    fees = trading_fees(Security.parse("600000"), Side.SELL, DAY, 40_000, 729)
    assert (fees.commission_fen, fees.stamp_duty_fen, fees.transfer_fee_fen) == (7_290, 29_160, 584)
    assert NET == 28_831_366 and LEFT == 193_292


def test_full_liquidation_behind_two_sealed_days_after_the_write_off():
    ended = BorrowerEnd(
        name="t3", tier=3, margin_deposit_fen=MARGIN, reserve_deposit_fen=RESERVE,
        cash_fen=0, reserve_fen=0, debt_fen=0, principal_fen=0, positions={},
        write_offs=(WriteOff(LEFT, LEFT, 0, 0, 0),),
    )  # fmt: skip
    acct = settle([ended], {}, insurance_fen=5_000_000, junior_claim_fen=200_000_000)
    (r,) = acct.borrowers
    assert r.equity_fen == -193_292  # owed what the pool wrote off
    assert r.loss_fen == 11_193_292 and round(r.loss_pct, 2) == 101.76
    assert r.reserve_used_fen == RESERVE
    assert acct.layers_fen == {
        "borrower_margin": 10_000_000, "borrower_reserve": 1_000_000, "penalty": 193_292,
        "insurance": 0, "junior": 0, "senior": 0,
    }  # fmt: skip
    assert acct.attribution_ok and acct.total_loss_fen == sum(acct.layers_fen.values())
    assert acct.provisional_fen == 0


def test_the_same_liquidation_still_open_is_attributed_the_same_way_provisionally():
    # the sale has settled but end_liquidation has not run: cash and debt still on the book
    open_ = BorrowerEnd(
        name="t3", tier=3, margin_deposit_fen=MARGIN, reserve_deposit_fen=RESERVE,
        cash_fen=CASH_AFTER_SALE, reserve_fen=0, debt_fen=DEBT, principal_fen=30_000_000,
        positions={}, liquidating=True, penalty_open_fen=291_600,
    )  # fmt: skip
    acct = settle([open_], {}, insurance_fen=5_000_000, junior_claim_fen=200_000_000)
    (r,) = acct.borrowers
    assert r.loss_fen == 11_193_292 and r.provisional_fen == 193_292
    assert acct.layers_fen["penalty"] == 193_292 and acct.layers_fen["insurance"] == 0
    assert acct.open_liquidations == 1 and acct.attribution_ok


# ── open liquidations at the end, valued conservatively ─────────────────────────────────
# 600000 closed sealed at limit-down (13.33 → 12.00): unsellable, marked one more limit-down
# lower, 12.00 × 0.9 = 10.80; 000001 traded normally, marked at its close 8.00; 600036 was
# halted at 20.00: unsellable, marked 18.00.
LAST = {
    "600000": bar("600000", 1333, 1200, 1200, 1200, 1200),
    "000001": bar("000001", 790, 790, 810, 780, 800),
    "600036": bar("600036", 2000, 2000, 2000, 2000, 2000, halted=True),
}


def test_conservative_marks():
    marks = end_marks(LAST)
    assert (marks["600000"].price_fen, marks["600000"].sellable) == (1_080, False)
    assert (marks["000001"].price_fen, marks["000001"].sellable) == (800, True)
    assert (marks["600036"].price_fen, marks["600036"].sellable) == (1_800, False)


def test_open_liquidations_at_the_end_with_the_unsellable_part_apart_and_a_deficit():
    # tier 2, margin 200,000元, no reserve: 20,000 × 600000 (unsellable) + 30,000 × 000001,
    # cash 50,000元, debt 400,500元.
    # equity = 50,000 + 20,000 × 10.80 + 30,000 × 8.00 − 400,500 = 105,500元 → loss 94,500元
    solvent = BorrowerEnd(
        name="t2", tier=2, margin_deposit_fen=20_000_000, reserve_deposit_fen=0,
        cash_fen=5_000_000, reserve_fen=0, debt_fen=40_050_000, principal_fen=40_000_000,
        positions={"600000": 20_000, "000001": 30_000}, liquidating=True,
        penalty_open_fen=100_000,
    )  # fmt: skip
    # tier 3, margin 100,000元: 30,000 × 600000 (unsellable, 324,000元) + cash 10,000元,
    # debt 350,000元 → equity −16,000元, loss 116,000元: margin 100,000; the 16,000 deficit
    # goes to the insurance fund (10,000元 left: 500 of it this liquidation's penalty),
    # then junior (4,000元 left), then senior 2,000元.
    insolvent = BorrowerEnd(
        name="t3", tier=3, margin_deposit_fen=10_000_000, reserve_deposit_fen=0,
        cash_fen=1_000_000, reserve_fen=0, debt_fen=35_000_000, principal_fen=34_900_000,
        positions={"600000": 30_000}, liquidating=True, penalty_open_fen=50_000,
    )  # fmt: skip
    acct = settle(
        [solvent, insolvent], end_marks(LAST), insurance_fen=1_000_000, junior_claim_fen=400_000
    )
    t2, t3 = acct.borrowers
    assert (t2.equity_fen, t2.loss_fen) == (10_550_000, 9_450_000)
    assert t2.positions_fen == 45_600_000 and t2.unsellable_fen == 21_600_000
    assert t2.layers_fen["borrower_margin"] == 9_450_000 and t2.provisional_fen == 0
    assert (t3.equity_fen, t3.loss_fen, t3.unsellable_fen) == (-1_600_000, 11_600_000, 32_400_000)
    assert t3.layers_fen == {
        "borrower_margin": 10_000_000, "borrower_reserve": 0, "penalty": 50_000,
        "insurance": 950_000, "junior": 400_000, "senior": 200_000,
    }  # fmt: skip
    assert acct.provisional_fen == 1_600_000
    assert acct.total_loss_fen == 9_450_000 + 11_600_000 == sum(acct.layers_fen.values())
    assert acct.attribution_ok and acct.open_liquidations == 2
    assert acct.unsellable_fen == 21_600_000 + 32_400_000
    table = tier_table(acct.borrowers)
    assert table[2]["loss_pct_median"] == 47.25 and table[3]["loss_pct_worst"] == 116.0


def test_a_write_off_booked_differently_from_its_principal_fails_the_check():
    bad = BorrowerEnd(
        name="t1", tier=1, margin_deposit_fen=1_000, reserve_deposit_fen=0, cash_fen=0,
        reserve_fen=0, debt_fen=0, principal_fen=0, positions={},
        write_offs=(WriteOff(500, 0, 100, 300, 0),),  # 400 booked for a 500 write-off
    )  # fmt: skip
    acct = settle([bad], {}, insurance_fen=0, junior_claim_fen=0)
    assert not acct.attribution_ok
    assert any("write-off 500 fen booked as 400 fen" in p for p in acct.problems)
    assert set(acct.layers_fen) == set(LAYERS)


def test_tranche_returns_split_accrued_interest_as_the_epoch_close_would():
    # 31 days; senior 8,000,000元 at 5% → due 8,000,000 × 5% × 31/365 = 33,972.60元; it was
    # paid 10,000元 already. Accrued unpaid 50,000元: senior gets the 23,972.60元 gap,
    # premium and fee take 20% of 50,000 = 10,000元, junior the remaining 16,027.40元.
    out = tranche_returns(
        senior_invested_fen=800_000_000, junior_invested_fen=200_000_000,
        senior_nav_fen=801_000_000, junior_nav_fen=190_000_000,
        accrued_interest_fen=5_000_000, senior_apr_bps=500, premium_bps=1_000, fee_bps=1_000,
        start=dt.date(2015, 12, 28), end=dt.date(2016, 1, 28),
    )  # fmt: skip
    senior, junior = out
    assert senior.accrued_fen == 3_397_260 - 1_000_000
    assert junior.accrued_fen == 5_000_000 - senior.accrued_fen - 1_000_000
    assert junior.return_booked_pct == -5.0
    assert junior.return_with_accrued_pct == round(
        100 * (190_000_000 + junior.accrued_fen - 200_000_000) / 200_000_000, 3
    )
