"""Compiled contracts: ABI, init bytecode and an ABI hash per deployable contract.

Compilation goes through titanoboa's compiler cache (on disk), so a process compiles each
source at most once and later processes reuse it."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).resolve().parents[1] / "contracts"

# Deployables in deployment order (each may take the addresses of the ones before it).
DEPLOYABLES: tuple[str, ...] = ("IdentityRegistry", "PriceOracle", "CashToken", "ShareCertificates")

EIP170_LIMIT_BYTES = 24_576


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes  # init code (constructor args are appended ABI-encoded)
    runtime_size_bytes: int

    @property
    def abi_hash(self) -> str:
        canon = json.dumps(list(self.abi), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()


def source_path(name: str) -> Path:
    return CONTRACTS_DIR / f"{name}.vy"


@functools.cache
def deployer(name: str) -> Any:
    """titanoboa's VyperDeployer for `name` (compiled once per process)."""
    import boa

    if name not in DEPLOYABLES:
        raise KeyError(f"unknown contract {name}")
    return boa.load_partial(str(source_path(name)))


@functools.cache
def artifact(name: str) -> Artifact:
    from vyper.compiler.output import build_abi_output

    data = deployer(name).compiler_data
    return Artifact(
        name=name,
        abi=tuple(build_abi_output(data)),
        bytecode=bytes(data.bytecode),
        runtime_size_bytes=len(data.bytecode_runtime),
    )


def all_artifacts() -> dict[str, Artifact]:
    return {name: artifact(name) for name in DEPLOYABLES}
