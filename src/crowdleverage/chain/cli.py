"""`crowdlev chain …`: deploy the asset/identity/oracle contracts and inspect the chain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from crowdleverage.chain.artifacts import DEPLOYABLES, artifact
from crowdleverage.chain.deploy import (
    FINANCING_ACTORS,
    DeployOptions,
    deploy_financing,
    deploy_liability_roots,
    deploy_system,
    read_manifest,
)
from crowdleverage.chain.factory import open_chain
from crowdleverage.chain.keys import SYSTEM_ACTORS
from crowdleverage.chain.port import ChainPort
from crowdleverage.cliutil import emit_json, typed_errors
from crowdleverage.config import load_settings
from crowdleverage.domain.errors import InvalidInput

app = typer.Typer(help="Chain gateway: deploy contracts, show status.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file")]
DevKeysOpt = Annotated[
    bool, typer.Option("--dev-keys", help="RPC only: use seed-derived development keys (anvil)")
]


@app.command()
@typed_errors
def deploy(
    max_age_s: Annotated[int, typer.Option(help="oracle: report freshness window (s)")] = 600,
    quorum: Annotated[int, typer.Option(help="oracle: distinct fresh reporters needed")] = 2,
    financing: Annotated[
        bool,
        typer.Option(
            help="also the tranche pool, insurance fund, margin engine and the "
            "proof-of-liabilities roots"
        ),
    ] = False,
    config: ConfigOpt = None,
    dev_keys: DevKeysOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Deploy IdentityRegistry, PriceOracle, CashToken, ShareCertificates (and with --financing
    the financing system) and write the manifest."""
    if max_age_s <= 0 or not 1 <= quorum <= 16:
        raise InvalidInput("max-age-s must be > 0 and quorum in 1..16")
    settings = load_settings(config)
    actors = FINANCING_ACTORS if financing else SYSTEM_ACTORS
    chain = open_chain(settings, dev_keys=dev_keys, actors=actors)
    try:
        if chain.kind == "rpc" and dev_keys:
            chain.fund(["admin", "compliance", "operator"], 10**21)  # type: ignore[attr-defined]
        manifest = deploy_system(chain, settings.data_dir, DeployOptions(max_age_s, quorum))
        if financing:
            deploy_financing(chain, settings.data_dir)
            deploy_liability_roots(chain, settings.data_dir)
            manifest = read_manifest(settings.data_dir)
    finally:
        chain.close()
    if as_json:
        emit_json(manifest)
        return
    typer.echo(f"deployed on {manifest['chain']} chain {manifest['chain_id']} "
               f"at block {manifest['block']}")  # fmt: skip
    for name, entry in manifest["contracts"].items():
        typer.echo(f"  {name:<18} {entry['address']}  ({entry['runtime_size_bytes']} bytes)")


def _status(chain: ChainPort, manifest: dict[str, Any]) -> dict[str, Any]:
    contracts = {}
    for name in DEPLOYABLES:
        entry = manifest["contracts"][name]
        contracts[name] = {
            "address": entry["address"],
            "abi_sha256": entry["abi_sha256"],
            "abi_matches_sources": entry["abi_sha256"] == artifact(name).abi_hash,
        }
    events = chain.events()
    return {
        "chain": chain.kind,
        "chain_id": chain.chain_id,
        "block": chain.block_number(),
        "block_time_s": chain.block_time(),
        "state_root": chain.state_root(),
        "deployed_block": manifest["block"],
        "contracts": contracts,
        "trading_day": chain.call("PriceOracle", "trading_day"),
        "cash_supply_fen": chain.call("CashToken", "totalSupply"),
        "cash_paused": chain.call("CashToken", "paused"),
        "events": len(events),
        "last_event_seq": events[-1].seq if events else 0,
    }


@app.command()
@typed_errors
def status(
    config: ConfigOpt = None, dev_keys: DevKeysOpt = False, as_json: JsonOpt = False
) -> None:
    """Chain id, block, state root, deployed contracts, cash supply, trading day."""
    settings = load_settings(config)
    manifest = read_manifest(settings.data_dir)
    chain = open_chain(settings, read_only=True, dev_keys=dev_keys)
    try:
        out = _status(chain, manifest)
    finally:
        chain.close()
    if as_json:
        emit_json(out)
        return
    typer.echo(f"{out['chain']} chain {out['chain_id']}  block {out['block']}  "
               f"time {out['block_time_s']}  root {out['state_root']}")  # fmt: skip
    typer.echo(f"trading day {out['trading_day']}  cash supply {out['cash_supply_fen']} fen  "
               f"events {out['events']}")  # fmt: skip
    for name, c in out["contracts"].items():
        flag = "" if c["abi_matches_sources"] else "  ABI CHANGED: redeploy"
        typer.echo(f"  {name:<18} {c['address']}{flag}")


@app.command()
@typed_errors
def events(
    contract: Annotated[str | None, typer.Option(help="deployed contract name")] = None,
    event: Annotated[str | None, typer.Option(help="event name, e.g. Minted")] = None,
    since: Annotated[int, typer.Option(help="cursor: only events with seq > since")] = 0,
    limit: Annotated[int, typer.Option(help="at most this many (oldest first)")] = 100,
    config: ConfigOpt = None,
    dev_keys: DevKeysOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Stored event logs, oldest first, from a cursor; `next` is the cursor to continue."""
    if limit <= 0 or since < 0:
        raise InvalidInput("limit must be > 0 and since >= 0")
    settings = load_settings(config)
    read_manifest(settings.data_dir)
    chain = open_chain(settings, read_only=True, dev_keys=dev_keys)
    try:
        found = chain.events(contract, event, since)[:limit]
    finally:
        chain.close()
    rows = [
        {"seq": e.seq, "block": e.block, "tx_hash": e.tx_hash, "contract": e.contract,
         "event": e.event, "args": e.args}
        for e in found
    ]  # fmt: skip
    out = {"events": rows, "next": rows[-1]["seq"] if rows else since}
    if as_json:
        emit_json(out)
        return
    for e in found:
        args = " ".join(f"{k}={v}" for k, v in e.args.items())
        typer.echo(f"{e.seq:>8} {e.block:>8} {e.contract}.{e.event} {args}")
