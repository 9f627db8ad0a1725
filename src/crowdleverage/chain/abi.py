"""ABI encoding shared by both chain adapters: calls, outputs, event logs and revert reasons.

Both adapters go through these functions, so the same call produces the same bytes and the
same log decodes to the same Python values on the embedded chain and on a JSON-RPC node."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from crowdleverage.domain.errors import InvalidInput

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)


def abi_type(item: Mapping[str, Any]) -> str:
    """Canonical type string of an ABI input/output, tuples expanded: (uint256,bool)[]."""
    t = str(item["type"])
    if t.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in item["components"])
        return f"({inner}){t[len('tuple') :]}"
    return t


def _normalise(value: Any, t: str) -> Any:
    """Python value → what eth_abi expects for type `t` (tuples from sequences)."""
    if t.endswith("]"):
        base = t[: t.rindex("[")]
        return [_normalise(v, base) for v in value]
    if t.startswith("("):
        parts = _split_tuple(t)
        return tuple(_normalise(v, p) for v, p in zip(value, parts, strict=True))
    if t.startswith("bytes") and t != "bytes" and isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return value


def _split_tuple(t: str) -> list[str]:
    body = t[1:-1]
    parts: list[str] = []
    depth = 0
    cur = ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        parts.append(cur)
    return parts


def plain(value: Any, t: str) -> Any:
    """Decoded value → JSON-friendly Python: checksummed addresses, 0x-hex bytes, lists."""
    if t.endswith("]"):
        base = t[: t.rindex("[")]
        return [plain(v, base) for v in value]
    if t.startswith("("):
        return [plain(v, p) for v, p in zip(value, _split_tuple(t), strict=True)]
    if t == "address":
        return to_checksum_address(value)
    if t.startswith("bytes"):
        return "0x" + bytes(value).hex()
    return value


class _Slow(Exception):
    """A word the fast decoder leaves to eth_abi (not canonical, or not a simple type)."""


_CHECKSUMMED: dict[bytes, str] = {}


def checksummed(raw: bytes) -> str:
    """The checksummed form of a 20-byte address (remembered: the same few recur)."""
    out = _CHECKSUMMED.get(raw)
    if out is None:
        if len(_CHECKSUMMED) >= 1 << 16:
            _CHECKSUMMED.clear()
        out = _CHECKSUMMED[raw] = to_checksum_address(raw)
    return out


def _word_decoder(t: str) -> Any:
    """A decoder of one 32-byte ABI word of the simple static type `t` into what
    `plain(eth_abi's value, t)` gives (raising `_Slow` for a word eth_abi would refuse), or
    None for a type it does not handle."""
    if t == "bool":

        def dec_bool(w: bytes) -> bool:
            v = int.from_bytes(w, "big")
            if v > 1:
                raise _Slow
            return v == 1

        return dec_bool
    if t == "address":

        def dec_address(w: bytes) -> str:
            if any(w[:12]):
                raise _Slow
            return checksummed(w[12:])

        return dec_address
    if t.startswith("uint") and t[4:].isdigit():
        bits = int(t[4:])

        def dec_uint(w: bytes) -> int:
            v = int.from_bytes(w, "big")
            if v >> bits:
                raise _Slow
            return v

        return dec_uint
    if t.startswith("int") and t[3:].isdigit():
        half = 1 << (int(t[3:]) - 1)

        def dec_int(w: bytes) -> int:
            v = int.from_bytes(w, "big", signed=True)
            if not -half <= v < half:
                raise _Slow
            return v

        return dec_int
    if t.startswith("bytes") and t[5:].isdigit():
        n = int(t[5:])

        def dec_bytes(w: bytes) -> str:
            if any(w[n:]):
                raise _Slow
            return "0x" + w[:n].hex()

        return dec_bytes
    return None


def _fast_decoder(types: Sequence[str]) -> Any:
    """A decoder of `types` (simple static types, or tuples of them: one word each, inline)
    into the `plain` values, or None when one is not such a type."""
    parts: list[tuple[Any, int]] = []  # (word decoder or tuple's decoders, words)
    for t in types:
        if t.startswith("(") and t.endswith(")"):
            inner = [_word_decoder(p) for p in _split_tuple(t)]
            if not inner or any(d is None for d in inner):
                return None
            parts.append((inner, len(inner)))
        else:
            d = _word_decoder(t)
            if d is None:
                return None
            parts.append((d, 1))
    size = 32 * sum(n for _, n in parts)

    def decode(data: bytes) -> list[Any]:
        if len(data) < size:
            raise _Slow
        out: list[Any] = []
        pos = 0
        for d, n in parts:
            if n == 1 and not isinstance(d, list):
                out.append(d(data[pos : pos + 32]))
                pos += 32
            else:
                row = []
                for dd in d:
                    row.append(dd(data[pos : pos + 32]))
                    pos += 32
                out.append(row)
        return out

    return decode


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    selector: bytes
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    mutability: str

    def encode(self, args: Sequence[Any]) -> bytes:
        if len(args) != len(self.input_types):
            raise InvalidInput(
                f"{self.name} takes {len(self.input_types)} arguments, got {len(args)}"
            )
        values = [_normalise(a, t) for a, t in zip(args, self.input_types, strict=True)]
        try:
            return self.selector + abi_encode(list(self.input_types), values)
        except Exception as exc:  # eth_abi raises several unrelated types
            raise InvalidInput(f"bad arguments for {self.name}: {exc}") from exc

    def decode(self, data: bytes) -> Any:
        fast = _FAST_OUTPUTS.get(self.output_types, _UNSET)
        if fast is _UNSET:
            fast = _FAST_OUTPUTS[self.output_types] = _fast_decoder(self.output_types)
        out: list[Any] | None = None
        if fast is not None:
            with contextlib.suppress(_Slow):
                out = fast(data)
        if out is None:
            values = abi_decode(list(self.output_types), data)
            out = [plain(v, t) for v, t in zip(values, self.output_types, strict=True)]
        if len(out) == 1:
            return out[0]
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    topic0: bytes
    inputs: tuple[tuple[str, str, bool], ...]  # (name, type, indexed)

    def decode(self, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        indexed = [(n, t) for n, t, ix in self.inputs if ix]
        rest = [(n, t) for n, t, ix in self.inputs if not ix]
        out: dict[str, Any] = {}
        for (n, t), topic in zip(indexed, topics[1:], strict=True):
            word = _WORDS.get(t, _UNSET)
            if word is _UNSET:
                word = _WORDS[t] = _word_decoder(t)
            try:
                if word is None or len(topic) != 32:
                    raise _Slow
                out[n] = word(topic)
            except _Slow:
                out[n] = plain(abi_decode([t], topic)[0], t)
        types = tuple(t for _, t in rest)
        fast = _FAST_OUTPUTS.get(types, _UNSET)
        if fast is _UNSET:
            fast = _FAST_OUTPUTS[types] = _fast_decoder(types)
        plain_values: list[Any] | None = None
        if fast is not None:
            with contextlib.suppress(_Slow):
                plain_values = fast(data)
        if plain_values is None:
            values = abi_decode(list(types), data)
            plain_values = [plain(v, t) for (_, t), v in zip(rest, values, strict=True)]
        for (n, _), v in zip(rest, plain_values, strict=True):
            out[n] = v
        return {n: out[n] for n, _, _ in self.inputs}


_UNSET: Any = object()
_FAST_OUTPUTS: dict[tuple[str, ...], Any] = {}  # types → fast decoder (None: eth_abi)
_WORDS: dict[str, Any] = {}  # type → word decoder (None: eth_abi)


class ContractAbi:
    """Functions and events of one contract ABI, looked up by name / topic."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self.functions: dict[str, Function] = {}
        self.events: dict[bytes, Event] = {}
        self.constructor_types: tuple[str, ...] = ()
        for item in abi:
            kind = item.get("type")
            if kind == "function":
                ins = tuple(abi_type(i) for i in item["inputs"])
                sig = f"{item['name']}({','.join(ins)})"
                self.functions[item["name"]] = Function(
                    name=item["name"],
                    selector=keccak(text=sig)[:4],
                    input_types=ins,
                    output_types=tuple(abi_type(o) for o in item.get("outputs", [])),
                    mutability=item.get("stateMutability", "nonpayable"),
                )
            elif kind == "event":
                ins3 = tuple((i["name"], abi_type(i), bool(i["indexed"])) for i in item["inputs"])
                sig = f"{item['name']}({','.join(t for _, t, _ in ins3)})"
                topic0 = keccak(text=sig)
                self.events[topic0] = Event(item["name"], topic0, ins3)
            elif kind == "constructor":
                self.constructor_types = tuple(abi_type(i) for i in item["inputs"])

    def function(self, name: str) -> Function:
        try:
            return self.functions[name]
        except KeyError:
            raise InvalidInput(f"contract has no function {name!r}") from None

    def encode_constructor(self, args: Sequence[Any]) -> bytes:
        if len(args) != len(self.constructor_types):
            raise InvalidInput(
                f"constructor takes {len(self.constructor_types)} arguments, got {len(args)}"
            )
        values = [_normalise(a, t) for a, t in zip(args, self.constructor_types, strict=True)]
        return abi_encode(list(self.constructor_types), values)

    def event_by_name(self, name: str) -> Event:
        for ev in self.events.values():
            if ev.name == name:
                return ev
        raise InvalidInput(f"contract has no event {name!r}")


def decode_revert(data: bytes) -> str:
    """The revert reason of `data` (Error(string), Panic(uint256) or raw bytes)."""
    if data[:4] == ERROR_SELECTOR:
        try:
            return str(abi_decode(["string"], data[4:])[0])
        except Exception:  # malformed reason: fall through to hex
            pass
    if data[:4] == PANIC_SELECTOR and len(data) >= 36:
        return f"panic: 0x{int.from_bytes(data[4:36], 'big'):02x}"
    if not data:
        return "reverted without reason"
    return "reverted: 0x" + data.hex()


def intrinsic_gas(data: bytes, is_create: bool) -> int:
    """Intrinsic gas of a transaction (Shanghai+): base, calldata, creation and initcode words."""
    zeros = data.count(0)
    gas = 21_000 + 4 * zeros + 16 * (len(data) - zeros)
    if is_create:
        gas += 32_000 + 2 * ((len(data) + 31) // 32)
    return gas
