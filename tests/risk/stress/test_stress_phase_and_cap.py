"""The stressed set's phase-in (no account closed by the parameters alone on the switch day)
and the liquidity cap on the opening book."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crowdleverage.domain import params as P
from crowdleverage.domain.errors import InvalidInput
from crowdleverage.risk.stress.engine import PolicyArrays, cap_by_liquidity
from crowdleverage.risk.stress.market import Market
from crowdleverage.risk.stress.policy import MarginPolicy, StressedRegime
from crowdleverage.risk.stress.scenarios import RunOptions, run


def test_phase_in_keeps_the_calm_lines_on_the_switch_day_and_follows_the_operator_schedule():
    pol = PolicyArrays.of(MarginPolicy())
    assert pol.stress_phase_in == P.STRESSED_PHASE_IN_DAYS == 5
    tier = np.array([1, 2, 3])
    calm = pol.lines(tier, np.array([False]))
    full = pol.lines(tier, np.array([True]))
    for run_ in range(1, 9):
        w = pol.phase(np.array([run_]))
        warn, liq, target = pol.lines(tier, np.array([True]), w)
        line_bps, scale_bps = P.stressed_phase(run_)
        # the chain's schedule (integer bps, rounded towards the full set) and the engine's
        assert w[0] == pytest.approx(line_bps / P.STRESSED_LINE_BPS, abs=1e-4)
        assert 1 - w[0] * (1 - pol.stress_haircut_mult) == pytest.approx(scale_bps / 1e4, abs=1e-4)
        np.testing.assert_allclose(target, full[2])  # the stressed target applies at once
        if run_ == 1:  # the switch day: calm lines (and haircuts)
            assert (line_bps, scale_bps) == (0, 10_000)
            np.testing.assert_allclose(liq, calm[1])
            np.testing.assert_allclose(warn, calm[0])
        if run_ > 5:
            assert (line_bps, scale_bps) == (P.STRESSED_LINE_BPS, P.STRESSED_HAIRCUT_SCALE_BPS)
            np.testing.assert_allclose(liq, full[1])
    assert P.stressed_phase(3) == (3_600, 9_600)
    with pytest.raises(ValueError):
        P.stressed_phase(0)
    at_once = PolicyArrays.of(MarginPolicy(stressed=StressedRegime(phase_in_days=0)))
    assert at_once.phase(np.array([0, 1, 2])).tolist() == [0.0, 1.0, 1.0]


def test_phase_in_closes_fewer_accounts_on_the_switch_day_on_the_2016_data():
    # Arrange: the real 2016-01 stocks, 200 accounts, the same paths for both policies
    opt = RunOptions(paths=4, seed=20160104, chunk_paths=4, workers=0, umbrella=False)
    from crowdleverage.risk.stress.policy import Book

    book = Book(accounts=200)
    base = MarginPolicy()
    at_once = base.replace(stressed=StressedRegime(phase_in_days=0))
    # Act
    phased = run(["cb2016"], base, book, opt)["cb2016"]
    sudden = run(["cb2016"], at_once, book, opt)["cb2016"]
    # Assert: the switch alone closed accounts at once; phased in, fewer — and fewer closed by
    # the stressed parameters alone over the window
    assert sudden["switch_liquidations_mean"] > phased["switch_liquidations_mean"]
    assert sudden["regime_liquidations_mean"] > phased["regime_liquidations_mean"]
    assert phased["layers"]["senior"]["max"] == 0.0


def test_liquidity_cap_moves_buys_to_other_stocks_then_refuses_financing():
    # Arrange: 1 path, 3 stocks, 2 accounts of 3 positions; stock 0 is illiquid
    idx = np.array([[0, 1, 2], [0, 1, 2]])
    q = np.moveaxis(np.array([[[40.0, 30.0, 30.0], [40.0, 30.0, 30.0]]]), -1, 0).copy()  # K,P,A
    D = np.array([[60.0, 60.0]])
    cap = np.array([[40.0, 1e9, 1e9]])  # stock 0: 40 yuan for the whole platform
    # Act
    lent = cap_by_liquidity(q, D, idx, np.ones(1), cap)
    # Assert: stock 0 at its cap, the rest bought elsewhere up to 40% of each book (40 of 100)
    pos = q[:, 0, :].sum(1)
    assert pos[0] == pytest.approx(40.0)
    assert (q[:, 0, :] <= 40.0 + 1e-9).all()
    # each account moved 20 from stock 0; stocks 1 and 2 had room 10 + 10: all placed
    np.testing.assert_allclose(q[:, 0, :].sum(0), [100.0, 100.0])
    assert lent[0] == pytest.approx(1.0) and D.sum() == pytest.approx(120.0)
    # a cap on every stock: what finds no room is financing not drawn
    q2 = np.moveaxis(np.array([[[40.0, 30.0, 30.0], [40.0, 30.0, 30.0]]]), -1, 0).copy()
    D2 = np.array([[60.0, 60.0]])
    lent2 = cap_by_liquidity(q2, D2, idx, np.ones(1), np.array([[40.0, 50.0, 50.0]]))
    assert q2[:, 0, :].sum() == pytest.approx(140.0)
    assert D2.sum() == pytest.approx(60.0) and lent2[0] == pytest.approx(0.5)


def test_the_cap_binds_on_the_stress_book_and_off_means_off():
    opt = RunOptions(paths=4, seed=20160104, chunk_paths=4, workers=0, umbrella=False)
    from crowdleverage.risk.stress.policy import Book

    book = Book(accounts=200)
    capped = run(["crash2015"], MarginPolicy(), book, opt)["crash2015"]
    free = run(["crash2015"], MarginPolicy(liquidity_cap_bps=0), book, opt)["crash2015"]
    assert MarginPolicy().liquidity_cap_bps == P.LIQUIDITY_CAP_BPS
    assert 0.5 < capped["lent_share_mean"] < 1.0
    assert free["lent_share_mean"] == pytest.approx(1.0)
    # a parameter file without the cap key is refused (the loader is strict)
    d = MarginPolicy().to_toml_dict()
    del d["liquidity_cap_bps"]
    with pytest.raises(InvalidInput, match="missing liquidity_cap_bps"):
        MarginPolicy.from_toml_dict(d)


class _FlatStockFallingIndex(Market):
    """One path, one main-board stock 2% down and flat after; the index falls 10% on day 0,
    so the regime is stressed from day 1 and the stressed haircuts phase in at flat prices."""

    def __init__(self) -> None:
        self.P, self.S = 1, 1
        self.X = np.ones((1, 1))
        self.prev = self.X.copy()
        self.limit = np.full((1, 1), 0.10)
        self.halted = np.zeros((1, 1), dtype=bool)
        self.sealed = np.zeros((1, 1), dtype=bool)
        self.locked = np.zeros((1, 1), dtype=bool)
        self.vol = np.zeros((1, 1))
        self.adv = np.full((1, 1), 1e15)
        self.index_level = np.ones(1)

    def step(self, t: int) -> None:
        self.prev = self.X
        self.X = np.full((1, 1), 0.98)
        self.index_level = np.full(1, 0.9)


def test_a_haircut_step_at_flat_prices_closes_no_account_by_the_nav_stop() -> None:
    """The stress engine follows the keeper: the NAV-stop reference moves with each step of
    the stressed haircuts (issue 13), so a tier-3 account 2% into its 5% stop is not stopped
    by the 10% haircut cut at flat prices; without the shift (before) it was."""
    from crowdleverage.risk.stress.engine import BookArrays, simulate

    # Arrange: no raised lines (only the haircuts and the stop move); one tier-3 account
    policy = MarginPolicy(stressed=StressedRegime(line_share_bps=0))
    book = BookArrays(
        tier=np.array([3]),
        idx=np.array([[0]]),
        weight=np.array([[1.0]]),
        margin_w=np.array([1.0]),
        reserve_frac=np.array([0.0]),
        n_securities=1,
    )
    args = (8, 3_000_000.0, 4_000_000.0, 0.2, 50_000.0)  # horizon, loans, pool, junior, seed
    follows = PolicyArrays.of(policy)
    before = dataclasses.replace(follows, stop_follows_haircuts=False)
    # Act
    now = simulate(book, follows, _FlatStockFallingIndex(), np.ones((1, 1)), *args)
    then = simulate(book, before, _FlatStockFallingIndex(), np.ones((1, 1)), *args)
    # Assert: stressed from day 1, the full stressed scale by day 6 (5 phase steps)
    assert now.stressed_days[0] == 7
    assert follows.stop_follows_haircuts and follows.stress_phase_in == 5
    assert now.liquidations[0] == 0
    assert then.liquidations[0] == 1 and then.regime_liquidations[0] == 1
