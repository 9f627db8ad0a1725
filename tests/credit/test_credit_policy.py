"""The PD → tier policy, the suitability cap, behavioural review, and PSI monitoring."""

from __future__ import annotations

import numpy as np
import pytest

from crowdleverage.credit.monitor import ALERT_PSI, psi, status
from crowdleverage.credit.policy import Behaviour, CreditPolicy, PdBand


@pytest.mark.parametrize(
    ("pd_", "level", "outcome", "tier", "spread"),
    [
        (0.02, 5, "approve", 3, 150),
        (0.05, 5, "approve", 2, 300),
        (0.10, 5, "approve", 1, 500),
        (0.02, 4, "approve", 1, 150),  # C4 caps the tier at 1
        (0.20, 5, "refer", 1, 800),
        (0.40, 5, "decline", None, None),
        (0.01, 3, "decline", None, None),  # below C4: no financing whatever the PD
    ],
)
def test_pd_bands_and_suitability_cap(
    pd_: float, level: int, outcome: str, tier: int | None, spread: int | None
) -> None:
    d = CreditPolicy().decide(pd_, level)

    assert (d.outcome, d.tier, d.spread_bps) == (outcome, tier, spread)
    assert all(r.en and r.zh for r in d.reasons)


def test_a_non_qualified_investor_is_declined() -> None:
    d = CreditPolicy().decide(0.01, 5, qualified=False)

    assert d.outcome == "decline" and "not_qualified" in {r.code for r in d.reasons}


def test_the_table_is_a_parameter() -> None:
    strict = CreditPolicy(
        bands=(PdBand(0.01, "approve", 1, 900), PdBand(1.01, "decline", None, None))
    )

    assert strict.decide(0.02, 5).outcome == "decline"
    with pytest.raises(AssertionError):
        CreditPolicy(bands=(PdBand(0.5, "approve", 1, 0),))  # PDs above 0.5 uncovered


def test_review_lowers_the_tier_for_behavioural_signals() -> None:
    p = CreditPolicy()

    calm = p.review(3, 150, Behaviour())
    calls = p.review(3, 150, Behaviour(margin_calls=3, max_concentration_bps=3600))
    liquidated = p.review(2, 300, Behaviour(liquidations=1))

    assert (calm.outcome, calm.tier, calm.spread_bps) == ("approve", 3, 150)
    assert (calls.tier, calls.spread_bps) == (1, 350)
    assert {r.code for r in calls.reasons} == {"margin_calls", "concentration"}
    assert liquidated.outcome == "refer", "two notches below tier 1 go to the officer"


def test_psi_is_small_for_the_same_population_and_alerts_on_a_shift() -> None:
    rng = np.random.default_rng(1)
    edges = np.quantile(rng.normal(size=20_000), np.linspace(0, 1, 11)[1:-1])
    expected = np.full(10, 0.1)

    same = np.bincount(np.searchsorted(edges, rng.normal(size=5000)), minlength=10)
    shifted = np.bincount(np.searchsorted(edges, rng.normal(0.8, 1, 5000)), minlength=10)

    assert psi(expected, same) < 0.02 and status(psi(expected, same)) == "stable"
    assert psi(expected, shifted) >= ALERT_PSI and status(psi(expected, shifted)) == "alert"
