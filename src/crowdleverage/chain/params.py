"""The risk parameters on chain (`RiskParams`): applied from the one versioned definition
(`domain.params`), read back by everything off chain, and followed through the setter events.

- `apply_definition`: the operator sets every tier, the limits and the ST haircut from
  `domain.params` and records its version and digest.
- `read_params`: tiers, limits, ST haircut, stressed haircuts, liquidity cap, the regime
  RiskParams values at and version as the chain holds them now.
- `liquidity_headroom`: per security, the published liquidity figure, the cap of financed
  buys and the platform's position against it.
- `ParamsSync`: `TierSet`, `SecuritySet`, `StHaircutSet`, `StressedHaircutsSet` events since
  the last call, applied to a `RiskMonitor` (tier lines, effective haircuts) — the keeper's
  view follows the operator's setters at the next tick; `refresh_haircuts` after a regime
  change (`risk.keeper` `sync_regime`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crowdleverage.chain.codes import code_from_chain, code_to_chain
from crowdleverage.chain.port import ChainPort
from crowdleverage.domain import params as P
from crowdleverage.domain.errors import NotFound
from crowdleverage.domain.params import LeverageTier

PARAMS = "RiskParams"
MAX_TIERS = 8
PARAMS_EVENTS = frozenset({
    "TierSet", "SecuritySet", "LimitsSet", "StHaircutSet", "VersionSet", "StressedHaircutsSet",
    "LiquidityCapSet", "LiquiditySet",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Limits:
    max_single_bps: int
    max_exposure_bps: int
    penalty_bps: int
    hard_floor_bps: int
    max_fee_bps: int
    withdraw_floor_bps: int


@dataclass(frozen=True, slots=True)
class ChainParams:
    """`RiskParams` as read from the chain."""

    version: str
    digest: bytes
    tiers: dict[int, LeverageTier]
    limits: Limits
    st_haircut_bps: int
    stressed_haircut_scale_bps: int = P.STRESSED_HAIRCUT_SCALE_BPS
    stressed_st_haircut_bps: int = P.STRESSED_ST_HAIRCUT_BPS
    liquidity_cap_bps: int = P.LIQUIDITY_CAP_BPS
    stressed: bool = False  # the regime RiskParams values at (the OrderBook's)


def _tier(n: int, raw: Any) -> LeverageTier:
    lev, initial, warning, liquidation, rate = (int(x) for x in raw)
    return LeverageTier(n, lev, initial, warning, liquidation, rate)


def _bytes32(value: Any) -> bytes:
    """A `bytes32` as the adapters return it (bytes, or a 0x-hex string)."""
    return bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)


def apply_definition(port: ChainPort, *, actor: str = "operator") -> None:
    """Set `RiskParams` from `domain.params` (tiers, limits, ST haircut) and record the
    definition's version and digest."""
    for tier in P.TIERS.values():
        port.send(PARAMS, "set_tier", tier.tier, P.engine_tier(tier), actor=actor)
    port.send(PARAMS, "set_limits", P.engine_limits(), actor=actor)
    if int(port.call(PARAMS, "st_haircut_bps")) != P.ST_HAIRCUT_BPS:
        port.send(PARAMS, "set_st_haircut", P.ST_HAIRCUT_BPS, actor=actor)
    stressed = P.engine_stressed_haircuts()
    if tuple(int(x) for x in port.call(PARAMS, "stressed_haircuts")) != stressed:
        port.send(PARAMS, "set_stressed_haircuts", *stressed, actor=actor)
    if int(port.call(PARAMS, "liquidity_cap_bps")) != P.LIQUIDITY_CAP_BPS:
        port.send(PARAMS, "set_liquidity_cap", P.LIQUIDITY_CAP_BPS, actor=actor)
    port.send(PARAMS, "set_version", P.VERSION, P.digest(), actor=actor)


def read_tier(chain: Any, tier: int) -> LeverageTier:
    """One tier's lines and rate as `RiskParams` holds them (NotFound if undefined)."""
    t = _tier(tier, chain.call(PARAMS, "tiers", tier))
    if t.max_leverage == 0:
        raise NotFound(f"tier {tier} is not defined on chain")
    return t


def read_params(chain: Any) -> ChainParams:
    """Every defined tier, the limits, the ST haircut and the version, from the chain."""
    tiers = {}
    for n in range(1, MAX_TIERS + 1):
        t = _tier(n, chain.call(PARAMS, "tiers", n))
        if t.max_leverage:
            tiers[n] = t
    scale, st_stressed = (int(x) for x in chain.call(PARAMS, "stressed_haircuts"))
    return ChainParams(
        version=str(chain.call(PARAMS, "version")),
        digest=_bytes32(chain.call(PARAMS, "digest")),
        tiers=tiers,
        limits=Limits(*(int(x) for x in chain.call(PARAMS, "limits"))),
        st_haircut_bps=int(chain.call(PARAMS, "st_haircut_bps")),
        stressed_haircut_scale_bps=scale,
        stressed_st_haircut_bps=st_stressed,
        liquidity_cap_bps=int(chain.call(PARAMS, "liquidity_cap_bps")),
        stressed=int(chain.call(PARAMS, "regime")) == 1,
    )


@dataclass(frozen=True, slots=True)
class LiquidityHeadroom:
    """One security against the liquidity cap of financed buys (`RiskParams`)."""

    code: str
    published: bool
    liquidity_fen: int  # the published 20-day average traded amount
    cap_fen: int | None  # None: no figure published, no cap
    platform_qty: int  # shares held or being bought across accounts (`MarginEngine`)
    exposure_fen: int  # platform_qty at the conservative price
    headroom_fen: int | None  # cap − exposure (may be < 0 after prices rose); None: no cap

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}


def liquidity_headroom(chain: Any, codes: Sequence[str]) -> list[LiquidityHeadroom]:
    """Per code: the published liquidity figure, the cap, the platform's position valued at
    the oracle's conservative price, and the headroom left for financed buys."""
    out = []
    for code in codes:
        c = code_to_chain(code)
        published = bool(chain.call(PARAMS, "liquidity_published", c))
        liquidity = int(chain.call(PARAMS, "liquidity_fen", c))
        qty = int(chain.call("MarginEngine", "platform_qty", c))
        exposure = qty * int(chain.call("PriceOracle", "conservative_price", c)) if qty else 0
        cap = int(chain.call(PARAMS, "liquidity_cap_fen", c)) if published else None
        out.append(LiquidityHeadroom(
            code, published, liquidity, cap, qty, exposure,
            None if cap is None else cap - exposure,
        ))  # fmt: skip
    return out


def effective_haircut_bps(chain: Any, code: str, day: int) -> int:
    """`RiskParams.haircut`: the haircut the engine values `code` at on trading day `day`
    (before a halt cap)."""
    return int(chain.call(PARAMS, "haircut", code_to_chain(code), day))


def set_st_status(
    chain: Any, statuses: Mapping[str, bool], *, actor: str = "operator"
) -> list[str]:
    """Operator, at the day open: a listed security's ST / *ST status from the day's market
    data (`Bar.st`); only changes are sent (`SecuritySet` then re-values it everywhere).
    Returns the codes whose status changed. Unlisted securities are left alone."""
    from crowdleverage.chain.structs import read_security  # structs reads PARAMS from here

    changed = []
    for code, st in sorted(statuses.items()):
        sec = read_security(chain, code_to_chain(code))
        if sec.haircut_bps == 0 or sec.st == st:
            continue
        chain.send(PARAMS, "set_security", code_to_chain(code), sec.haircut_bps, st,
                   sec.listed_day, actor=actor)  # fmt: skip
        changed.append(code)
    return changed


class ParamsSync:
    """`RiskParams` setter events → a monitor's tier lines and haircuts."""

    def __init__(self, chain: Any, monitor: Any) -> None:
        self.chain = chain
        self.monitor = monitor
        self.cursor = 0
        self.applied = 0  # events applied so far

    def load(self) -> None:
        """Every tier's lines and every monitored security's haircut, read from the chain
        now (at start-up; `sync` then follows the events)."""
        events = self.chain.events(PARAMS)
        self.cursor = events[-1].seq if events else 0
        for n, t in read_params(self.chain).tiers.items():
            self.monitor.set_tier_lines(n, t.warning_ratio_bps, t.liquidation_ratio_bps)
        self._haircuts(set(self.monitor.codes))

    def sync(self) -> int:
        """Apply the setter events since the last call; returns how many were applied."""
        events = self.chain.events(PARAMS, since=self.cursor)
        if not events:
            return 0
        self.cursor = events[-1].seq
        codes: set[str] = set()
        for e in events:
            if e.event == "TierSet":
                _lev, _initial, warning, liquidation, _rate = (int(x) for x in e.args["new"])
                self.monitor.set_tier_lines(int(e.args["tier"]), warning, liquidation)
            elif e.event == "SecuritySet":
                codes.add(code_from_chain(int(e.args["code"])))
            elif e.event in ("StHaircutSet", "StressedHaircutsSet"):
                codes |= set(self.monitor.codes)
        self._haircuts(codes & set(self.monitor.codes))
        self.applied += len(events)
        return len(events)

    def refresh_haircuts(self) -> None:
        """Every monitored security's haircut read again (the regime changed: RiskParams
        values at the stressed haircuts, or back)."""
        self._haircuts(set(self.monitor.codes))

    def _haircuts(self, codes: set[str]) -> None:
        if not codes:
            return
        day = int(self.chain.call("PriceOracle", "trading_day"))
        for code in sorted(codes):
            self.monitor.set_base_haircut(code, effective_haircut_bps(self.chain, code, day))
