"""The one deploy script, run unchanged on every ChainPort, and the deployment manifest.

`deploy_system` deploys IdentityRegistry, PriceOracle, CashToken, ShareCertificates as `admin`,
makes `compliance` the compliance officer, registers the system actors with their roles, and
writes `<data_dir>/chain/manifest.json` (addresses, ABI hashes, block, chain id).
`deploy_financing` then adds the financing system on top (TranchePool with its TrancheShare
blueprint, InsuranceFund, MarginEngine with its Liquidator and OrderBook), wires it and records
it in the manifest."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crowdleverage.chain.artifacts import DEPLOYABLES, artifact
from crowdleverage.chain.identity import register_identity
from crowdleverage.chain.keys import SYSTEM_ACTORS
from crowdleverage.chain.params import apply_definition
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.roles import Role
from crowdleverage.domain.errors import ConfigError, Conflict, NotFound

MANIFEST_NAME = "manifest.json"
IDENTITY_TTL_S = 10 * 365 * 86_400  # system actors: ten years, renewed by compliance
JURISDICTION_CN = b"CN"

SYSTEM_ROLES: dict[str, Role] = {
    "compliance": Role.COMPLIANCE,
    "operator": Role.OPERATOR,
    "custodian": Role.CUSTODIAN,
    "broker": Role.BROKER,
    "reporter1": Role.REPORTER,
    "reporter2": Role.REPORTER,
    "reporter3": Role.REPORTER,
    "keeper": Role.KEEPER,
}


FEE_ACTOR = "fee"  # the pool's fee recipient (an investor identity)
# Actors `deploy_system` + `deploy_financing` need keys for.
FINANCING_ACTORS: tuple[str, ...] = (*SYSTEM_ACTORS, FEE_ACTOR)
# Keyless platform contracts that hold assets: actor name (an alias) → contract and roles.
PLATFORM_ACTORS: dict[str, tuple[str, Role]] = {
    "pool": ("TranchePool", Role.PLATFORM),
    "insurance": ("InsuranceFund", Role.PLATFORM),
    "engine": ("MarginEngine", Role.PLATFORM | Role.BROKER),
    "orderbook": ("OrderBook", Role.BROKER),  # mints/burns the engine's certificates on fills
}
# The financing contracts in their deployment order: the pool and the engine are given the
# addresses of the engine and the order book created after them (`create_address`).
FINANCING_ORDER = ("TranchePool", "InsuranceFund", "RiskParams", "MarginEngine", "Liquidator",
                   "OrderBook")  # fmt: skip
# Platform contracts marked at CashToken (`set_platform`): they hold cash.
PLATFORM_CASH_HOLDERS: tuple[str, ...] = ("pool", "insurance", "engine")
# Financing contracts in the manifest: label → source.
FINANCING_CONTRACTS: dict[str, str] = {
    "TranchePool": "TranchePool",
    "InsuranceFund": "InsuranceFund",
    "RiskParams": "RiskParams",
    "MarginEngine": "MarginEngine",
    "Liquidator": "Liquidator",
    "OrderBook": "OrderBook",
    "SeniorShare": "TrancheShare",
    "JuniorShare": "TrancheShare",
}


@dataclass(frozen=True, slots=True)
class DeployOptions:
    oracle_max_age_s: int = 600
    oracle_quorum: int = 2


def manifest_path(data_dir: Path) -> Path:
    return Path(data_dir) / "chain" / MANIFEST_NAME


def read_manifest(data_dir: Path) -> dict[str, Any]:
    path = manifest_path(data_dir)
    if not path.exists():
        raise NotFound(f"no deployment manifest at {path}; run `crowdlev chain deploy`")
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
    return data


def check_manifest(port: ChainPort, manifest: dict[str, Any]) -> None:
    """The manifest matches this chain and these sources (same chain id, same ABIs)."""
    if manifest.get("chain_id") != port.chain_id:
        raise ConfigError(
            f"manifest is for chain id {manifest.get('chain_id')}, node is {port.chain_id}"
        )
    contracts = manifest.get("contracts", {})
    for name in DEPLOYABLES:
        if name not in contracts:
            raise ConfigError(f"manifest lacks {name}")
    for label, entry in contracts.items():
        if entry["abi_sha256"] != artifact(entry.get("source", label)).abi_hash:
            raise ConfigError(f"{label}: deployed ABI differs from the sources; redeploy")


def deploy_system(
    port: ChainPort, data_dir: Path, options: DeployOptions | None = None
) -> dict[str, Any]:
    """Deploy and configure the asset/identity/oracle system; returns the manifest."""
    opts = options or DeployOptions()
    if manifest_path(data_dir).exists():
        raise Conflict(f"already deployed (manifest at {manifest_path(data_dir)})")
    registry = port.deploy("IdentityRegistry", [], actor="admin")
    oracle = port.deploy(
        "PriceOracle", [registry, opts.oracle_max_age_s, opts.oracle_quorum], actor="admin"
    )
    port.deploy("CashToken", [registry], actor="admin")
    port.deploy("ShareCertificates", [registry, oracle], actor="admin")
    expires = port.block_time() + IDENTITY_TTL_S
    for actor, role in SYSTEM_ROLES.items():
        who = "admin" if role is Role.COMPLIANCE else "compliance"
        register_identity(
            port, port.address_of(actor), roles=role, suitability=5, expiry_s=expires, actor=who
        )
    manifest = {
        "chain": port.kind,
        "chain_id": port.chain_id,
        "block": port.block_number(),
        "deployed_at_s": port.block_time(),
        "admin": port.address_of("admin"),
        "actors": {a: port.address_of(a) for a in ["admin", *SYSTEM_ROLES]},
        "oracle": {"max_age_s": opts.oracle_max_age_s, "quorum": opts.oracle_quorum},
        "contracts": {
            name: {
                "source": name,
                "address": port.contract_address(name),
                "abi_sha256": artifact(name).abi_hash,
                "runtime_size_bytes": artifact(name).runtime_size_bytes,
            }
            for name in DEPLOYABLES
        },
    }
    write_manifest(data_dir, manifest)
    return manifest


def create_address(deployer: str, nonce: int) -> str:
    """The address a CREATE from `deployer` at `nonce` makes: keccak(rlp([sender, nonce]))'s
    last 20 bytes (what every EVM node computes)."""
    import rlp  # type: ignore[import-untyped]
    from eth_utils import keccak, to_checksum_address

    return to_checksum_address(keccak(rlp.encode([bytes.fromhex(deployer[2:]), nonce]))[12:])


def deploy_financing(port: ChainPort, data_dir: Path) -> dict[str, Any]:
    """After `deploy_system`: deploy the tranche pool (from a TrancheShare blueprint), the
    insurance fund, the risk parameters (`RiskParams`, from `domain.params`), the margin engine with
    its liquidator (the keeper's entry points) and order
    book; register the fee recipient and the platform contracts (aliased as actors "pool",
    "insurance", "engine"); connect them as the operator would; record them in the manifest,
    which is returned. Securities are listed later (`RiskParams.set_security`)."""
    manifest = read_manifest(data_dir)
    if "MarginEngine" in manifest["contracts"]:
        raise Conflict(f"financing already deployed (manifest at {manifest_path(data_dir)})")
    registry, oracle, cash, shares = (port.contract_address(n) for n in DEPLOYABLES)
    blueprint = port.deploy_blueprint("TrancheShare", actor="admin")
    # the pool and the engine name the engine and the order book created after them
    # (immutables: their hooks read no slot for the caller's address): admin's next CREATEs
    # are pool, insurance, params, engine, liquidator, order book, in that order
    admin, nonce = port.address_of("admin"), port.nonce("admin")
    expected = {n: create_address(admin, nonce + i) for i, n in enumerate(FINANCING_ORDER)}
    pool = port.deploy(
        "TranchePool",
        [cash, registry, blueprint, port.address_of(FEE_ACTOR), expected["MarginEngine"]],
        actor="admin",
    )
    insurance = port.deploy("InsuranceFund", [cash, registry, pool], actor="admin")
    params = port.deploy("RiskParams", [registry], actor="admin")
    engine = port.deploy(
        "MarginEngine",
        [cash, registry, oracle, pool, insurance, params, expected["OrderBook"]],
        actor="admin",
    )
    liquidator = port.deploy("Liquidator", [engine, registry, oracle], actor="admin")
    orderbook = port.deploy("OrderBook", [engine, registry, oracle, shares], actor="admin")
    made = (pool, insurance, params, engine, liquidator, orderbook)
    got = dict(zip(FINANCING_ORDER, made, strict=True))
    if {n: a.lower() for n, a in got.items()} != {n: a.lower() for n, a in expected.items()}:
        raise ConfigError(f"financing contracts not at their computed addresses: {got}")
    expires = port.block_time() + IDENTITY_TTL_S
    parties = [(port.address_of(FEE_ACTOR), Role.INVESTOR)]
    for actor, (contract, role) in PLATFORM_ACTORS.items():
        port.alias(actor, port.contract_address(contract))
        parties.append((port.address_of(actor), role))
    for address, role in parties:
        register_identity(port, address, roles=role, suitability=5, expiry_s=expires)
    # the contracts holding cash skip the registry call on their side of a transfer
    for actor in PLATFORM_CASH_HOLDERS:
        port.send("CashToken", "set_platform", port.address_of(actor), True, actor="compliance")
    # the engine's certificates share each security's slot with its supply (one slot a fill)
    port.send("ShareCertificates", "set_custody", engine, actor="operator")
    # the certificates mirror the oracle's trading day: a buy fill reads no oracle slot
    port.send("PriceOracle", "set_day_sink", shares, actor="operator")
    port.send("TranchePool", "connect", engine, insurance, actor="operator")
    port.send("InsuranceFund", "set_engine", engine, actor="operator")
    port.send("MarginEngine", "connect", liquidator, orderbook, actor="operator")
    # the risk parameters: one contract, set from one versioned definition (domain/params)
    port.send("RiskParams", "connect", engine, actor="operator")
    apply_definition(port)
    port.register_at("SeniorShare", port.call("TranchePool", "SENIOR"), "TrancheShare")
    port.register_at("JuniorShare", port.call("TranchePool", "JUNIOR"), "TrancheShare")
    for label, source in FINANCING_CONTRACTS.items():
        manifest["contracts"][label] = {
            "source": source,
            "address": port.contract_address(label),
            "abi_sha256": artifact(source).abi_hash,
            "runtime_size_bytes": artifact(source).runtime_size_bytes,
        }
    for actor in (FEE_ACTOR, *PLATFORM_ACTORS):
        manifest["actors"][actor] = port.address_of(actor)
    manifest["block"] = port.block_number()
    write_manifest(data_dir, manifest)
    deploy_strategy_legs(port, data_dir)
    return read_manifest(data_dir)


INSTITUTIONAL_TIER = 4  # the engine tier of institutional strategy accounts


def deploy_strategy_legs(port: ChainPort, data_dir: Path) -> str:
    """After the financing system: OffPlatformLegs (the broker-reported legs of institutional
    strategy accounts, their combined ratio and the brake's stage) and the institutional tier
    at RiskParams (strategies/accounts.py). Idempotent: returns the recorded address."""
    from crowdleverage.strategies.accounts import DEFAULT_TIER, engine_tier

    manifest = read_manifest(data_dir)
    existing = manifest["contracts"].get("OffPlatformLegs")
    if existing is not None:
        return str(existing["address"])
    engine = port.contract_address("MarginEngine")
    registry, oracle = (port.contract_address(n) for n in DEPLOYABLES[:2])
    address = port.deploy("OffPlatformLegs", [registry, oracle, engine], actor="admin")
    port.send(
        "RiskParams", "set_tier", INSTITUTIONAL_TIER, engine_tier(DEFAULT_TIER), actor="operator"
    )
    manifest["contracts"]["OffPlatformLegs"] = {
        "source": "OffPlatformLegs",
        "address": address,
        "abi_sha256": artifact("OffPlatformLegs").abi_hash,
        "runtime_size_bytes": artifact("OffPlatformLegs").runtime_size_bytes,
    }
    manifest["block"] = port.block_number()
    write_manifest(data_dir, manifest)
    return address


def record_contracts(port: ChainPort, data_dir: Path, labels: list[str]) -> dict[str, Any]:
    """Add contracts deployed after `deploy_system` (e.g. the financing contracts, by label) to
    the manifest so that a later RpcChain/status finds them. The port must offer `sources()`."""
    manifest = read_manifest(data_dir)
    sources: dict[str, str] = port.sources()  # type: ignore[attr-defined]
    for label in labels:
        source = sources.get(label)
        if source is None:
            raise NotFound(f"{label} is not deployed on this chain")
        manifest["contracts"][label] = {
            "source": source,
            "address": port.contract_address(label),
            "abi_sha256": artifact(source).abi_hash,
            "runtime_size_bytes": artifact(source).runtime_size_bytes,
        }
    manifest["block"] = port.block_number()
    write_manifest(data_dir, manifest)
    return manifest


def write_manifest(data_dir: Path, manifest: dict[str, Any]) -> None:
    path = manifest_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def deploy_liability_roots(port: ChainPort, data_dir: Path) -> str:
    """After `deploy_system`: the public record of proof-of-liabilities roots. Idempotent:
    returns the recorded address when the manifest already has it."""
    manifest = read_manifest(data_dir)
    existing = manifest["contracts"].get("LiabilityRoots")
    if existing is not None:
        return str(existing["address"])
    address = port.deploy(
        "LiabilityRoots", [port.contract_address("IdentityRegistry")], actor="admin"
    )
    manifest["contracts"]["LiabilityRoots"] = {
        "source": "LiabilityRoots",
        "address": address,
        "abi_sha256": artifact("LiabilityRoots").abi_hash,
        "runtime_size_bytes": artifact("LiabilityRoots").runtime_size_bytes,
    }
    manifest["block"] = port.block_number()
    write_manifest(data_dir, manifest)
    return address
