"""Security codes on chain: the six-digit A-share code as a `uint256` ("600000" -> 600000,
"000001" -> 1). Leading zeros are restored by formatting to six digits. 0 is never a code."""

from __future__ import annotations

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.domain.security import Security

CODE_LIMIT = 1_000_000


def code_to_chain(code: str | Security) -> int:
    """'600000', '600000.SH', Security → 600000. Unknown boards are an InvalidInput."""
    sec = code if isinstance(code, Security) else Security.parse(code)
    value = int(sec.code)
    if not 0 < value < CODE_LIMIT:
        raise InvalidInput(f"security code {sec.code} cannot be represented on chain")
    return value


def code_from_chain(value: int) -> str:
    """600000 → '600000', 1 → '000001'."""
    if not isinstance(value, int) or not 0 < value < CODE_LIMIT:
        raise InvalidInput(f"on-chain security code {value!r} is not in 1..999999")
    return f"{value:06d}"


def ref_to_bytes32(ref: str | bytes | int) -> bytes:
    """A custody transfer id or broker fill id as the `bytes32` reference used on chain.

    Integers (e.g. 128-bit time-sortable ids) are big-endian; str/bytes up to 32 bytes are
    left-aligned and zero-padded. Empty or over-long references are an InvalidInput."""
    if isinstance(ref, int):
        if not 0 < ref < 2**256:
            raise InvalidInput(f"reference {ref} is not a positive 256-bit integer")
        return ref.to_bytes(32, "big")
    raw = ref.encode() if isinstance(ref, str) else bytes(ref)
    if not raw or len(raw) > 32:
        raise InvalidInput(f"reference {ref!r} must be 1..32 bytes")
    return raw.ljust(32, b"\0")
