"""The vectorised stress engine: hand-computed cases, the loss waterfall, and agreement with
the straightforward per-account loop on a real-data-driven market."""

from __future__ import annotations

import numpy as np
import pytest

from crowdleverage.domain import params as P
from crowdleverage.risk.stress.data import fit_factor_model, load_index
from crowdleverage.risk.stress.engine import (
    TRADING_DAYS,
    BookArrays,
    PolicyArrays,
    allocate_deficit,
    make_book,
    simulate,
)
from crowdleverage.risk.stress.market import Market, ModelMarket
from crowdleverage.risk.stress.policy import Book, MarginPolicy
from crowdleverage.risk.stress.reference import simulate_loop
from crowdleverage.risk.stress.scenarios import SCENARIOS


class ScriptedMarket(Market):
    """A market whose closes and seals are given day by day (one path, one stock)."""

    def __init__(self, closes: list[float], sealed: list[bool]) -> None:
        self.P, self.S = 1, 1
        self._closes, self._sealed = closes, sealed
        self.X = np.ones((1, 1))
        self.prev = self.X.copy()
        self.limit = np.full((1, 1), 0.10)
        self.halted = np.zeros((1, 1), dtype=bool)
        self.sealed = np.zeros((1, 1), dtype=bool)
        self.locked = np.zeros((1, 1), dtype=bool)
        self.vol = np.zeros((1, 1))  # no price impact: the hand computation stays simple
        self.adv = np.full((1, 1), 1e15)
        self.index_level = np.ones(1)

    def step(self, t: int) -> None:
        self.prev = self.X
        self.X = np.full((1, 1), self._closes[t])
        self.sealed = np.full((1, 1), self._sealed[t])
        self.index_level = self.X[0].copy()


def one_tier3_account() -> BookArrays:
    return BookArrays(
        tier=np.array([3]),
        idx=np.array([[0]]),
        weight=np.array([[1.0]]),
        margin_w=np.array([1.0]),
        reserve_frac=np.array([0.0]),
        n_securities=1,
    )


POOL, LOANS, SEED = 4_000_000.0, 3_000_000.0, 50_000.0


def run_scripted(closes: list[float], sealed: list[bool], policy: MarginPolicy | None = None):
    pol = PolicyArrays.of(policy or MarginPolicy())
    mkt = ScriptedMarket(closes, sealed)
    return simulate(one_tier3_account(), pol, mkt, np.ones((1, 1)), len(closes), LOANS, POOL,
                    0.2, SEED)  # fmt: skip


def test_borrower_liquidated_in_full_behind_two_sealed_days() -> None:
    # Arrange: tier 3 at 1:3 (margin 1 M, debt 3 M, 4 M of one stock), which falls 10% a day:
    # sealed at limit-down on days 1 and 2, tradable at the limit on day 3.
    res = run_scripted([0.9, 0.81, 0.729], [True, True, False])
    # Hand computation: debt accrues 10%/252 a day; day 2 the ratio 3.24/3.0036 = 107.9% is
    # below 115% while the whole universe is sealed (stressed regime → full close), but nothing
    # can be sold; day 3 all 4 M shares sell at 0.729 minus the 1% penalty.
    r = 0.10 / TRADING_DAYS
    debt = 3.0 * (1 + r) ** 3
    gross = 4.0 * 0.729
    penalty = 0.01 * gross
    deficit = debt - (gross - penalty)
    interest = debt - 3.0
    unit = LOANS / 3.0  # yuan per book unit
    fund = SEED + 0.10 * interest * unit
    # Assert
    assert res.liquidations[0] == 1
    assert res.deficit[0] == pytest.approx(deficit * unit, rel=1e-9)
    assert res.layer_loss["borrower_margin"][0] == pytest.approx(1.0 * unit)
    assert res.layer_loss["penalty"][0] == pytest.approx(penalty * unit, rel=1e-9)
    assert res.layer_loss["insurance"][0] == pytest.approx(fund, rel=1e-9)
    assert res.insurance_exhausted[0]
    junior = deficit * unit - penalty * unit - fund
    assert res.layer_loss["junior"][0] == pytest.approx(junior, rel=1e-9)
    assert res.layer_loss["senior"][0] == 0.0
    assert res.tier_loss[0, 3] == pytest.approx(1.0)


def test_open_liquidation_at_the_end_is_valued_one_more_limit_down() -> None:
    # the horizon ends on day 2 with the account in liquidation behind a seal
    res = run_scripted([0.9, 0.81], [True, True])
    r = 0.10 / TRADING_DAYS
    debt = 3.0 * (1 + r) ** 2
    conservative = 4.0 * 0.81 * 0.9
    unit = LOANS / 3.0
    assert res.liquidations[0] == 1
    assert res.deficit[0] == pytest.approx((debt - conservative) * unit, rel=1e-9)
    assert res.layer_loss["penalty"][0] == 0.0  # nothing was sold


def test_partial_liquidation_back_to_target_leaves_no_deficit() -> None:
    # one −12% day (not sealed: an unlimited move for the test) then calm: ratio 3.52/3 <
    # 115% → sell back to the stressed target (regime on: −12% index drawdown) and stop.
    res = run_scripted([0.88, 0.88, 0.88], [False, False, False])
    assert res.liquidations[0] == 1
    assert res.deficit[0] == 0.0
    assert 0.0 < res.layer_loss["borrower_margin"][0] < LOANS / 3.0


def test_waterfall_hand_computed() -> None:
    deficit = np.array([0.0, 5.0, 60.0, 400.0, 2_000.0])
    out = allocate_deficit(deficit, np.full(5, 10.0), np.full(5, 100.0), np.full(5, 1_000.0))
    assert out["penalty"].tolist() == [0.0, 5.0, 10.0, 10.0, 10.0]
    assert out["insurance"].tolist() == [0.0, 0.0, 50.0, 100.0, 100.0]
    assert out["junior"].tolist() == [0.0, 0.0, 0.0, 290.0, 1_000.0]
    assert out["senior"].tolist() == [0.0, 0.0, 0.0, 0.0, 890.0]
    total = sum(out[k] for k in out)
    assert np.allclose(total, deficit)


def test_vectorised_engine_equals_the_per_account_loop() -> None:
    # Arrange: the real 2015 crash index path drives the fitted model; 3 paths × 40 accounts
    model = fit_factor_model()
    sc = SCENARIOS["crash2015"]
    assert sc.start is not None and sc.end is not None
    f = np.log1p(load_index("csi300").returns(sc.start, sc.end)[1])[:25]
    book = make_book(Book(accounts=40), 30, np.random.default_rng(7))
    pol = PolicyArrays.of(MarginPolicy())

    def market() -> ModelMarket:
        rng = np.random.default_rng(11)
        pick = np.stack([rng.permutation(len(model.codes))[:30] for _ in range(3)])
        return ModelMarket(model, pick, np.tile(f, (3, 1)), np.ones((3, f.size)),
                           model.limit_bps(sc.start), rng)  # fmt: skip

    boards = np.ones((3, 30))
    args = (f.size, 3e8, 5e8, 0.2, 5e6)
    # Act
    vec = simulate(book, pol, market(), boards, *args)
    loop = simulate_loop(book, pol, market(), boards, *args)
    # Assert: something happened, and both agree
    assert vec.liquidations.sum() > 10
    for name in vec.layer_loss:
        np.testing.assert_allclose(vec.layer_loss[name], loop.layer_loss[name], rtol=1e-9,
                                   atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(vec.tier_loss, loop.tier_loss, rtol=1e-9)
    assert np.array_equal(vec.liquidations, loop.liquidations)


def test_umbrella_policy_stops_at_nav_090() -> None:
    pol = PolicyArrays.of(MarginPolicy(), umbrella=True)
    assert pol.liquidation[3] == pytest.approx(0.9 * 4 / 3)
    assert pol.liquidation[1] == pytest.approx(1.8)
    assert pol.always_full_close and not pol.use_reserve


def test_nav_stop_closes_in_full_above_the_ratio_line() -> None:
    # one −6% day, not sealed: ratio 4 × 0.94 / 3 ≈ 125% stays above tier 3's 115% line (and
    # the regime published at the last close is calm), but equity lost 6% of the opening
    # assets, beyond the 5% NAV stop: closed in full that day, no deficit
    res = run_scripted([0.94], [False])
    assert MarginPolicy().nav_stop_bps == P.NAV_STOP_BPS == 500
    assert res.liquidations[0] == 1 and res.deficit[0] == 0.0
    unit = LOANS / 3.0
    sold = 4.0 * 0.94 * unit
    assert res.layer_loss["penalty"][0] == 0.0  # no deficit: the penalty layer absorbed none
    margin_lost = res.layer_loss["borrower_margin"][0]
    r = 0.10 / TRADING_DAYS
    expected = unit - (sold * (1 - 0.01) - 3.0 * (1 + r) * unit)  # margin − what is left
    assert margin_lost == pytest.approx(expected, rel=1e-9)
    # without the stop the line alone waits
    off = run_scripted([0.94], [False], MarginPolicy(nav_stop_bps=0))
    assert off.liquidations[0] == 0
