"""A backtest's configuration: a TOML file with four optional tables.

    [strategy]   the strategy's parameters (BasisParams, AHParams or ETFParams fields)
    [account]    deposit_yuan, reserve_yuan, notional_x_equity, impact_bps, borrow_apr_bps,
                 short_margin_bps, grace_days, pool_assets_yuan, insurance_yuan, junior_yuan
    [brake]      enabled (bool) and BrakeParams fields
    [run]        crowd_multiple, regime = "proxy" | "none"

Unknown tables or keys, wrong types and out-of-range values are a ConfigError naming the key;
nothing runs on a half-read file. Amounts are whole 元 in the file and fen inside.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crowdleverage.domain.errors import ConfigError, InvalidInput
from crowdleverage.strategies import ah_premium, basis, etf_premium
from crowdleverage.strategies.backtest import BacktestConfig, RunOptions
from crowdleverage.strategies.base import StrategyFrame
from crowdleverage.strategies.brake import BrakeParams, LiquidityBrake, regime_proxy
from crowdleverage.strategies.data import FUTURES_SPOT, MarketData

Builder = Callable[[MarketData, Any], StrategyFrame]
STRATEGIES: dict[str, tuple[Builder, type]] = {
    "basis": (basis.build, basis.BasisParams),
    "ah": (ah_premium.build, ah_premium.AHParams),
    "etf": (etf_premium.build, etf_premium.ETFParams),
}
YUAN_KEYS = {
    "deposit_yuan": "deposit_fen",
    "reserve_yuan": "reserve_fen",
    "pool_assets_yuan": "pool_assets_fen",
    "insurance_yuan": "insurance_fen",
    "junior_yuan": "junior_fen",
}
ACCOUNT_KEYS = {
    "notional_x_equity",
    "impact_bps",
    "borrow_apr_bps",
    "short_margin_bps",
    "grace_days",
}


@dataclass(frozen=True)
class Setup:
    name: str
    params: Any
    account: BacktestConfig
    brake_params: BrakeParams | None
    crowd_multiple: float
    regime: str

    def frame(self, data: MarketData) -> StrategyFrame:
        return STRATEGIES[self.name][0](data, self.params)

    def brake(self) -> LiquidityBrake | None:
        return LiquidityBrake(self.brake_params) if self.brake_params is not None else None

    def options(self, data: MarketData) -> RunOptions:
        reg = None
        if self.regime == "proxy":
            reg = regime_proxy(data.indices[FUTURES_SPOT["IF"][0]]["close"])
        unit = getattr(self.params, "creation_unit", 900_000)
        fee = getattr(self.params, "conversion_fee_bps", 5.0)
        return RunOptions(reg, self.crowd_multiple, unit, fee)


def _typed(cls: type, table: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k, v in table.items():
        if k not in fields:
            raise ConfigError(f"{where}: unknown key {k!r} (known: {sorted(fields)})")
        default = getattr(cls(), k)
        ok = isinstance(v, type(default)) or (isinstance(default, float) and isinstance(v, int))
        if not ok or isinstance(v, bool) is not isinstance(default, bool):
            raise ConfigError(f"{where}.{k}: expected {type(default).__name__}, got {v!r}")
    try:
        return cls(**table)
    except (InvalidInput, TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def _account(table: dict[str, Any]) -> BacktestConfig:
    kw: dict[str, Any] = {}
    for k, v in table.items():
        if k in YUAN_KEYS:
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"account.{k}: whole 元 ≥ 0 expected, got {v!r}")
            kw[YUAN_KEYS[k]] = v * 100
        elif k in ACCOUNT_KEYS:
            kw[k] = v
        else:
            known = sorted([*YUAN_KEYS, *ACCOUNT_KEYS])
            raise ConfigError(f"account: unknown key {k!r} (known: {known})")
    return _typed(BacktestConfig, kw, "account")


def load_setup(name: str, path: Path | None) -> Setup:
    if name not in STRATEGIES:
        raise InvalidInput(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
    raw: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from err
    unknown = set(raw) - {"strategy", "account", "brake", "run"}
    if unknown:
        raise ConfigError(f"{path}: unknown tables {sorted(unknown)}")
    params = _typed(STRATEGIES[name][1], dict(raw.get("strategy", {})), "strategy")
    account = _account(dict(raw.get("account", {})))
    brake_t = dict(raw.get("brake", {}))
    enabled = brake_t.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("brake.enabled: expected true or false")
    brake = _typed(BrakeParams, brake_t, "brake") if enabled else None
    run_t = dict(raw.get("run", {}))
    crowd = run_t.pop("crowd_multiple", 1.0)
    regime = run_t.pop("regime", "proxy")
    if run_t:
        raise ConfigError(f"run: unknown keys {sorted(run_t)} (known: crowd_multiple, regime)")
    if not isinstance(crowd, int | float) or isinstance(crowd, bool) or crowd <= 0:
        raise ConfigError(f"run.crowd_multiple: a positive number expected, got {crowd!r}")
    if regime not in ("proxy", "none"):
        raise ConfigError(f"run.regime: 'proxy' or 'none', got {regime!r}")
    return Setup(name, params, account, brake, float(crowd), regime)
