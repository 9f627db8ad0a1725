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

from crowdleverage.domain.errors import NotFound

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
    blueprint_bytecode: bytes = b""  # init code that deploys an ERC-5202 blueprint

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

    if not name.isidentifier() or not source_path(name).is_file():
        raise NotFound(f"no contract source {name}.vy in {CONTRACTS_DIR}")
    return boa.load_partial(str(source_path(name)))


def _compile(name: str) -> Artifact:
    from vyper.compiler.output import build_abi_output

    data = deployer(name).compiler_data
    return Artifact(
        name=name,
        abi=tuple(build_abi_output(data)),
        bytecode=bytes(data.bytecode),
        runtime_size_bytes=len(data.bytecode_runtime),
        blueprint_bytecode=bytes(data.blueprint_bytecode),
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


_memory: dict[str, Artifact] = {}


def _load_cache() -> dict[str, Any]:
    try:
        raw: dict[str, Any] = json.loads(_cache_path().read_text())
        return raw
    except (OSError, ValueError):
        return {}


def _store_cache(entries: dict[str, Any]) -> None:
    path = _cache_path()
    with contextlib.suppress(OSError):  # a read-only home only costs a recompilation
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries))
        os.replace(tmp, path)


def artifact(name: str) -> Artifact:
    """Compiled `contracts/<name>.vy` (any deployable there, not only DEPLOYABLES)."""
    hit = _memory.get(name)
    if hit is not None:
        return hit
    entries = _load_cache()
    raw: Any = entries.get(name)
    try:
        art = Artifact(
            name,
            tuple(raw["abi"]),
            bytes.fromhex(raw["bytecode"]),
            raw["runtime_size_bytes"],
            bytes.fromhex(raw["blueprint_bytecode"]),
        )
    except (TypeError, KeyError, ValueError):
        art = _compile(name)
        entries[name] = {
            "abi": list(art.abi),
            "bytecode": art.bytecode.hex(),
            "runtime_size_bytes": art.runtime_size_bytes,
            "blueprint_bytecode": art.blueprint_bytecode.hex(),
        }
        _store_cache(entries)
    _memory[name] = art
    return art


def all_artifacts() -> dict[str, Artifact]:
    return {name: artifact(name) for name in DEPLOYABLES}
