"""Starting risk parameters (DESIGN.md §7). Ratios and rates in basis points (1% = 100 bps)
so that they are exact integers on and off chain.

This module is the one versioned definition the `RiskParams` contract is deployed from
(`chain.params.apply_definition`, which also records `VERSION` and `digest()` on chain). Once
deployed, the chain is the source: the monitor, keeper, account status, API and transparency
page read the values back from `RiskParams` and follow its setter events
(`chain.params.read_params`, `ParamsSync`); change `VERSION` with any value below."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from crowdleverage.domain.security import Board

BPS = 10_000


@dataclass(frozen=True, slots=True)
class LeverageTier:
    tier: int
    max_leverage: int  # financing : margin, e.g. 3 for 1:3
    initial_ratio_bps: int
    warning_ratio_bps: int
    liquidation_ratio_bps: int
    rate_apr_bps: int


TIERS: dict[int, LeverageTier] = {
    1: LeverageTier(1, 1, 20_000, 15_000, 13_000, 800),
    2: LeverageTier(2, 2, 15_000, 13_500, 12_000, 900),
    3: LeverageTier(3, 3, 13_300, 12_500, 11_500, 1_000),
}

HAIRCUT_BPS: dict[Board, int] = {
    Board.MAIN: 10_000,
    Board.STAR: 8_000,
    Board.CHINEXT: 8_000,
    Board.BSE: 8_000,
}
HALTED_HAIRCUT_BPS = 5_000
ST_HAIRCUT_BPS = 0  # ST / *ST securities: no collateral value by default
NEW_LISTING_HAIRCUT_BPS = 0

MAX_SINGLE_SECURITY_BPS = 4_000  # one security ≤ 40% of an account's assets
MAX_SECURITIES_PER_ACCOUNT = 10
MAX_PLATFORM_EXPOSURE_BPS = 500  # ≤ 5% of pool assets per security
MIN_JUNIOR_RATIO_BPS = 2_000
MAX_UTILISATION_BPS = 9_000
SENIOR_TARGET_APR_BPS = 500
INSURANCE_PREMIUM_BPS = 1_000  # of interest
PLATFORM_FEE_BPS = 1_000  # of interest
LIQUIDATION_PENALTY_BPS = 100  # of sold value, to the insurance pool
WITHDRAWAL_FLOOR_WITH_DEBT_BPS = 30_000
HARD_FLOOR_BPS = 10_500  # below this ratio a liquidation sells everything
MAX_FEE_ALLOWANCE_BPS = 30  # fee allowance reserved on buys


# ── stressed-regime haircuts (RiskParams.vy's defaults; a test checks the chain) ──
# While the regime is stressed every haircut is scaled by this (rounded down): main board
# 100% → 90%, STAR / ChiNext / BSE 80% → 72%; an ST / *ST security at most the stressed ST
# haircut.
STRESSED_HAIRCUT_SCALE_BPS = 9_000
STRESSED_ST_HAIRCUT_BPS = 0

# ── liquidity cap (RiskParams.vy's default) ──
# After a buy that draws financing, the platform's position in the security (at the order's
# limit) ≤ this share of its published 20-day average traded amount: at 10% of the market's
# daily amount the whole platform position sells in about one normal day. A security whose
# figure was never published has no cap (the pool-share limit above still holds); a
# published 0 refuses every financed buy.
LIQUIDITY_CAP_BPS = 1_000
LIQUIDITY_ADV_DAYS = 20


def stressed_haircut_bps(
    haircut_bps: int,
    st: bool = False,
    scale_bps: int = STRESSED_HAIRCUT_SCALE_BPS,
    st_bps: int = STRESSED_ST_HAIRCUT_BPS,
) -> int:
    """The stressed value of an (effective, normal-regime) haircut, as `RiskParams` computes
    it: scaled down, and at most the stressed ST haircut for an ST / *ST security."""
    h = haircut_bps * scale_bps // BPS
    return min(h, st_bps) if st else h


STRESSED_HAIRCUT_BPS: dict[Board, int] = {
    b: stressed_haircut_bps(v) for b, v in HAIRCUT_BPS.items()
}

# -2: stressed haircuts and the liquidity cap; -3: the NAV stop
VERSION = "2026.11-3"  # of the definition below; recorded on chain with its digest


def engine_limits() -> tuple[int, int, int, int, int, int]:
    """`RiskParams.Limits` in its field order, from the values above."""
    return (
        MAX_SINGLE_SECURITY_BPS, MAX_PLATFORM_EXPOSURE_BPS, LIQUIDATION_PENALTY_BPS,
        HARD_FLOOR_BPS, MAX_FEE_ALLOWANCE_BPS, WITHDRAWAL_FLOOR_WITH_DEBT_BPS,
    )  # fmt: skip


def engine_stressed_haircuts() -> tuple[int, int]:
    """`RiskParams.Stressed` in its field order."""
    return STRESSED_HAIRCUT_SCALE_BPS, STRESSED_ST_HAIRCUT_BPS


def engine_tier(t: LeverageTier) -> tuple[int, int, int, int, int]:
    """`RiskParams.Tier` in its field order."""
    return (
        t.max_leverage, t.initial_ratio_bps, t.warning_ratio_bps, t.liquidation_ratio_bps,
        t.rate_apr_bps,
    )  # fmt: skip


def definition() -> dict[str, object]:
    """What `RiskParams` is deployed from, in canonical (JSON-able) form."""
    return {
        "version": VERSION,
        "tiers": {str(t.tier): list(engine_tier(t)) for t in TIERS.values()},
        "limits": list(engine_limits()),
        "st_haircut_bps": ST_HAIRCUT_BPS,
        "board_haircut_bps": {b.value: v for b, v in sorted(HAIRCUT_BPS.items())},
        "stressed_haircuts": list(engine_stressed_haircuts()),
        "liquidity_cap_bps": LIQUIDITY_CAP_BPS,
    }


def digest() -> bytes:
    """SHA-256 of the canonical definition (recorded on chain next to `VERSION`)."""
    raw = json.dumps(definition(), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).digest()


# ── stressed-regime liquidation (Liquidator.vy's defaults, issue 13; a test checks the chain) ──
# While the regime published at the last close is stressed, the liquidation line rises by this
# share of (initial ratio − liquidation line): 10,000 puts it at the initial ratio.
STRESSED_LINE_BPS = 9_000
STRESSED_TARGET_ADD_BPS = 1_000  # partial mode: de-lever to the initial ratio + this
STRESSED_FULL_CLOSE = True  # below the stressed line, close the account in full
# Phase-in (off-chain operator schedule, issue 13): the raised lines and the stressed haircut
# scale are not applied to the book at the switch at once — that alone closed accounts that
# were fine a minute before, selling into the falling market. The switch day keeps the calm
# lines and haircuts (new financing stops, the stressed liquidation mode and target apply) and
# every account that the full stressed set would put below its warning line is warned; each
# later stressed day the operator raises `Liquidator.stressed_line_bps` and lowers
# `RiskParams`' stressed scale by 1/N of the step (`risk/regime.py` `stressed_schedule`).
STRESSED_PHASE_IN_DAYS = 5


def stressed_phase(run: int, days: int = STRESSED_PHASE_IN_DAYS) -> tuple[int, int]:
    """(Liquidator line bps, RiskParams haircut scale bps) on the `run`-th consecutive
    stressed day (1: the switch day), phased in linearly over `days` (0: at once); rounded
    towards the full stressed set (the line up, the scale down)."""
    if run < 1:
        raise ValueError("run counts stressed days from 1")
    if days <= 0 or run > days:
        return STRESSED_LINE_BPS, STRESSED_HAIRCUT_SCALE_BPS
    k = run - 1
    line = -(-STRESSED_LINE_BPS * k // days)
    scale = BPS - (-(-(BPS - STRESSED_HAIRCUT_SCALE_BPS) * k // days))
    return line, scale


# ── NAV stop (Liquidator.vy's default, issue 13; a test checks the chain) ──
# Like an umbrella trust's stop line (NAV 0.90 of the start, close in full), per account: the
# keeper records the account's assets and equity when it first has debt (and again after a
# liquidation ended, `Liquidator.set_reference`); once equity < reference equity − this share
# of reference assets, the account is closed in full whatever its ratio. An umbrella at
# NAV 0.90 stops at 10% of its assets; 5% acts before the seals of a crash day (the 2016-01
# replay: 8% crossed later on 01-04, behind limit-down seals) and leaves room for the 1%
# penalty and the costs.
NAV_STOP_BPS = 500
# The stop applies only below this ratio (the withdrawal floor with debt: an account above it,
# e.g. barely levered, is no risk to the pool and is left to its owner).
NAV_STOP_BELOW_BPS = 30_000


def nav_stopped(
    assets_fen: int,
    debt_fen: int,
    ref_assets_fen: int,
    ref_equity_fen: int,
    stop_bps: int = NAV_STOP_BPS,
    below_bps: int = NAV_STOP_BELOW_BPS,
) -> bool:
    """Whether an account is below its NAV stop, as the Liquidator decides it."""
    if stop_bps == 0 or ref_assets_fen == 0 or assets_fen * BPS >= below_bps * debt_fen:
        return False
    return assets_fen * BPS + stop_bps * ref_assets_fen < (debt_fen + ref_equity_fen) * BPS


def stressed_lines(t: LeverageTier, line_bps: int = STRESSED_LINE_BPS) -> tuple[int, int]:
    """(warning, liquidation) lines of tier `t` while stressed, as the Liquidator computes
    them (integer bps, rounded down)."""
    liq = t.liquidation_ratio_bps + (
        (t.initial_ratio_bps - t.liquidation_ratio_bps) * line_bps // BPS
    )
    return max(t.warning_ratio_bps, liq), liq
