"""`crowdlev reconcile`: chain ↔ custody ↔ broker reconciliation; exit 0 when clean, 11
(IntegrityFailure) with the list of breaks otherwise. Breaks pause the chain (fail closed)
unless --no-pause is given.

    crowdlev reconcile --json
    crowdlev reconcile --html var/reconciliation.html --broker-positions positions.json
"""

from __future__ import annotations

import json
import sys
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
from crowdleverage.domain.errors import DataFileError, IntegrityFailure, ServiceUnavailable

if TYPE_CHECKING:
    from crowdleverage.audit.reconcile import Break

    pass


app = typer.Typer(help="Reconciliation of the dual record.")


def _json_file(path: Path | None, what: str) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataFileError(str(path), None, f"cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise DataFileError(str(path), exc.lineno, f"not JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise DataFileError(str(path), None, f"{what} must be a JSON object")
    return data


def describe_break(b: Break) -> str:
    """One break for a person: kind, detail, the two values (CNY in 元 with 万/亿)."""
    from crowdleverage.domain.money import format_cn

    def value(v: int | None) -> str:
        if v is None:
            return "—"
        return format_cn(v) if b.asset == "CNY" else f"{v:,} shares"

    ref = f" ref {b.reference}" if b.reference else ""
    text = f"{b.kind.value.replace('_', ' ')} ({b.asset}{ref}): {b.detail}"
    if b.chain_value is not None or b.ledger_value is not None:
        text += f" — chain {value(b.chain_value)}, ledger {value(b.ledger_value)}"
    return text


@app.command("reconcile")
@typed_errors
def reconcile(
    broker_positions: Path | None = typer.Option(
        None, help='JSON {"600000": shares, ...} of broker custody (default: not checked)'
    ),
    addresses: Path | None = typer.Option(
        None, help='JSON {"INV-0001": "0x…", ...} of mirrored investor accounts'
    ),
    html_out: Path | None = typer.Option(None, "--html", help="also write an HTML report"),
    pause: bool = typer.Option(True, help="pause the chain on a break (fail closed)"),
    read_only: bool = typer.Option(
        False,
        "--read-only",
        help="check only: open the ledger and the chain read-only, record nothing, pause "
        "nothing (works while the platform runs)",
    ),
    bank_account: str = typer.Option(
        "6222020200112233445", envvar="CROWDLEV_CUSTODY_BANK_ACCOUNT", help="custody account"
    ),
    data_dir: DataDirOpt = None,
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Compare every mint/burn with its ledger twin, supplies and balances."""
    from crowdleverage.audit.log import AuditLog
    from crowdleverage.audit.reconcile import ChainGateway, Reconciler
    from crowdleverage.chain.factory import open_chain
    from crowdleverage.custody.db import engine_from_settings
    from crowdleverage.custody.service import CustodyService

    positions = _json_file(broker_positions, "broker positions")
    addr = _json_file(addresses, "addresses")
    settings = platform_settings(data_dir, announce=not as_json)
    require_platform_data(settings)
    if read_only:
        from crowdleverage.audit.log import metadata as audit_tables
        from crowdleverage.custody.schema import metadata as custody_tables

        engine = readonly_engine(settings, shadow=(custody_tables, audit_tables))
        custody = CustodyService(engine, bank_account)
        rec = Reconciler(custody)
    else:
        engine = engine_from_settings(settings)
        custody = CustodyService(engine, bank_account)
        custody.setup()
        log = AuditLog(engine, settings.data_dir)
        log.create_schema()
        rec = Reconciler(custody, audit_log=log)
        rec.create_schema()
    try:
        chain = open_chain(settings, read_only=read_only or not pause)
    except ServiceUnavailable as exc:
        raise ServiceUnavailable(
            f"{exc.message.split(';')[0]} (the platform is running): use `crowdlev reconcile "
            "--read-only` to check without recording or pausing"
        ) from exc
    try:
        gateway = ChainGateway(chain)
        kwargs: dict[str, Any] = {
            "addresses": {str(k): str(v) for k, v in addr.items()} if addr else None,
            "broker_positions": (
                {str(k): int(v) for k, v in positions.items()} if positions else None
            ),
        }
        if read_only:
            report = rec.check(gateway, **kwargs)
        else:
            report = rec.run(gateway, pauser=gateway if pause else None, **kwargs)
    finally:
        chain.close()
    if html_out is not None:
        html_out.write_text(report.to_html(), encoding="utf-8")
    if as_json:
        emit_json(report.to_dict())
    else:
        checked = ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in report.checked.items())
        typer.echo(f"checked: {checked}")
        typer.echo("reconciliation clean" if report.ok else f"{len(report.breaks)} break(s):")
        for b in report.breaks:
            typer.echo("  " + describe_break(b))
        if read_only:
            typer.echo("read-only: nothing recorded, nothing paused")
            if not report.ok:
                typer.echo(
                    "(while the platform runs, the ledger and the chain are read a moment"
                    " apart: a break may be a movement in flight; run again to confirm)"
                )
    if not report.ok:
        err = IntegrityFailure(f"reconciliation found {len(report.breaks)} break(s)")
        sys.stderr.write(f"error: {err.message}\n")
        raise typer.Exit(err.exit_code)


@app.command("resume-after-break")
@typed_errors
def resume(
    operator: str = typer.Option(..., help="who resumes (goes to the audit log)"),
    bank_account: str = typer.Option(
        "6222020200112233445", envvar="CROWDLEV_CUSTODY_BANK_ACCOUNT", help="custody account"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Operator: unpause the chain after a break — refused unless the latest reconciliation
    is clean (run `crowdlev reconcile` after booking the correction)."""
    from crowdleverage.audit.log import AuditLog
    from crowdleverage.audit.reconcile import ChainGateway, Reconciler
    from crowdleverage.chain.factory import open_chain
    from crowdleverage.config import load_settings
    from crowdleverage.custody.db import engine_from_settings
    from crowdleverage.custody.service import CustodyService

    settings = load_settings()
    engine = engine_from_settings(settings)
    custody = CustodyService(engine, bank_account)
    custody.setup()
    log = AuditLog(engine, settings.ensure_data_dir())
    log.create_schema()
    rec = Reconciler(custody, audit_log=log)
    rec.create_schema()
    chain = open_chain(settings)
    try:
        rec.resume(ChainGateway(chain), operator=operator)
    finally:
        chain.close()
    emit_json({"resumed": True}) if as_json else typer.echo("platform resumed")
