"""Python helpers for on-chain security codes and references."""

from __future__ import annotations

import pytest

from crowdleverage.chain.codes import code_from_chain, code_to_chain, ref_to_bytes32
from crowdleverage.domain.errors import InvalidInput


def test_code_round_trip_keeps_leading_zeros() -> None:
    assert code_to_chain("000001") == 1
    assert code_from_chain(1) == "000001"
    assert code_to_chain("600000.SH") == 600000
    assert code_from_chain(600000) == "600000"


def test_code_rejects_garbage() -> None:
    with pytest.raises(InvalidInput):
        code_to_chain("60000")
    with pytest.raises(InvalidInput):
        code_from_chain(0)
    with pytest.raises(InvalidInput):
        code_from_chain(1_000_000)


def test_ref_to_bytes32() -> None:
    assert ref_to_bytes32(1) == b"\0" * 31 + b"\1"
    assert ref_to_bytes32("T1") == b"T1" + b"\0" * 30
    with pytest.raises(InvalidInput):
        ref_to_bytes32("")
    with pytest.raises(InvalidInput):
        ref_to_bytes32(b"x" * 33)
    with pytest.raises(InvalidInput):
        ref_to_bytes32(0)
