"""Investor suitability (投资者适当性): a risk questionnaire scored to C1..C5, products rated
R1..R5, qualified-investor tests, and the leverage tier a level allows.

A product may be sold only to an investor whose level is at least the product's rating
(C3 may buy R1..R3). The junior tranche and every margin account additionally need a qualified
investor (合格投资者; thresholds configurable, defaults after the 2018 asset-management rules:
financial assets ≥ 3,000,000 CNY or average annual income ≥ 400,000 CNY over three years, and
two years of investment experience). The leverage tier is capped by the level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from crowdleverage.domain.errors import ComplianceBlock, InvalidInput
from crowdleverage.domain.params import TIERS


class RiskLevel(IntEnum):
    C1 = 1  # conservative
    C2 = 2
    C3 = 3
    C4 = 4
    C5 = 5  # aggressive


@dataclass(frozen=True, slots=True)
class Question:
    qid: str
    text: str
    options: tuple[tuple[str, int], ...]  # (answer text, points)


QUESTIONNAIRE: tuple[Question, ...] = (
    Question(
        "age",
        "年龄 Age",
        (("≥ 70", 0), ("60-69", 2), ("18-29", 6), ("50-59", 6), ("30-49", 10)),
    ),
    Question(
        "income",
        "家庭年收入 Household annual income (CNY)",
        (("< 100k", 0), ("100k-500k", 4), ("500k-1m", 8), ("> 1m", 12)),
    ),
    Question(
        "assets",
        "金融资产 Financial assets (CNY)",
        (("< 500k", 0), ("500k-3m", 6), ("3m-10m", 12), ("> 10m", 16)),
    ),
    Question(
        "experience",
        "投资经验 Years investing in stocks, funds or derivatives",
        (("none", 0), ("< 2", 4), ("2-5", 10), ("> 5", 16)),
    ),
    Question(
        "knowledge",
        "金融知识 Knowledge of margin trading and forced liquidation",
        (("none", 0), ("some", 6), ("good, traded on margin before", 14)),
    ),
    Question(
        "horizon",
        "投资期限 Intended holding period",
        (("< 1 year", 2), ("1-3 years", 6), ("> 3 years", 10)),
    ),
    Question(
        "loss",
        "可承受亏损 Largest loss you could bear",
        (("none", 0), ("≤ 10%", 4), ("10-30%", 10), ("> 30% incl. more than the margin", 22)),
    ),
)

# Upper bounds of the total score for C1..C4; above the last is C5 (max total = 100).
LEVEL_BOUNDS: tuple[int, int, int, int] = (20, 40, 60, 80)


@dataclass(frozen=True, slots=True)
class QuestionnaireResult:
    score: int
    level: RiskLevel
    answers: dict[str, int] = field(default_factory=dict)


def score_questionnaire(
    answers: Mapping[str, int], questions: tuple[Question, ...] = QUESTIONNAIRE
) -> QuestionnaireResult:
    """`answers` maps question id -> chosen option index. Every question must be answered."""
    known = {q.qid for q in questions}
    extra = sorted(set(answers) - known)
    if extra:
        raise InvalidInput(f"unknown questions: {', '.join(extra)}", questions=extra)
    score = 0
    for q in questions:
        if q.qid not in answers:
            raise InvalidInput(f"question {q.qid!r} is not answered", question=q.qid)
        idx = answers[q.qid]
        if not isinstance(idx, int) or not 0 <= idx < len(q.options):
            raise InvalidInput(
                f"answer {idx!r} to {q.qid!r} must be 0..{len(q.options) - 1}", question=q.qid
            )
        score += q.options[idx][1]
    level = RiskLevel.C5
    for i, bound in enumerate(LEVEL_BOUNDS):
        if score <= bound:
            level = RiskLevel(i + 1)
            break
    return QuestionnaireResult(score, level, dict(answers))


@dataclass(frozen=True, slots=True)
class Product:
    code: str
    name: str
    rating: int  # R1..R5 as 1..5
    needs_qualified: bool
    leverage_tier: int | None = None  # for margin accounts


# Ratings: the senior tranche has a target yield and loss protection from the junior tranche
# and the insurance pool (R3); the junior tranche takes first loss (R4); margin accounts with
# leverage are R4 (1:1) and R5 (1:2, 1:3).
PRODUCTS: dict[str, Product] = {
    "senior": Product("senior", "优先级份额 Senior tranche", 3, False),
    "junior": Product("junior", "劣后级份额 Junior tranche", 4, True),
    "margin_t1": Product("margin_t1", "配资账户 1:1", 4, True, 1),
    "margin_t2": Product("margin_t2", "配资账户 1:2", 5, True, 2),
    "margin_t3": Product("margin_t3", "配资账户 1:3", 5, True, 3),
}


@dataclass(frozen=True, slots=True)
class QualifiedInvestorPolicy:
    min_financial_assets_fen: int = 300_000_000  # 3,000,000 CNY
    min_avg_income_fen: int = 40_000_000  # 400,000 CNY a year over the last three years
    min_experience_years: int = 2


@dataclass(frozen=True, slots=True)
class InvestorProfile:
    level: RiskLevel
    financial_assets_fen: int
    avg_annual_income_fen: int
    experience_years: int


def is_qualified(profile: InvestorProfile, policy: QualifiedInvestorPolicy) -> bool:
    wealthy = (
        profile.financial_assets_fen >= policy.min_financial_assets_fen
        or profile.avg_annual_income_fen >= policy.min_avg_income_fen
    )
    return wealthy and profile.experience_years >= policy.min_experience_years


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reasons: tuple[str, ...]


def check_product(
    profile: InvestorProfile,
    product: Product,
    policy: QualifiedInvestorPolicy | None = None,
) -> Decision:
    policy = policy or QualifiedInvestorPolicy()
    reasons: list[str] = []
    if profile.level < product.rating:
        reasons.append(
            f"risk level C{int(profile.level)} is below product rating R{product.rating}"
        )
    if product.needs_qualified and not is_qualified(profile, policy):
        reasons.append(
            "product is for qualified investors only (financial assets ≥ "
            f"{policy.min_financial_assets_fen // 100:,} CNY or income ≥ "
            f"{policy.min_avg_income_fen // 100:,} CNY/yr, and ≥ "
            f"{policy.min_experience_years} years' experience)"
        )
    return Decision(not reasons, tuple(reasons))


def require_suitable(
    profile: InvestorProfile, product_code: str, policy: QualifiedInvestorPolicy | None = None
) -> None:
    product = PRODUCTS.get(product_code)
    if product is None:
        raise InvalidInput(f"unknown product {product_code!r}; known: {', '.join(PRODUCTS)}")
    decision = check_product(profile, product, policy)
    if not decision.allowed:
        raise ComplianceBlock(
            f"{product.name}: " + "; ".join(decision.reasons), product=product_code
        )


def max_leverage_tier(
    profile: InvestorProfile, policy: QualifiedInvestorPolicy | None = None
) -> int:
    """Highest leverage tier (1..3) the investor may open; 0 for none."""
    allowed = [
        p.leverage_tier
        for p in PRODUCTS.values()
        if p.leverage_tier is not None and check_product(profile, p, policy).allowed
    ]
    best = max(allowed, default=0)
    assert best == 0 or best in TIERS, "dev: product tiers exist in domain.params"
    return best
