"""`crowdlev audit ...`: the tamper-evident log and proofs of liabilities.

crowdlev audit record --actor operator:wang --action set_params --payload '{"tier": 3}'
crowdlev audit verify-log --json
crowdlev audit snapshot --epoch 20260302          # investor balances from custody
crowdlev audit prove --investor INV-0001 --json > proof.json
crowdlev audit verify-proof proof.json
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from crowdleverage.cliutil import (
    DataDirOpt,
    emit_json,
    platform_settings,
    readonly_engine,
    require_platform_data,
    typed_errors,
)
from crowdleverage.domain.errors import IntegrityFailure, InvalidInput

if TYPE_CHECKING:
    from crowdleverage.audit.log import AuditLog
    from crowdleverage.audit.proofs import Liabilities
    from crowdleverage.audit.publish import ChainRootPublisher


if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

app = typer.Typer(
    help="Audit: hash-chained signed log, proofs of liabilities.", no_args_is_help=True
)

JSON = typer.Option(False, "--json", help="machine-readable output")


def _audit_log() -> AuditLog:
    from crowdleverage.audit.log import AuditLog
    from crowdleverage.config import load_settings
    from crowdleverage.custody.db import engine_from_settings

    settings = load_settings()
    log = AuditLog(engine_from_settings(settings), settings.ensure_data_dir())
    log.create_schema()
    return log


def _liabilities() -> Liabilities:
    from crowdleverage.audit.proofs import Liabilities
    from crowdleverage.config import load_settings
    from crowdleverage.custody.db import engine_from_settings

    lia = Liabilities(engine_from_settings(load_settings()))
    lia.create_schema()
    return lia


def _read_liabilities(data_dir: Path | None, as_json: bool) -> Liabilities:
    """The recorded epochs and roots, read-only from the chosen data dir (creates nothing)."""
    from crowdleverage.audit.log import metadata as audit_tables
    from crowdleverage.audit.proofs import Liabilities

    settings = platform_settings(data_dir, announce=not as_json)
    require_platform_data(settings)
    return Liabilities(readonly_engine(settings, shadow=[audit_tables]))


@app.command("record")
@typed_errors
def record(
    actor: str = typer.Option(..., help="who acted, e.g. operator:wang"),
    action: str = typer.Option(..., help="what they did, e.g. set_params"),
    payload: str = typer.Option("{}", help="JSON object with the details"),
    as_json: bool = JSON,
) -> None:
    """Append an operator or compliance action to the audit log."""
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--payload is not JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("--payload must be a JSON object")
    entry = _audit_log().append(actor, action, data)
    out = {"seq": entry.seq, "entry_hash": entry.entry_hash}
    emit_json(out) if as_json else typer.echo(f"recorded #{entry.seq} {entry.entry_hash}")


# The platform's record beside the audit log: tables whose rows mean the platform acted.
_RECORD_TABLES = {"custody_transfers": "ledger transfers", "flows_commands": "API commands"}


def record_counts(engine: Engine) -> dict[str, int]:
    """Rows in the platform's record (ledger transfers, accepted API commands), per table."""
    import sqlalchemy as sa

    present = set(sa.inspect(engine).get_table_names())
    out = {}
    with engine.connect() as conn:
        for table in _RECORD_TABLES:
            if table in present:
                out[table] = int(
                    conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                )
    return out


@app.command("verify-log")
@typed_errors
def verify_log(
    signer: list[str] = typer.Option(None, help="trusted signer address (default: data dir list)"),
    data_dir: DataDirOpt = None,
    as_json: bool = JSON,
) -> None:
    """Check the audit log's hash chain, signatures and head (read-only); exit 11 if anything
    was edited, deleted or reordered, or if the log is missing or empty while the platform's
    record holds activity."""
    import sqlalchemy as sa

    from crowdleverage.audit.log import AuditLog, VerifyReport

    settings = platform_settings(data_dir, announce=not as_json)
    require_platform_data(settings)
    engine = readonly_engine(settings)
    log = AuditLog(engine, settings.data_dir)
    has_table = "audit_log" in sa.inspect(engine).get_table_names()
    report = log.verify(trusted=signer or None) if has_table else VerifyReport()
    if report.entries == 0:
        counts = {k: v for k, v in record_counts(engine).items() if v}
        if counts:
            what = ", ".join(f"{v:,} {_RECORD_TABLES[k]}" for k, v in counts.items())
            report.problems.append({"seq": None, "problem":
                f"the audit log is {'empty' if has_table else 'missing'} but the record in "
                f"{settings.data_dir} holds {what}: the log was removed or this is not the "
                "platform's data dir"})  # fmt: skip
    if as_json:
        emit_json(report.to_dict())
    else:
        typer.echo(f"{report.entries:,} entries, head #{report.head_seq}")
        for p in report.problems:
            typer.echo(f"  #{p['seq']}: {p['problem']}" if p["seq"] else f"  {p['problem']}")
    if not report.ok:
        err = IntegrityFailure(f"audit log failed verification: {len(report.problems)} problem(s)")
        sys.stderr.write(f"error: {err.message}\n")
        raise typer.Exit(err.exit_code)
    if not as_json:
        typer.echo("audit log verified")


@app.command("snapshot")
@typed_errors
def snapshot(
    epoch: int = typer.Option(..., help="epoch number, e.g. the trading day 20260302"),
    bank_account: str = typer.Option(
        "6222020200112233445", envvar="CROWDLEV_CUSTODY_BANK_ACCOUNT", help="custody account"
    ),
    as_json: bool = JSON,
) -> None:
    """Freeze investor balances from the custody ledger into a Merkle-sum tree."""
    from crowdleverage.config import load_settings
    from crowdleverage.custody.db import engine_from_settings
    from crowdleverage.custody.service import CustodyService

    settings = load_settings()
    custody = CustodyService(engine_from_settings(settings), bank_account)
    custody.setup()
    lia = _liabilities()
    root, total = lia.snapshot(epoch, custody.investor_balances())
    out: dict[str, Any] = {"epoch": epoch, "root_hash": root, "total_fen": total}
    if as_json:
        emit_json(out)
    else:
        from crowdleverage.domain.money import format_cn

        typer.echo(f"epoch {epoch}: root {root} total {format_cn(total)}")


@app.command("prove")
@typed_errors
def prove(
    investor: str = typer.Option(..., help="investor id"),
    epoch: int | None = typer.Option(None, help="epoch (default: the latest)"),
    data_dir: DataDirOpt = None,
    as_json: bool = JSON,
) -> None:
    """Inclusion proof of an investor's balance in an epoch's published root (read-only;
    --json writes the proof file that `verify-proof` checks)."""
    from crowdleverage.domain.money import format_cn, format_yuan

    lia = _read_liabilities(data_dir, as_json)
    proof = lia.prove(epoch if epoch is not None else lia.latest_epoch(), investor)
    if as_json:
        emit_json(proof)
        return
    fen = int(proof["leaf"]["balance_fen"])
    typer.echo(
        f"{investor}: {format_cn(fen)} ({format_yuan(fen)} 元) in epoch {proof['epoch']}, "
        f"leaf {proof['leaf_index'] + 1} of {proof['tree_size']}, {len(proof['path'])} nodes"
    )
    typer.echo(f"root {proof['root_hash']} · total {format_cn(int(proof['total_fen']))}")
    typer.echo("save it with --json > proof.json; check with `crowdlev audit verify-proof`")


@app.command("verify-proof")
@typed_errors
def verify_proof_cmd(
    file: Path = typer.Argument(..., help="proof JSON from `crowdlev audit prove`"),
    offline: bool = typer.Option(
        False, help="check the proof alone, without comparing to this platform's recorded root"
    ),
    on_chain: bool = typer.Option(
        False, "--on-chain", help="also compare with the root published on chain"
    ),
    data_dir: DataDirOpt = None,
    as_json: bool = JSON,
) -> None:
    """Check an inclusion proof (read-only): exit 0 if it verifies, 11 if tampered, 2 if
    malformed."""
    from crowdleverage.audit.proofs import load_proof_file, verify_proof
    from crowdleverage.domain.money import format_cn

    proof = load_proof_file(str(file))
    if offline:
        root, total = verify_proof(proof)
    else:
        _read_liabilities(data_dir, as_json).check_against_published(proof)
        root, total = str(proof["root_hash"]), int(proof["total_fen"])
    if on_chain:
        root, total = verify_proof(proof)
        with _root_publisher(read_only=True, data_dir=data_dir, announce=not as_json) as publisher:
            publisher.check(int(proof["epoch"]), root, total)
    leaf = proof["leaf"]
    out = {"ok": True, "investor_id": leaf["investor_id"], "balance_fen": leaf["balance_fen"],
           "epoch": proof.get("epoch"), "root_hash": root, "total_fen": total}  # fmt: skip
    if as_json:
        emit_json(out)
    else:
        typer.echo(
            f"proof verified: {leaf['investor_id']} holds {format_cn(int(leaf['balance_fen']))}"
            f" in epoch {proof.get('epoch')} (root {root[:16]}…, total {format_cn(total)})"
        )


@contextlib.contextmanager
def _root_publisher(
    read_only: bool, data_dir: Path | None = None, announce: bool = False
) -> Iterator[ChainRootPublisher]:
    from crowdleverage.audit.publish import ChainRootPublisher
    from crowdleverage.chain.factory import open_chain
    from crowdleverage.config import load_settings

    settings = platform_settings(data_dir, announce=announce) if read_only else load_settings()
    port = open_chain(settings, read_only=read_only)
    try:
        yield ChainRootPublisher(port)
    finally:
        port.close()


@app.command("publish")
@typed_errors
def publish(
    epoch: int | None = typer.Option(None, help="epoch (default: the latest snapshot)"),
    as_json: bool = JSON,
) -> None:
    """Publish an epoch's liabilities root on chain (LiabilityRoots; deployed if missing)."""
    from crowdleverage.chain.deploy import deploy_liability_roots
    from crowdleverage.config import load_settings

    settings = load_settings()
    lia = _liabilities()
    ep = epoch if epoch is not None else lia.latest_epoch()
    with _root_publisher(read_only=False) as publisher:
        deploy_liability_roots(publisher.port, settings.ensure_data_dir())
        ref = lia.publish(ep, publisher)
    root = lia.root(ep)
    assert root is not None
    out = {"epoch": ep, "root_hash": root[0], "total_fen": root[1], "tx": ref}
    emit_json(out) if as_json else typer.echo(f"epoch {ep}: root {root[0]} published in {ref}")
