"""What a stress run simulates: the platform's margin policy (DESIGN.md §7, §11) and the book.

`MarginPolicy` holds the parameters that the calibration searches, in the units and with the
names of `domain/params.py` (ratios in bps), plus the stressed-regime settings and the regime
indicator's thresholds. `Book` says how large the pool is and how it is lent. Both read and
write the platform's parameter format: a TOML file whose keys are params.py's field names in
lower case (`[tiers.3]` rows of `LeverageTier`, `[haircut_bps]` by board, scalars), with a
`[stressed_regime]` table and a `[regime]` table for the indicator.

The file carries every key the platform reads, on chain (`deploy.apply_policy`: RiskParams,
the Liquidator's stressed policy and NAV stop, the TranchePool's rates) and off it (the
stressed set's phase-in days, the liquidity window, the regime indicator); the loader refuses
a file with a key missing or unknown.

`MarginPolicy()` is the platform's deployed set: params.py's values, the Liquidator's stressed
policy (params.py STRESSED_*) and the regime indicator of risk/regime.py (`RegimeParams`).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crowdleverage.domain import params as P
from crowdleverage.domain.errors import InvalidInput
from crowdleverage.domain.params import BPS, LeverageTier
from crowdleverage.domain.security import Board
from crowdleverage.risk.regime import RegimeParams

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class StressedRegime:
    """What changes while the market is stressed (DESIGN §11). The defaults are what the
    platform deploys: the Liquidator's stressed policy and RiskParams' stressed haircut
    scale (domain/params.py STRESSED_*)."""

    line_share_bps: int = P.STRESSED_LINE_BPS  # the line rises by this share of (initial − line)
    line_add_bps: int = 0  # warning and liquidation lines rise by this much on top
    # haircuts are multiplied by this (9,000: 100% becomes 90%): RiskParams' stressed scale
    haircut_mult_bps: int = P.STRESSED_HAIRCUT_SCALE_BPS
    target_add_bps: int = P.STRESSED_TARGET_ADD_BPS  # partial mode: initial ratio + this
    full_close: bool = P.STRESSED_FULL_CLOSE  # below the line, close the account in full
    no_new_financing: bool = True
    # the raised lines and the stressed haircut scale phase in linearly over this many
    # stressed days (0: at once at the switch): the switch day keeps the calm lines and
    # haircuts, each later stressed day adds 1/N of the rise (the operator's schedule,
    # risk/regime.py `stressed_schedule`)
    phase_in_days: int = P.STRESSED_PHASE_IN_DAYS
    st_haircut_bps: int = P.STRESSED_ST_HAIRCUT_BPS  # RiskParams: stressed ST / *ST haircut


@dataclass(frozen=True, slots=True)
class MarginPolicy:
    tiers: dict[int, LeverageTier] = field(default_factory=lambda: dict(P.TIERS))
    haircut_bps: dict[Board, int] = field(default_factory=lambda: dict(P.HAIRCUT_BPS))
    halted_haircut_bps: int = P.HALTED_HAIRCUT_BPS
    liquidation_penalty_bps: int = P.LIQUIDATION_PENALTY_BPS
    insurance_premium_bps: int = P.INSURANCE_PREMIUM_BPS
    platform_fee_bps: int = P.PLATFORM_FEE_BPS
    senior_target_apr_bps: int = P.SENIOR_TARGET_APR_BPS
    min_junior_ratio_bps: int = P.MIN_JUNIOR_RATIO_BPS
    max_utilisation_bps: int = P.MAX_UTILISATION_BPS
    liquidation_full_close: bool = False  # also in calm markets: close in full below the line
    nav_stop_bps: int = P.NAV_STOP_BPS  # Liquidator.nav_stop_bps: closed in full below it
    nav_stop_below_bps: int = P.NAV_STOP_BELOW_BPS  # ... when the ratio is below this
    # RiskParams.liquidity_cap_bps: after a financed buy the platform's position in a security
    # ≤ this share of its average daily amount (0: not modelled)
    liquidity_cap_bps: int = P.LIQUIDITY_CAP_BPS
    liquidity_adv_days: int = P.LIQUIDITY_ADV_DAYS  # the published figure's window (days)
    # what else the platform deploys (RiskParams: ST haircut, `Limits`); the stress engine
    # models the 40% single-security share, not the rest
    st_haircut_bps: int = P.ST_HAIRCUT_BPS
    max_single_security_bps: int = P.MAX_SINGLE_SECURITY_BPS
    max_platform_exposure_bps: int = P.MAX_PLATFORM_EXPOSURE_BPS
    hard_floor_bps: int = P.HARD_FLOOR_BPS
    max_fee_allowance_bps: int = P.MAX_FEE_ALLOWANCE_BPS
    withdrawal_floor_with_debt_bps: int = P.WITHDRAWAL_FLOOR_WITH_DEBT_BPS
    stressed: StressedRegime = StressedRegime()
    regime: RegimeParams = field(default_factory=RegimeParams)  # risk/regime.py's indicator

    def __post_init__(self) -> None:
        for t in self.tiers.values():
            if not (t.initial_ratio_bps >= t.warning_ratio_bps >= t.liquidation_ratio_bps > BPS):
                raise InvalidInput(
                    f"tier {t.tier}: need initial ≥ warning ≥ liquidation > 100%",
                    tier=t.tier,
                )
        for board, h in self.haircut_bps.items():
            if not 0 <= h <= BPS:
                raise InvalidInput(f"haircut for {board} must be within 0..10000 bps")
        if not 0 <= self.nav_stop_bps <= 5_000:
            raise InvalidInput("nav_stop_bps must be within 0..5000 (the Liquidator's bound)")
        if not 0 <= self.liquidity_cap_bps <= BPS:
            raise InvalidInput("liquidity_cap_bps must be within 0..10000 (0: not modelled)")
        if not 0 < self.min_junior_ratio_bps < BPS:
            raise InvalidInput("min_junior_ratio_bps must be within 1..9999")
        if self.liquidity_adv_days < 1 or self.stressed.phase_in_days < 0:
            raise InvalidInput("liquidity_adv_days must be ≥ 1 and phase_in_days ≥ 0")
        if not 0 <= self.st_haircut_bps <= BPS or not 0 <= self.stressed.st_haircut_bps <= BPS:
            raise InvalidInput("ST haircuts must be within 0..10000 bps")

    def replace(self, **changes: Any) -> MarginPolicy:
        return dataclasses.replace(self, **changes)

    # ── the platform's parameter format ─────────────────────────────────────────────
    def to_toml_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "tiers": {
                str(k): {f.name: getattr(t, f.name) for f in dataclasses.fields(t)}
                for k, t in sorted(self.tiers.items())
            },
            "haircut_bps": {b.value: v for b, v in self.haircut_bps.items()},
            "halted_haircut_bps": self.halted_haircut_bps,
            "liquidation_penalty_bps": self.liquidation_penalty_bps,
            "insurance_premium_bps": self.insurance_premium_bps,
            "platform_fee_bps": self.platform_fee_bps,
            "senior_target_apr_bps": self.senior_target_apr_bps,
            "min_junior_ratio_bps": self.min_junior_ratio_bps,
            "max_utilisation_bps": self.max_utilisation_bps,
            "liquidation_full_close": self.liquidation_full_close,
            "nav_stop_bps": self.nav_stop_bps,
            "nav_stop_below_bps": self.nav_stop_below_bps,
            "liquidity_cap_bps": self.liquidity_cap_bps,
            **{k: getattr(self, k) for k in _EXTRA_SCALARS},
            "stressed_regime": dataclasses.asdict(self.stressed),
            "regime": dataclasses.asdict(self.regime),
        }

    @classmethod
    def from_toml_dict(cls, d: dict[str, Any]) -> MarginPolicy:
        """Strict: every key the platform reads must be there, and nothing else (a file
        written before a key existed is refused with the keys it lacks; rewrite it with
        `crowdlev stress calibrate`)."""
        try:
            if d.get("format_version") != FORMAT_VERSION:
                raise InvalidInput(f"format_version must be {FORMAT_VERSION}")
            _exact_keys("", d, set(MarginPolicy().to_toml_dict()))
            _exact_keys("stressed_regime", d["stressed_regime"],
                        {f.name for f in dataclasses.fields(StressedRegime)})  # fmt: skip
            _exact_keys("regime", d["regime"], {f.name for f in dataclasses.fields(RegimeParams)})
            _exact_keys("haircut_bps", d["haircut_bps"], {b.value for b in Board})
            tier_keys = {f.name for f in dataclasses.fields(LeverageTier)}
            for k, v in d["tiers"].items():
                _exact_keys(f"tiers.{k}", v, tier_keys)
                if int(v["tier"]) != int(k):
                    raise InvalidInput(f"tiers.{k}: tier is {v['tier']}")
            tiers = {int(k): LeverageTier(**v) for k, v in d["tiers"].items()}
            haircuts = {Board(k): int(v) for k, v in d["haircut_bps"].items()}
            scalars = {
                k: int(d[k])
                for k in (
                    "halted_haircut_bps",
                    "liquidation_penalty_bps",
                    "insurance_premium_bps",
                    "platform_fee_bps",
                    "senior_target_apr_bps",
                    "min_junior_ratio_bps",
                    "max_utilisation_bps",
                    "nav_stop_bps",
                    "nav_stop_below_bps",
                    "liquidity_cap_bps",
                    *_EXTRA_SCALARS,
                )
            }
            return cls(
                tiers=tiers,
                haircut_bps=haircuts,
                stressed=StressedRegime(**d["stressed_regime"]),
                regime=RegimeParams(**d["regime"]),
                liquidation_full_close=bool(d["liquidation_full_close"]),
                **scalars,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"parameter file is not in the platform's format: {exc}") from exc


_EXTRA_SCALARS = (
    "liquidity_adv_days",
    "st_haircut_bps",
    "max_single_security_bps",
    "max_platform_exposure_bps",
    "hard_floor_bps",
    "max_fee_allowance_bps",
    "withdrawal_floor_with_debt_bps",
)


def _exact_keys(where: str, d: dict[str, Any], want: set[str]) -> None:
    missing, extra = sorted(want - set(d)), sorted(set(d) - want)
    if missing or extra:
        at = f" in [{where}]" if where else ""
        raise InvalidInput(
            f"parameter file{at}: "
            + "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unknown {', '.join(extra)}" if extra else "",
                )
                if part
            )
        )


@dataclass(frozen=True, slots=True)
class Book:
    """The lent book a run stresses: every tier borrows at its maximum leverage."""

    pool_fen: int = 500_000_000_00  # senior + junior
    utilisation_bps: int = 7_000
    insurance_seed_bps: int = 100  # of the pool
    accounts: int = 1_000
    tier_mix_bps: tuple[int, int, int] = (3_000, 4_000, 3_000)
    positions_per_account: int = 4
    reserve_share_bps: int = 3_000  # accounts with a top-up reserve
    reserve_bps_of_margin: int = 2_000  # its size relative to the margin
    horizon_days: int = 60

    def __post_init__(self) -> None:
        if self.pool_fen <= 0 or self.accounts < 1 or self.positions_per_account < 1:
            raise InvalidInput("book: pool, accounts and positions must be positive")
        if not 0 < self.utilisation_bps <= BPS:
            raise InvalidInput("book: utilisation must be within 1..10000 bps")
        if sum(self.tier_mix_bps) != BPS:
            raise InvalidInput("book: the tier mix must add up to 10000 bps")
        if self.horizon_days < 1:
            raise InvalidInput("book: horizon must be at least one day")


def write_params_toml(policy: MarginPolicy, path: Path, comment: str = "") -> Path:
    """Write the policy in the platform's parameter format (atomically)."""
    import tomli_w

    text = tomli_w.dumps(policy.to_toml_dict())
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(head + text, encoding="utf-8")
    tmp.replace(path)
    return path


def load_params_toml(path: Path) -> MarginPolicy:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidInput(f"parameter file {path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"parameter file {path} is not TOML: {exc}") from exc
    return MarginPolicy.from_toml_dict(data)
