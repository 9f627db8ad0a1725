"""The credit policy: PD bands → decision, maximum tier and interest-rate spread, capped by
suitability; behavioural signals adjust an existing borrower's tier at review.

Default table (`DEFAULT_BANDS`, a parameter of `CreditPolicy`):

| PD (calibrated)   | decision | max tier | spread over the tier's rate |
|-------------------|----------|----------|-----------------------------|
| < 4%              | approve  | 3        | 150 bps                     |
| 4% – < 8%         | approve  | 2        | 300 bps                     |
| 8% – < 15%        | approve  | 1        | 500 bps                     |
| 15% – < 30%       | refer    | 1        | 800 bps                     |
| ≥ 30%             | decline  | —        | —                           |

Suitability caps the tier (regulatory, not overridable): C5 → up to tier 3, C4 → tier 1,
C1–C3 → no financing (declined whatever the PD).

Review of an existing borrower (like a user risk premium): each of these signals over the
last review period costs one tier notch and 100 bps — a liquidation (two notches), three or
more margin calls, three or more reserve top-ups, a single position above 35% of the
account's assets. A tier that falls below 1 is referred to the credit officer.

The engine charges each tier's own rate; the spread is recorded with the decision (the
contract has no per-borrower rate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["approve", "refer", "decline"]
NOTCH_SPREAD_BPS = 100


@dataclass(frozen=True, slots=True)
class PdBand:
    below_pd: float  # the band holds PDs below this
    outcome: Outcome
    tier: int | None
    spread_bps: int | None


DEFAULT_BANDS: tuple[PdBand, ...] = (
    PdBand(0.04, "approve", 3, 150),
    PdBand(0.08, "approve", 2, 300),
    PdBand(0.15, "approve", 1, 500),
    PdBand(0.30, "refer", 1, 800),
    PdBand(1.01, "decline", None, None),
)
SUITABILITY_CAP: dict[int, int] = {5: 3, 4: 1}  # C5 → 3, C4 → 1, below: no financing


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    en: str
    zh: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "en": self.en, "zh": self.zh}


@dataclass(frozen=True, slots=True)
class CreditDecision:
    outcome: Outcome
    tier: int | None
    spread_bps: int | None
    reasons: tuple[Reason, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome, "tier": self.tier, "spread_bps": self.spread_bps,
            "reasons": [r.to_dict() for r in self.reasons],
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Behaviour:
    """An existing borrower's record since the last review (from the platform's events)."""

    margin_calls: int = 0
    top_ups: int = 0
    liquidations: int = 0
    max_concentration_bps: int = 0


@dataclass(frozen=True, slots=True)
class CreditPolicy:
    bands: tuple[PdBand, ...] = DEFAULT_BANDS
    suitability_cap: dict[int, int] = field(default_factory=lambda: dict(SUITABILITY_CAP))

    def __post_init__(self) -> None:
        cuts = [b.below_pd for b in self.bands]
        assert cuts == sorted(cuts) and cuts[-1] > 1.0, "dev: bands ascend and cover PD 1"

    def band(self, pd_: float) -> PdBand:
        return next(b for b in self.bands if pd_ < b.below_pd)

    def decide(
        self, pd_: float, suitability_level: int, *, qualified: bool = True
    ) -> CreditDecision:
        """`qualified`: a qualified investor (合格投资者), which margin products require."""
        band = self.band(pd_)
        pct = f"{pd_ * 100:.1f}%"
        reasons = [Reason("pd_band", f"estimated default probability {pct}",
                          f"预计违约概率 {pct}")]  # fmt: skip
        cap = self.suitability_cap.get(suitability_level)
        if not qualified:
            reasons.append(Reason(
                "not_qualified", "not a qualified investor: margin financing is not available",
                "非合格投资者,不能参与配资",
            ))  # fmt: skip
            return CreditDecision("decline", None, None, tuple(reasons))
        if cap is None:
            reasons.append(Reason(
                "suitability_below_c4",
                f"risk level C{suitability_level} is below C4: margin financing is not suitable",
                f"风险承受等级 C{suitability_level} 低于 C4,不适合配资",
            ))  # fmt: skip
            return CreditDecision("decline", None, None, tuple(reasons))
        if band.outcome == "decline":
            reasons.append(Reason("pd_above_limit", "default probability above the policy limit",
                                  "违约概率高于政策上限"))  # fmt: skip
            return CreditDecision("decline", None, None, tuple(reasons))
        assert band.tier is not None and band.spread_bps is not None, "dev: a lending band"
        tier = min(band.tier, cap)
        if tier < band.tier:
            reasons.append(Reason(
                "suitability_cap", f"tier capped at {tier} by risk level C{suitability_level}",
                f"风险承受等级 C{suitability_level} 限制杠杆档位为 {tier}",
            ))  # fmt: skip
        if band.outcome == "refer":
            reasons.append(Reason("refer_band", "a credit officer reviews this default probability",
                                  "违约概率需信审人员人工复核"))  # fmt: skip
        return CreditDecision(band.outcome, tier, band.spread_bps, tuple(reasons))

    def review(self, tier: int, spread_bps: int, signals: Behaviour) -> CreditDecision:
        """Adjust an existing borrower's tier and spread by the platform's own signals."""
        notches: list[Reason] = []
        if signals.liquidations > 0:
            n = signals.liquidations
            r = Reason("liquidation", f"{n} liquidation(s) since the last review",
                       f"上次复核以来被强制平仓 {n} 次")  # fmt: skip
            notches += [r, r]
        if signals.margin_calls >= 3:
            notches.append(Reason("margin_calls", f"{signals.margin_calls} margin calls",
                                  f"追加保证金通知 {signals.margin_calls} 次"))  # fmt: skip
        if signals.top_ups >= 3:
            notches.append(Reason("top_ups", f"{signals.top_ups} reserve top-ups",
                                  f"风险准备金自动补仓 {signals.top_ups} 次"))  # fmt: skip
        if signals.max_concentration_bps > 3500:
            pct = signals.max_concentration_bps / 100
            notches.append(Reason("concentration", f"one position is {pct:.0f}% of assets",
                                  f"单一持仓占资产 {pct:.0f}%"))  # fmt: skip
        new_tier = tier - len(notches)
        spread = spread_bps + NOTCH_SPREAD_BPS * len(notches)
        reasons = tuple(dict.fromkeys(notches))
        if new_tier < 1:
            return CreditDecision("refer", 1, spread, reasons)
        return CreditDecision("approve", new_tier, spread, reasons)
