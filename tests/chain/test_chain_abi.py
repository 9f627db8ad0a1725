"""The fast decoding of simple static ABI words (chain/abi.py) gives what eth_abi's decoding
gives through `plain`, and leaves every word eth_abi would refuse to eth_abi."""

from __future__ import annotations

import pytest
from eth_abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from hypothesis import given
from hypothesis import strategies as st

from crowdleverage.chain.abi import Event, Function

TYPES = ("uint256", "uint8", "int256", "int24", "bool", "address", "bytes32", "bytes4")


def value_of(t: str) -> st.SearchStrategy[object]:
    if t.startswith("uint"):
        return st.integers(0, 2 ** int(t[4:]) - 1)
    if t.startswith("int"):
        half = 2 ** (int(t[3:]) - 1)
        return st.integers(-half, half - 1)
    if t == "bool":
        return st.booleans()
    if t == "address":
        return st.binary(min_size=20, max_size=20)
    return st.binary(min_size=int(t[5:]), max_size=int(t[5:]))


def slow(types: tuple[str, ...], data: bytes) -> object:
    from eth_abi import decode

    from crowdleverage.chain.abi import plain

    return [plain(v, t) for v, t in zip(decode(list(types), data), types, strict=True)]


@st.composite
def typed_values(draw: st.DrawFn) -> tuple[tuple[str, ...], list[object]]:
    types = tuple(draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=5)))
    return types, [draw(value_of(t)) for t in types]


@given(typed_values())
def test_fast_output_decoding_is_eth_abis(tv: tuple[tuple[str, ...], list[object]]) -> None:
    types, values = tv
    data = abi_encode(list(types), values)
    f = Function("f", b"\0" * 4, (), types, "view")
    got = f.decode(data)
    want = slow(types, data)
    assert (list(got) if len(types) > 1 else [got]) == want


@given(typed_values())
def test_fast_struct_and_event_decoding_is_eth_abis(
    tv: tuple[tuple[str, ...], list[object]],
) -> None:
    types, values = tv
    struct = "(" + ",".join(types) + ")"
    data = abi_encode([struct], [tuple(values)])
    got = Function("f", b"\0" * 4, (), (struct,), "view").decode(data)
    assert got == slow((struct,), data)[0]
    # an event: the first value indexed (a topic), the rest in the data
    ev = Event("E", b"\1" * 32, tuple((f"a{i}", t, i == 0) for i, t in enumerate(types)))
    topic = abi_encode([types[0]], [values[0]])
    args = ev.decode([b"\1" * 32, topic], abi_encode(list(types[1:]), values[1:]))
    assert list(args.values()) == slow(types[:1], topic) + slow(types[1:], data[32:])


@pytest.mark.parametrize(
    ("t", "word"),
    [
        ("bool", (2).to_bytes(32, "big")),
        ("address", b"\1" + b"\0" * 31),
        ("uint8", (256).to_bytes(32, "big")),
        ("bytes4", b"\0" * 4 + b"\1" + b"\0" * 27),
    ],
)
def test_a_word_eth_abi_refuses_is_refused(t: str, word: bytes) -> None:
    with pytest.raises(DecodingError):
        Function("f", b"\0" * 4, (), (t,), "view").decode(word)
