"""`crowdlev chain …`: deploy the asset/identity/oracle contracts and inspect the chain."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer

from crowdleverage.cliutil import (
    DataDirOpt,
    emit_json,
    platform_settings,
    require_platform_data,
    typed_errors,
)
from crowdleverage.domain.errors import InvalidInput

if TYPE_CHECKING:
    from crowdleverage.chain.port import ChainPort

SHANGHAI = ZoneInfo("Asia/Shanghai")
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
    from crowdleverage.config import load_settings

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
    from crowdleverage.chain.artifacts import DEPLOYABLES, artifact

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


def _open_read_only(
    data_dir: Path | None, config: Path | None, dev_keys: bool, as_json: bool
) -> tuple[ChainPort, dict[str, Any]]:
    """The chain and its manifest, read-only (creates nothing), from the chosen data dir."""
    from crowdleverage.chain.deploy import read_manifest
    from crowdleverage.chain.factory import open_chain

    settings = platform_settings(data_dir, config, announce=not as_json)
    if settings.chain == "embedded":
        require_platform_data(settings)
    manifest = read_manifest(settings.data_dir)
    return open_chain(settings, read_only=True, dev_keys=dev_keys), manifest


def _chain_time(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def render_status(out: dict[str, Any]) -> list[str]:
    """`chain status` for a person: dates, 元 with 万/亿, the trading day as a date."""
    from crowdleverage.domain.money import format_cn
    from crowdleverage.market.calendar import xshg
    from crowdleverage.oracle.feeder import session_date

    n = int(out["trading_day"])
    day = session_date(n)
    day_text = (
        "none open yet"
        if n == 0
        else f"{day} (oracle day #{n}: XSHG sessions counted from {xshg().first_day})"
        if day
        else f"oracle day #{n} (past the shipped calendar)"
    )
    lines = [
        f"{out['chain']} chain {out['chain_id']} · block {out['block']:,} "
        f"(deployed at {out['deployed_block']:,})",
        f"chain clock:  {_chain_time(int(out['block_time_s']))} Asia/Shanghai "
        "(the replay's time in a demo)",
        f"trading day:  {day_text}",
        f"cash supply:  {format_cn(int(out['cash_supply_fen']))} (CashToken, 1 token = 1 fen)"
        + ("  PAUSED" if out["cash_paused"] else ""),
        f"events:       {out['events']:,} (last #{out['last_event_seq']})",
        f"state root:   {out['state_root']}",
        "contracts:",
    ]
    for name, c in out["contracts"].items():
        flag = "" if c["abi_matches_sources"] else "  ABI CHANGED: redeploy"
        lines.append(f"  {name:<18} {c['address']}{flag}")
    return lines


@app.command()
@typed_errors
def status(
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    dev_keys: DevKeysOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Chain id, block, clock, trading day, cash supply, deployed contracts (read-only)."""
    chain, manifest = _open_read_only(data_dir, config, dev_keys, as_json)
    try:
        out = _status(chain, manifest)
    finally:
        chain.close()
    if as_json:
        emit_json(out)
        return
    for line in render_status(out):
        typer.echo(line)


@app.command()
@typed_errors
def events(
    contract: Annotated[str | None, typer.Option(help="deployed contract name")] = None,
    event: Annotated[str | None, typer.Option(help="event name, e.g. Minted")] = None,
    since: Annotated[int, typer.Option(help="cursor: only events with seq > since")] = 0,
    limit: Annotated[int, typer.Option(help="at most this many (oldest first)")] = 100,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    dev_keys: DevKeysOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Stored event logs, oldest first, from a cursor; `next` is the cursor to continue."""
    if limit <= 0 or since < 0:
        raise InvalidInput("limit must be > 0 and since >= 0")
    chain, _ = _open_read_only(data_dir, config, dev_keys, as_json)
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
