"""The embedded chain's most executed EVM opcodes as single functions (`EmbeddedChain`'s lean
computations, chain/embedded.py).

py-evm runs a fixed-gas opcode as three to six Python calls: the gas charge through the
computation and its gas meter, then the logic, which pops and pushes through the computation's
stack proxies (`stack_pop_ints`, `stack_push_int`, `extend_memory`, `memory_write`, ...). Each
function here does the same in one call: the same gas check and charge (the same `OutOfGas`),
the same stack checks (`InsufficientStack`, `FullStack`), the same values pushed (ints or
bytes, as py-evm pushes them), the same memory expansion (through the computation's
`extend_memory`, which charges for it). Execution, gas and results are unchanged — tests/chain
compare every transaction's gas with anvil's, and the replay parity test whole reports.

`SHA3` also remembers the hashes of short inputs (mapping slots: the same few keys are hashed
over and over); titanoboa's SHA3 and SSTORE tracers (preimages and written slots kept for its
storage introspection, which this chain never uses) are left out of the lean table.

`lean_table(opcodes)` returns the opcode table with these in place of py-evm's, each checked
against the opcode it replaces (mnemonic and gas cost; anything else is kept as it is)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth.exceptions import (
    FullStack,
    InsufficientStack,
    InvalidInstruction,
    InvalidJumpDestination,
    OutOfGas,
)
from eth_hash.auto import keccak

MAX = 2**256 - 1
JUMPDEST = 0x5B
_HASHES: dict[bytes, bytes] = {}
_HASH_CACHE_MAX = 1 << 18  # entries (≈ 30 MB at most); cleared when full
_HASHED_MAX = 96  # bytes: mapping slots (64), nested ones, short keys

Op = Callable[[Any], Any]


def _int(x: int | bytes) -> int:
    return x if x.__class__ is int else int.from_bytes(x, "big")  # type: ignore[arg-type]


def _charge(c: Any, cost: int, mnemonic: str) -> None:
    meter = c._gas_meter
    if cost > meter.gas_remaining:
        raise OutOfGas(
            f"Out of gas: Needed {cost} - Remaining {meter.gas_remaining} - Reason: {mnemonic}"
        )
    meter.gas_remaining -= cost


def _binary(cost: int, mnemonic: str, fn: Callable[[int, int], int]) -> Op:
    """An opcode that pops two ints (top first) and pushes fn(top, second)."""

    def run(c: Any) -> None:
        meter = c._gas_meter
        if cost > meter.gas_remaining:
            raise OutOfGas(
                f"Out of gas: Needed {cost} - Remaining {meter.gas_remaining} - Reason: {mnemonic}"
            )
        meter.gas_remaining -= cost
        values = c._stack.values
        if len(values) < 2:
            raise InsufficientStack(f"Wanted 2 stack items, only had {len(values)}")
        a = values.pop()
        b = values.pop()
        if a.__class__ is not int:
            a = int.from_bytes(a, "big")
        if b.__class__ is not int:
            b = int.from_bytes(b, "big")
        values.append(fn(a, b))

    return run


def _add(a: int, b: int) -> int:
    return (a + b) & MAX


def _sub(a: int, b: int) -> int:
    return (a - b) & MAX


def _mul(a: int, b: int) -> int:
    return (a * b) & MAX


def _div(a: int, b: int) -> int:
    return 0 if b == 0 else (a // b) & MAX


def _mod(a: int, b: int) -> int:
    return 0 if b == 0 else a % b


def _lt(a: int, b: int) -> int:
    return 1 if a < b else 0


def _gt(a: int, b: int) -> int:
    return 1 if a > b else 0


def _eq(a: int, b: int) -> int:
    return 1 if a == b else 0


def _and(a: int, b: int) -> int:
    return a & b


def _or(a: int, b: int) -> int:
    return a | b


def _xor(a: int, b: int) -> int:
    return a ^ b


def _shl(shift: int, value: int) -> int:
    return 0 if shift >= 256 else (value << shift) & MAX


def _shr(shift: int, value: int) -> int:
    return 0 if shift >= 256 else (value >> shift) & MAX


def _iszero(c: Any) -> None:
    _charge(c, 3, "ISZERO")
    values = c._stack.values
    if not values:
        raise InsufficientStack("Wanted 1 stack item, had none")
    x = values.pop()
    values.append(1 if _int(x) == 0 else 0)


def _not(c: Any) -> None:
    _charge(c, 3, "NOT")
    values = c._stack.values
    if not values:
        raise InsufficientStack("Wanted 1 stack item, had none")
    values.append(MAX - _int(values.pop()))


def _pop(c: Any) -> None:
    _charge(c, 2, "POP")
    values = c._stack.values
    if not values:
        raise InsufficientStack("Wanted 1 stack item, had none")
    values.pop()


def _push0(c: Any) -> None:
    _charge(c, 2, "PUSH0")
    values = c._stack.values
    if len(values) > 1023:
        raise FullStack("Stack limit reached")
    values.append(b"")  # py-evm's PUSH0: the zero bytes of code it reads


def _jumpdest(c: Any) -> None:
    _charge(c, 1, "JUMPDEST")


def _jump_to(c: Any, dest: int) -> None:
    code = c.code
    code.program_counter = dest
    if dest in code.valid_positions:
        if code._raw_code_bytes[dest] == JUMPDEST:
            return
        raise InvalidJumpDestination("Invalid Jump Destination")
    if code.peek() != JUMPDEST:
        raise InvalidJumpDestination("Invalid Jump Destination")
    if not code.is_valid_opcode(dest):
        raise InvalidInstruction("Jump resulted in invalid instruction")


def _jump(c: Any) -> None:
    _charge(c, 8, "JUMP")
    values = c._stack.values
    if not values:
        raise InsufficientStack("Wanted 1 stack item, had none")
    _jump_to(c, _int(values.pop()))


def _jumpi(c: Any) -> None:
    _charge(c, 10, "JUMPI")
    values = c._stack.values
    if len(values) < 2:
        raise InsufficientStack(f"Wanted 2 stack items, only had {len(values)}")
    dest = values.pop()
    check = values.pop()
    if _int(check):
        _jump_to(c, _int(dest))


def _dup(n: int) -> Op:
    mnemonic = f"DUP{n}"

    def run(c: Any) -> None:
        meter = c._gas_meter
        if meter.gas_remaining < 3:
            raise OutOfGas(
                f"Out of gas: Needed 3 - Remaining {meter.gas_remaining} - Reason: {mnemonic}"
            )
        meter.gas_remaining -= 3
        values = c._stack.values
        if len(values) > 1023:
            raise FullStack("Stack limit reached")
        if len(values) < n:
            raise InsufficientStack(f"Insufficient stack items for DUP{n}")
        values.append(values[-n])

    return run


def _swap(n: int) -> Op:
    mnemonic = f"SWAP{n}"
    idx = -n - 1

    def run(c: Any) -> None:
        meter = c._gas_meter
        if meter.gas_remaining < 3:
            raise OutOfGas(
                f"Out of gas: Needed 3 - Remaining {meter.gas_remaining} - Reason: {mnemonic}"
            )
        meter.gas_remaining -= 3
        values = c._stack.values
        if len(values) <= n:
            raise InsufficientStack(f"Insufficient stack items for SWAP{n}")
        values[-1], values[idx] = values[idx], values[-1]

    return run


def _mload(c: Any) -> None:
    _charge(c, 3, "MLOAD")
    values = c._stack.values
    if not values:
        raise InsufficientStack("Wanted 1 stack item, had none")
    start = _int(values.pop())
    mem = c._memory._bytes
    if start + 32 > len(mem):
        c.extend_memory(start, 32)
        mem = c._memory._bytes
    if len(values) > 1023:
        raise FullStack("Stack limit reached")
    values.append(bytes(mem[start : start + 32]))


def _mstore(c: Any) -> None:
    _charge(c, 3, "MSTORE")
    values = c._stack.values
    if len(values) < 2:
        raise InsufficientStack(f"Wanted 2 stack items, only had {len(values)}")
    start = _int(values.pop())
    value = values.pop()
    data = value.to_bytes(32, "big") if value.__class__ is int else value.rjust(32, b"\x00")[-32:]
    mem = c._memory._bytes
    if start + 32 > len(mem):
        c.extend_memory(start, 32)
        mem = c._memory._bytes
    mem[start : start + 32] = data


def _calldataload(c: Any) -> None:
    _charge(c, 3, "CALLDATALOAD")
    values = c._stack.values
    if not values:
        raise InsufficientStack("Wanted 1 stack item, had none")
    start = _int(values.pop())
    value = c.msg.data_as_bytes[start : start + 32]
    values.append(value.ljust(32, b"\x00").lstrip(b"\x00"))


def _sha3(c: Any) -> None:
    _charge(c, 30, "SHA3")
    values = c._stack.values
    if len(values) < 2:
        raise InsufficientStack(f"Wanted 2 stack items, only had {len(values)}")
    start = _int(values.pop())
    size = _int(values.pop())
    c.extend_memory(start, size)
    data = bytes(c._memory._bytes[start : start + size]) if size else b""
    _charge(c, 6 * ((len(data) + 31) // 32), "SHA3: word gas cost")
    if len(data) <= _HASHED_MAX:
        out = _HASHES.get(data)
        if out is None:
            if len(_HASHES) >= _HASH_CACHE_MAX:
                _HASHES.clear()
            out = _HASHES[data] = keccak(data)
    else:
        out = keccak(data)
    values.append(out)


# opcode → (mnemonic, fixed gas, lean function)
LEAN: dict[int, tuple[str, int, Op]] = {
    0x01: ("ADD", 3, _binary(3, "ADD", _add)),
    0x02: ("MUL", 5, _binary(5, "MUL", _mul)),
    0x03: ("SUB", 3, _binary(3, "SUB", _sub)),
    0x04: ("DIV", 5, _binary(5, "DIV", _div)),
    0x06: ("MOD", 5, _binary(5, "MOD", _mod)),
    0x10: ("LT", 3, _binary(3, "LT", _lt)),
    0x11: ("GT", 3, _binary(3, "GT", _gt)),
    0x14: ("EQ", 3, _binary(3, "EQ", _eq)),
    0x15: ("ISZERO", 3, _iszero),
    0x16: ("AND", 3, _binary(3, "AND", _and)),
    0x17: ("OR", 3, _binary(3, "OR", _or)),
    0x18: ("XOR", 3, _binary(3, "XOR", _xor)),
    0x19: ("NOT", 3, _not),
    0x1B: ("SHL", 3, _binary(3, "SHL", _shl)),
    0x1C: ("SHR", 3, _binary(3, "SHR", _shr)),
    0x20: ("SHA3", 30, _sha3),
    0x35: ("CALLDATALOAD", 3, _calldataload),
    0x50: ("POP", 2, _pop),
    0x51: ("MLOAD", 3, _mload),
    0x52: ("MSTORE", 3, _mstore),
    0x56: ("JUMP", 8, _jump),
    0x57: ("JUMPI", 10, _jumpi),
    0x5B: ("JUMPDEST", 1, _jumpdest),
    0x5F: ("PUSH0", 2, _push0),
    **{0x80 + i: (f"DUP{i + 1}", 3, _dup(i + 1)) for i in range(16)},
    **{0x90 + i: (f"SWAP{i + 1}", 3, _swap(i + 1)) for i in range(16)},
}


def lean_op(opcode: int, op: Any) -> Op | None:
    """The lean function for `op` at `opcode` (py-evm's fixed-gas opcode, or titanoboa's SHA3
    tracer around it), or None when it is not the opcode the lean one replaces."""
    from eth.vm.opcode import _FastOpcode

    lean = LEAN.get(opcode)
    if lean is None:
        return None
    mnemonic, cost, fn = lean
    inner = unwrap(op)
    if type(inner) is _FastOpcode and inner.mnemonic == mnemonic and inner.gas_cost == cost:
        return fn
    return None


def unwrap(op: Any) -> Any:
    """The py-evm opcode under titanoboa's SHA3 / SSTORE tracers (each titanoboa environment
    wraps the shared table's entries once more)."""
    from boa.vm.py_evm import Sha3PreimageTracer, SstoreTracer

    while True:
        if type(op) is Sha3PreimageTracer:
            op = op.sha3
        elif type(op) is SstoreTracer:
            op = op.sstore
        else:
            return op
