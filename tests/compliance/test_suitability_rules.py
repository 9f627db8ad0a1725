"""Suitability: questionnaire scoring, product matching, qualified investors, leverage caps."""

from __future__ import annotations

import pytest

from crowdleverage.compliance.suitability import (
    PRODUCTS,
    QUESTIONNAIRE,
    InvestorProfile,
    QualifiedInvestorPolicy,
    RiskLevel,
    check_product,
    max_leverage_tier,
    require_suitable,
    score_questionnaire,
)
from crowdleverage.domain.errors import ComplianceBlock, InvalidInput

YUAN = 100


def answers(pick: str) -> dict[str, int]:
    """'min' chooses each question's lowest-scoring option, 'max' the highest."""
    out = {}
    for q in QUESTIONNAIRE:
        points = [p for _, p in q.options]
        out[q.qid] = points.index(min(points) if pick == "min" else max(points))
    return out


def test_questionnaire_extremes_and_a_middle_case() -> None:
    low = score_questionnaire(answers("min"))
    high = score_questionnaire(answers("max"))
    middle = score_questionnaire(
        {
            "age": 4,
            "income": 1,
            "assets": 1,
            "experience": 2,
            "knowledge": 1,
            "horizon": 1,
            "loss": 2,
        }
    )

    assert (low.score, low.level) == (2, RiskLevel.C1)
    assert (high.score, high.level) == (100, RiskLevel.C5)
    assert (middle.score, middle.level) == (10 + 4 + 6 + 10 + 6 + 6 + 10, RiskLevel.C3)


def test_questionnaire_errors() -> None:
    partial = answers("max")
    del partial["loss"]
    with pytest.raises(InvalidInput, match="'loss' is not answered"):
        score_questionnaire(partial)
    with pytest.raises(InvalidInput, match=r"must be 0\.\.3"):
        score_questionnaire({**answers("max"), "loss": 4})
    with pytest.raises(InvalidInput, match="unknown questions: zodiac"):
        score_questionnaire({**answers("max"), "zodiac": 1})


def profile(level: RiskLevel, assets_yuan: int = 0, income_yuan: int = 0, years: int = 5):
    return InvestorProfile(level, assets_yuan * YUAN, income_yuan * YUAN, years)


def test_level_must_match_rating() -> None:
    assert check_product(profile(RiskLevel.C3), PRODUCTS["senior"]).allowed
    refused = check_product(profile(RiskLevel.C2), PRODUCTS["senior"])
    assert not refused.allowed
    assert refused.reasons == ("risk level C2 is below product rating R3",)


def test_junior_and_leverage_need_qualified_investor() -> None:
    rich = profile(RiskLevel.C5, assets_yuan=3_000_000)
    exact_income = profile(RiskLevel.C5, income_yuan=400_000)
    poor = profile(RiskLevel.C5, assets_yuan=2_999_999)
    novice = profile(RiskLevel.C5, assets_yuan=5_000_000, years=1)

    assert check_product(rich, PRODUCTS["junior"]).allowed
    assert check_product(exact_income, PRODUCTS["margin_t3"]).allowed
    assert not check_product(poor, PRODUCTS["junior"]).allowed
    assert not check_product(novice, PRODUCTS["margin_t1"]).allowed
    with pytest.raises(ComplianceBlock, match="qualified investors only"):
        require_suitable(poor, "junior")
    with pytest.raises(InvalidInput, match="unknown product"):
        require_suitable(rich, "crypto")


def test_thresholds_are_configurable() -> None:
    strict = QualifiedInvestorPolicy(
        min_financial_assets_fen=10_000_000 * YUAN, min_avg_income_fen=10**12
    )
    rich = profile(RiskLevel.C5, assets_yuan=3_000_000)

    assert not check_product(rich, PRODUCTS["junior"], strict).allowed


def test_leverage_tier_capped_by_level() -> None:
    qualified = {"assets_yuan": 5_000_000}

    assert max_leverage_tier(profile(RiskLevel.C5, **qualified)) == 3
    assert max_leverage_tier(profile(RiskLevel.C4, **qualified)) == 1
    assert max_leverage_tier(profile(RiskLevel.C3, **qualified)) == 0
    assert max_leverage_tier(profile(RiskLevel.C5)) == 0  # not qualified
