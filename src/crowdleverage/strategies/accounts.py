"""Institutional strategy accounts (DESIGN.md §12), modelled in Python.

An institutional borrower — a professional investor only — has its own tier (leverage,
lines, rate, limits). Its account holds a strategy's legs in two places:

- on the platform (the MarginEngine as today): the financed long A-share, ETF or basket leg,
  and the account's cash, debt and reserve;
- off the platform, at the broker: legs the platform cannot custody (index futures, H shares,
  any short leg borrowed through securities lending). The broker reports them each day with
  their own margin and daily settlement (`BrokerReport`); the account counts the broker
  account's net liquidation value in its ratio with a conservative haircut on a gain and in
  full on a loss.

Margin ratio = (cash + Σ haircut × on-platform value + haircut_off × max(NLV, 0) + min(NLV, 0))
             / (debt + accrued interest),   all integer fen, rounded against the borrower.

Putting these accounts on chain awaits the MarginEngine split (issue 12): the off-platform
positions need their own reporting hook on the contract; until then this module is the model
the backtests, the brake and the stress hook use.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from crowdleverage.domain.errors import ComplianceBlock, InvalidInput
from crowdleverage.domain.money import mul_div_down
from crowdleverage.domain.params import LIQUIDATION_PENALTY_BPS

BPS = 10_000


class InvestorClass(StrEnum):
    ORDINARY = "ordinary"  # 普通投资者
    PROFESSIONAL = "professional"  # 专业投资者


@dataclass(frozen=True, slots=True)
class InstitutionalTier:
    """The institutional tier (its own, beside retail tiers 1–3)."""

    name: str = "I"
    max_leverage_x100: int = 300  # debt ≤ 3 × own equity
    initial_ratio_bps: int = 13_000
    warning_ratio_bps: int = 12_000
    liquidation_ratio_bps: int = 11_000
    rate_apr_bps: int = 650  # financing rate of the institutional tier
    on_platform_haircut_bps: int = 10_000  # main-board stock, ETF, basket
    off_platform_haircut_bps: int = 5_000  # a gain at the broker counts half
    max_debt_fen: int = 50_000_000_000  # 5亿元 per account
    max_pool_share_bps: int = 2_000  # one strategy account ≤ 20% of pool assets
    penalty_bps: int = LIQUIDATION_PENALTY_BPS


DEFAULT_TIER = InstitutionalTier()


def engine_tier(t: InstitutionalTier) -> tuple[int, int, int, int, int]:
    """`MarginEngine.Tier` in its field order (max leverage as a whole multiple)."""
    return (
        t.max_leverage_x100 // 100, t.initial_ratio_bps, t.warning_ratio_bps,
        t.liquidation_ratio_bps, t.rate_apr_bps,
    )  # fmt: skip


# 《证券期货投资者适当性管理办法》 art. 8: a natural person is a professional investor with
# financial assets ≥ 5,000,000 元 at the end of the last month (or average annual income
# ≥ 500,000 元 over three years) and two years of investment experience; an entity with net
# assets ≥ 20,000,000 元, financial assets ≥ 10,000,000 元 and two years of experience; a
# licensed financial institution or its product always.
PRO_PERSON_ASSETS_FEN = 500_000_000
PRO_PERSON_INCOME_FEN = 50_000_000
PRO_ENTITY_NET_ASSETS_FEN = 2_000_000_000
PRO_ENTITY_FIN_ASSETS_FEN = 1_000_000_000
PRO_EXPERIENCE_YEARS = 2


def classify_investor(
    *,
    entity: bool,
    financial_institution: bool = False,
    financial_assets_fen: int = 0,
    net_assets_fen: int = 0,
    avg_income_fen: int = 0,
    experience_years: int = 0,
) -> InvestorClass:
    """Professional or ordinary investor by the 2017 suitability rules (art. 8)."""
    if min(financial_assets_fen, net_assets_fen, avg_income_fen, experience_years) < 0:
        raise InvalidInput("investor figures must be non-negative")
    if financial_institution:
        return InvestorClass.PROFESSIONAL
    experienced = experience_years >= PRO_EXPERIENCE_YEARS
    if entity:
        rich = (
            net_assets_fen >= PRO_ENTITY_NET_ASSETS_FEN
            and financial_assets_fen >= PRO_ENTITY_FIN_ASSETS_FEN
        )
    else:
        rich = (
            financial_assets_fen >= PRO_PERSON_ASSETS_FEN or avg_income_fen >= PRO_PERSON_INCOME_FEN
        )
    return InvestorClass.PROFESSIONAL if rich and experienced else InvestorClass.ORDINARY


@dataclass(frozen=True, slots=True)
class OffPlatformPosition:
    """A leg held at the broker, as the broker reports it at the day's settlement."""

    venue: str  # "CFFEX", "HKEX", "SSE-lending"
    symbol: str
    quantity: float  # lots (futures) or shares; negative = short
    price: float  # settlement price in the venue's unit (points, HKD, 元)
    value_fen: int  # signed market value in CNY fen (0 for futures: settled daily)
    margin_fen: int  # the broker's requirement on this position


@dataclass(frozen=True, slots=True)
class BrokerReport:
    """The broker's daily statement of the account's off-platform positions."""

    day: dt.date
    cash_fen: int  # broker account cash after the day's settlement
    positions: tuple[OffPlatformPosition, ...]

    @property
    def nlv_fen(self) -> int:
        return self.cash_fen + sum(p.value_fen for p in self.positions)

    @property
    def margin_fen(self) -> int:
        return sum(p.margin_fen for p in self.positions)


@dataclass
class StrategyAccount:
    """The platform's view of one institutional strategy account (integer fen)."""

    borrower_id: str
    tier: InstitutionalTier
    deposit_fen: int  # own margin posted (保证金)
    reserve_fen: int = 0  # top-up reserve (补仓准备金)
    cash_fen: int = 0  # on-platform cash
    debt_fen: int = 0  # financing drawn, with accrued interest
    on_platform_value_fen: int = 0  # financed long leg at the oracle's price
    broker: BrokerReport | None = None
    margin_calls: int = 0
    forced_exits: int = 0
    history: list[tuple[dt.date, int]] = field(default_factory=list)  # (day, ratio bps)

    def ratio_bps(self) -> int | None:
        """Margin ratio in bps (rounded down), None without debt."""
        nlv = self.broker.nlv_fen if self.broker is not None else 0
        return margin_ratio_bps(
            self.tier, self.cash_fen, self.on_platform_value_fen, nlv, self.debt_fen
        )

    def equity_fen(self) -> int:
        nlv = self.broker.nlv_fen if self.broker is not None else 0
        return self.cash_fen + self.reserve_fen + self.on_platform_value_fen + nlv - self.debt_fen

    def max_debt_fen(self, equity_fen: int) -> int:
        lev = equity_fen * self.tier.max_leverage_x100 // 100 if equity_fen > 0 else 0
        return min(lev, self.tier.max_debt_fen)


def margin_ratio_bps(
    tier: InstitutionalTier, cash_fen: int, on_value_fen: int, broker_nlv_fen: int, debt_fen: int
) -> int | None:
    """(cash + haircut × on-platform value + haircut_off × max(NLV, 0) + min(NLV, 0)) / debt
    in bps, every step rounded down (against the borrower); None without debt."""
    if debt_fen <= 0:
        return None
    value = mul_div_down(max(on_value_fen, 0), tier.on_platform_haircut_bps, BPS)
    if broker_nlv_fen > 0:
        off = mul_div_down(broker_nlv_fen, tier.off_platform_haircut_bps, BPS)
    else:
        off = broker_nlv_fen
    return (cash_fen + value + off) * BPS // debt_fen


def open_strategy_account(
    borrower_id: str,
    investor_class: InvestorClass,
    deposit_fen: int,
    *,
    reserve_fen: int = 0,
    tier: InstitutionalTier = DEFAULT_TIER,
) -> StrategyAccount:
    """Open an institutional strategy account; suitability: professional investors only."""
    if investor_class is not InvestorClass.PROFESSIONAL:
        raise ComplianceBlock(
            "suitability: strategy accounts are for professional investors only",
            borrower_id=borrower_id,
            investor_class=investor_class.value,
        )
    if deposit_fen <= 0 or reserve_fen < 0:
        raise InvalidInput("deposit must be positive and reserve non-negative")
    return StrategyAccount(
        borrower_id, tier, deposit_fen, reserve_fen=reserve_fen, cash_fen=deposit_fen
    )


# ── the loss waterfall (DESIGN.md §6) ────────────────────────────────────────────────────────

WATERFALL_ORDER = (
    "borrower_margin",
    "borrower_reserve",
    "penalty",
    "insurance",
    "junior",
    "senior",
)


def waterfall(loss_fen: int, layers: dict[str, int]) -> dict[str, int]:
    """Attribute `loss_fen` down the layers in order; each absorbs up to its size. A loss
    left after the senior layer is reported as `unabsorbed` (never hidden)."""
    if loss_fen < 0 or any(v < 0 for v in layers.values()):
        raise InvalidInput("loss and layers must be non-negative")
    unknown = set(layers) - set(WATERFALL_ORDER)
    if unknown:
        raise InvalidInput(f"unknown waterfall layers {sorted(unknown)}")
    out: dict[str, int] = {}
    left = loss_fen
    for name in WATERFALL_ORDER:
        take = min(left, layers.get(name, 0))
        out[name] = take
        left -= take
    out["unabsorbed"] = left
    return out
