"""Compiled contracts: ABI, init bytecode and an ABI hash per deployable contract.

Compiled output is cached on disk (`~/.cache/crowdleverage/artifacts-<digest>.json`, the digest
covering every contract source and the compiler and snekmate versions), so a process compiles
each source at most once and later processes need neither titanoboa nor the compiler."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
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


def _compile(name: str) -> Artifact:
    from vyper.compiler.output import build_abi_output

    data = deployer(name).compiler_data
    return Artifact(
        name=name,
        abi=tuple(build_abi_output(data)),
        bytecode=bytes(data.bytecode),
        runtime_size_bytes=len(data.bytecode_runtime),
    )


@functools.cache
def sources_digest() -> str:
    from importlib.metadata import version

    h = hashlib.sha256()
    h.update(f"vyper={version('vyper')};snekmate={version('snekmate')}".encode())
    for path in sorted(CONTRACTS_DIR.rglob("*.vy*")):
        h.update(str(path.relative_to(CONTRACTS_DIR)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _cache_path() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "crowdleverage" / f"artifacts-{sources_digest()}.json"


@functools.cache
def _cached() -> dict[str, Artifact]:
    path = _cache_path()
    try:
        raw = json.loads(path.read_text())
        return {
            n: Artifact(n, tuple(v["abi"]), bytes.fromhex(v["bytecode"]), v["runtime_size_bytes"])
            for n, v in raw.items()
        }
    except (OSError, ValueError, KeyError):
        pass
    arts = {n: _compile(n) for n in DEPLOYABLES}
    payload = {
        n: {
            "abi": list(a.abi),
            "bytecode": a.bytecode.hex(),
            "runtime_size_bytes": a.runtime_size_bytes,
        }
        for n, a in arts.items()
    }
    with contextlib.suppress(OSError):  # a read-only home only costs a recompilation
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, path)
    return arts


def artifact(name: str) -> Artifact:
    if name not in DEPLOYABLES:
        raise KeyError(f"unknown contract {name}")
    return _cached()[name]


def all_artifacts() -> dict[str, Artifact]:
    return {name: artifact(name) for name in DEPLOYABLES}
