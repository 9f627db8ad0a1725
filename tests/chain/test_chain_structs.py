"""The typed struct gateways (chain/structs.py) against the compiled contracts' ABI: each
dataclass names its struct's fields in order, and a dataclass that does not fails loudly."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest

from crowdleverage.chain.structs import (
    DebtIndex,
    EngineAccount,
    EngineOrder,
    LegsAccount,
    NavReference,
    OracleDayParams,
    SecurityParams,
    StructMismatch,
    decode_struct,
    struct_fields,
)

GATEWAYS = [
    (EngineAccount, "MarginEngine", "accounts"),
    (EngineOrder, "OrderBook", "orders"),
    (SecurityParams, "RiskParams", "securities"),
    (OracleDayParams, "PriceOracle", "day_params"),
    (LegsAccount, "OffPlatformLegs", "accounts"),
    (NavReference, "Liquidator", "reference"),
    (DebtIndex, "MarginEngine", "indices"),
]


@pytest.mark.parametrize(("cls", "contract", "fn"), GATEWAYS)
def test_each_gateway_names_its_struct_in_order(cls: type, contract: str, fn: str) -> None:
    names = struct_fields(contract, fn)
    # a tuple as the chain returns it: each slot a distinct value, decoded by name
    raw = tuple(i + 1 for i in range(len(names)))
    decoded = decode_struct(cls, contract, fn, raw)
    for i, f in enumerate(fields(cls)):
        assert f.name == names[i]
        slot = raw[i]
        want = {"int": slot, "bool": True, "str": str(slot)}[str(f.type)]
        assert getattr(decoded, f.name) == want, f.name


def test_the_engine_account_reads_the_slots_the_contract_names() -> None:
    names = struct_fields("MarginEngine", "accounts")
    raw = [0] * len(names)
    raw[names.index("locked")] = True
    raw[names.index("open_liq")] = 3
    raw[names.index("cash_fen")] = 1_234
    a = decode_struct(EngineAccount, "MarginEngine", "accounts", tuple(raw))
    assert (a.locked, a.open_liq, a.cash_fen, a.reserve_fen) == (True, 3, 1_234, 0)


def test_a_dataclass_that_does_not_match_its_struct_is_refused() -> None:
    @dataclass(frozen=True)
    class Short:
        tier: int
        cash_fen: int

    with pytest.raises(StructMismatch, match="accounts returns"):
        decode_struct(Short, "MarginEngine", "accounts", (1, 2))
    with pytest.raises(StructMismatch, match="does not return one struct"):
        struct_fields("TranchePool", "navs")
