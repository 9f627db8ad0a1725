"""Typed reads of the contracts' structs: a getter's tuple is decoded by the component names of
the contract's ABI, not by position, into a frozen dataclass whose fields are those names.

A dataclass that no longer matches its struct (a field renamed, added or removed in the Vyper
source) fails loudly at the first read (`StructMismatch`), never by reading the wrong slot;
`tests/chain/test_chain_structs.py` checks every gateway here against the compiled ABI.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, TypeVar

from crowdleverage.chain.artifacts import artifact
from crowdleverage.chain.margin import ENGINE, LIQUIDATOR, ORDERBOOK
from crowdleverage.chain.params import PARAMS

ORACLE = "PriceOracle"
LEGS = "OffPlatformLegs"

T = TypeVar("T")


class StructMismatch(TypeError):
    """A dataclass does not name the fields of the contract struct it decodes."""


@functools.cache
def struct_fields(contract: str, fn: str) -> tuple[str, ...]:
    """The component names of the struct `contract.fn(...)` returns, in ABI order."""
    functions = [x for x in artifact(contract).abi
                 if x.get("type") == "function" and x.get("name") == fn]  # fmt: skip
    if len(functions) != 1:
        raise StructMismatch(f"{contract}.{fn}: {len(functions)} functions of that name")
    outputs = functions[0]["outputs"]
    if len(outputs) != 1 or outputs[0].get("type") != "tuple":
        raise StructMismatch(f"{contract}.{fn} does not return one struct")
    return tuple(str(c["name"]) for c in outputs[0]["components"])


_CONVERT = {"int": int, "bool": bool, "str": str}


def decode_struct(cls: type[T], contract: str, fn: str, raw: Any) -> T:
    """`raw` (the tuple a call returned) as `cls`, matched by the ABI's field names."""
    names = struct_fields(contract, fn)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if tuple(f.name for f in fields) != names:
        raise StructMismatch(f"{cls.__name__} has fields {[f.name for f in fields]}, "
                             f"{contract}.{fn} returns {list(names)}")  # fmt: skip
    values = dict(zip(names, raw, strict=True))
    return cls(**{f.name: _CONVERT[str(f.type)](values[f.name]) for f in fields})


@dataclass(frozen=True, slots=True)
class EngineAccount:
    """`MarginEngine.accounts(who)` (struct Account)."""

    tier: int  # 0: no account
    cash_fen: int  # free cash
    reserve_fen: int  # top-up reserve, outside the ratio
    pending_fen: int  # cash reserved for open buy orders
    principal_fen: int  # principal owed to the pool
    scaled_debt: int  # debt / tier index (RAY)
    locked: bool  # in liquidation
    open_liq: int  # open liquidation orders
    penalty_fen: int  # penalties paid to insurance in the current liquidation
    provision_fen: int  # provisional loss marked at liquidation start


@dataclass(frozen=True, slots=True)
class EngineOrder:
    """`OrderBook.orders(order_id)` (struct Order)."""

    account: str
    code: int  # chain code (chain.codes)
    is_buy: bool
    liquidation: bool
    open: bool
    qty: int
    filled_qty: int
    limit_price_fen: int
    reserved_fen: int  # buy: cash still reserved
    drawn_fen: int  # buy: financing drawn not yet consumed


@dataclass(frozen=True, slots=True)
class SecurityParams:
    """`RiskParams.securities(code)` (struct Security)."""

    haircut_bps: int  # 0: not financeable (not listed)
    st: bool
    listed_day: int


@dataclass(frozen=True, slots=True)
class LegsAccount:
    """`OffPlatformLegs.accounts(who)` (struct Account): a strategy account's off-platform legs."""

    enrolled: bool
    broker: str
    cash_fen: int  # broker account cash after the day's settlement (negative: owed)
    settled_day: int  # oracle trading day of the last report
    cap_fen: int  # max engine debt while the brake caps exposure; 0: no cap
    unwinding: bool
    reported: bool  # a settlement was reported since enrolment


@dataclass(frozen=True, slots=True)
class OracleDayParams:
    """`PriceOracle.day_params(code)` (struct DayParams): the band of the day it was set for."""

    day: int  # the oracle's trading day (session index) these belong to
    prev_close_fen: int
    limit_down_fen: int
    limit_up_fen: int
    halted: bool


@dataclass(frozen=True, slots=True)
class NavReference:
    """`Liquidator.reference(who)` (struct Reference): an account's NAV-stop reference."""

    assets: int  # fen; 0: no reference
    equity: int  # fen


@dataclass(frozen=True, slots=True)
class DebtIndex:
    """`MarginEngine.indices(tier)` (struct Index): a tier's debt interest index."""

    value_ray: int  # RAY (10**27) at deployment; never decreases
    updated_at: int
    rate_bps: int


def read_account(chain: Any, who: str) -> EngineAccount:
    return decode_struct(EngineAccount, ENGINE, "accounts", chain.call(ENGINE, "accounts", who))


def read_order(chain: Any, order_id: int) -> EngineOrder:
    raw = chain.call(ORDERBOOK, "orders", order_id)
    return decode_struct(EngineOrder, ORDERBOOK, "orders", raw)


def order_account(chain: Any, order_id: int) -> str:
    """The account of an order. A closed order whose slot the account's later order reuses
    reads as all zero; its id names the account (its low 32 bits are the engine's account
    id)."""
    who = read_order(chain, order_id).account
    if int(who, 16) == 0:
        who = chain.call(ENGINE, "account_of", order_id & 0xFFFFFFFF)
    return str(who)


def read_security(chain: Any, code: int) -> SecurityParams:
    raw = chain.call(PARAMS, "securities", code)
    return decode_struct(SecurityParams, PARAMS, "securities", raw)


def read_day_params(chain: Any, code: int) -> OracleDayParams:
    raw = chain.call(ORACLE, "day_params", code)
    return decode_struct(OracleDayParams, ORACLE, "day_params", raw)


def read_legs_account(chain: Any, who: str) -> LegsAccount:
    return decode_struct(LegsAccount, LEGS, "accounts", chain.call(LEGS, "accounts", who))


def read_reference(chain: Any, who: str) -> NavReference:
    raw = chain.call(LIQUIDATOR, "reference", who)
    return decode_struct(NavReference, LIQUIDATOR, "reference", raw)


def read_index(chain: Any, tier: int) -> DebtIndex:
    return decode_struct(DebtIndex, ENGINE, "indices", chain.call(ENGINE, "indices", tier))
