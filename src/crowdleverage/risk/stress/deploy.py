"""A parameter file (`policy.MarginPolicy`, e.g. the calibrated one) on the chain.

`deploy_problems` lists what of a policy the platform cannot run as it is: settings the stress
engine searches but no contract carries (an extra stressed line `line_add_bps`, a full close
below the line in a calm market, financing while stressed) and off-chain settings that differ
from what the platform's code runs (the stressed set's phase-in days, `risk/regime.py`
`stressed_schedule`; the 20-day liquidity window; the regime indicator's thresholds).

`apply_policy` sets the rest through the operators' existing setters: `RiskParams` (tiers,
limits with the penalty, ST haircut, stressed haircut scale and ST haircut, liquidity cap, and
each given security's board haircut), the Liquidator (stressed line share, target, full close;
NAV stop and the ratio it applies below) and the `TranchePool` (minimum junior ratio, maximum
utilisation, senior target, insurance premium, platform fee; the epoch length kept).
`read_policy` reads the same values back, for the test that the shipped file deploys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crowdleverage.chain.codes import code_to_chain
from crowdleverage.chain.margin import LIQUIDATOR
from crowdleverage.chain.params import PARAMS
from crowdleverage.domain import params as P
from crowdleverage.domain.errors import InvalidInput
from crowdleverage.domain.params import BPS
from crowdleverage.domain.security import Security
from crowdleverage.risk.regime import RegimeParams
from crowdleverage.risk.stress.policy import MarginPolicy

POOL = "TranchePool"


def deploy_problems(policy: MarginPolicy) -> list[str]:
    """Why `policy` cannot be deployed as it is (empty: it can)."""
    s, out = policy.stressed, []
    if s.line_add_bps:
        out.append("stressed_regime.line_add_bps: the Liquidator has no extra stressed line")
    if not s.no_new_financing:
        out.append("stressed_regime.no_new_financing: the OrderBook always stops it")
    if policy.liquidation_full_close:
        out.append("liquidation_full_close: the Liquidator closes in full only when stressed")
    if s.phase_in_days != P.STRESSED_PHASE_IN_DAYS:
        out.append(f"stressed_regime.phase_in_days: the operator's schedule runs "
                   f"{P.STRESSED_PHASE_IN_DAYS}")  # fmt: skip
    if policy.liquidity_adv_days != P.LIQUIDITY_ADV_DAYS:
        out.append(f"liquidity_adv_days: the platform publishes {P.LIQUIDITY_ADV_DAYS} days")
    if policy.regime != RegimeParams():
        out.append("regime: the platform's indicator runs risk/regime.py's RegimeParams()")
    if not 5_000 <= s.haircut_mult_bps <= BPS:
        out.append("stressed_regime.haircut_mult_bps: RiskParams takes 5000..10000")
    return out


def apply_policy(
    chain: Any, policy: MarginPolicy, codes: Sequence[str] = (), *, actor: str = "operator"
) -> None:
    """Set `policy` on chain (InvalidInput, naming them, if it has `deploy_problems`); the
    board haircut of each of `codes` (listed securities, their ST status and listing day
    kept)."""
    problems = deploy_problems(policy)
    if problems:
        raise InvalidInput("policy cannot be deployed: " + "; ".join(problems))
    for t in policy.tiers.values():
        chain.send(PARAMS, "set_tier", t.tier, P.engine_tier(t), actor=actor)
    limits = (policy.max_single_security_bps, policy.max_platform_exposure_bps,
              policy.liquidation_penalty_bps, policy.hard_floor_bps,
              policy.max_fee_allowance_bps, policy.withdrawal_floor_with_debt_bps)  # fmt: skip
    chain.send(PARAMS, "set_limits", limits, actor=actor)
    chain.send(PARAMS, "set_st_haircut", policy.st_haircut_bps, actor=actor)
    s = policy.stressed
    chain.send(PARAMS, "set_stressed_haircuts", s.haircut_mult_bps, s.st_haircut_bps,
               actor=actor)  # fmt: skip
    chain.send(PARAMS, "set_liquidity_cap", policy.liquidity_cap_bps, actor=actor)
    for code in codes:
        w = code_to_chain(code)
        _, st, listed = _security(chain, w)
        board = Security.parse(code).board
        chain.send(PARAMS, "set_security", w, policy.haircut_bps[board], st, listed,
                   actor=actor)  # fmt: skip
    chain.send(LIQUIDATOR, "set_stressed_policy", s.line_share_bps, s.target_add_bps,
               s.full_close, actor=actor)  # fmt: skip
    chain.send(LIQUIDATOR, "set_nav_stop", policy.nav_stop_bps, policy.nav_stop_below_bps,
               actor=actor)  # fmt: skip
    epoch_s = int(chain.call(POOL, "rates")[5])
    chain.send(POOL, "set_params", policy.min_junior_ratio_bps, policy.max_utilisation_bps,
               policy.senior_target_apr_bps, policy.insurance_premium_bps,
               policy.platform_fee_bps, epoch_s, actor=actor)  # fmt: skip


def _security(chain: Any, w: int) -> tuple[int, bool, int]:
    raw = chain.call(PARAMS, "securities", w)
    return int(raw[0]), bool(raw[1]), int(raw[2])


def read_policy(chain: Any, codes: Sequence[str] = ()) -> dict[str, Any]:
    """The deployed keys as the chain holds them, named as in the parameter file."""
    from crowdleverage.chain.params import read_params

    cp = read_params(chain)
    senior, premium, fee, junior, util, _ = (int(x) for x in chain.call(POOL, "rates"))
    return {
        "tiers": cp.tiers,
        "max_single_security_bps": cp.limits.max_single_bps,
        "max_platform_exposure_bps": cp.limits.max_exposure_bps,
        "liquidation_penalty_bps": cp.limits.penalty_bps,
        "hard_floor_bps": cp.limits.hard_floor_bps,
        "max_fee_allowance_bps": cp.limits.max_fee_bps,
        "withdrawal_floor_with_debt_bps": cp.limits.withdraw_floor_bps,
        "st_haircut_bps": cp.st_haircut_bps,
        "haircut_mult_bps": cp.stressed_haircut_scale_bps,
        "stressed_st_haircut_bps": cp.stressed_st_haircut_bps,
        "liquidity_cap_bps": cp.liquidity_cap_bps,
        "line_share_bps": int(chain.call(LIQUIDATOR, "stressed_line_bps")),
        "target_add_bps": int(chain.call(LIQUIDATOR, "stressed_target_add_bps")),
        "full_close": bool(chain.call(LIQUIDATOR, "stressed_full_close")),
        "nav_stop_bps": int(chain.call(LIQUIDATOR, "nav_stop_bps")),
        "nav_stop_below_bps": int(chain.call(LIQUIDATOR, "nav_stop_below_bps")),
        "senior_target_apr_bps": senior,
        "insurance_premium_bps": premium,
        "platform_fee_bps": fee,
        "min_junior_ratio_bps": junior,
        "max_utilisation_bps": util,
        "board_haircuts": {c: _security(chain, code_to_chain(c))[0] for c in codes},
    }
