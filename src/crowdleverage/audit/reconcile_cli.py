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
from typing import Any

import typer

from crowdleverage.audit.log import AuditLog
from crowdleverage.audit.reconcile import ChainGateway, Reconciler
from crowdleverage.cliutil import emit_json, typed_errors
from crowdleverage.config import load_settings
from crowdleverage.custody.db import engine_from_settings
from crowdleverage.custody.service import CustodyService
from crowdleverage.domain.errors import DataFileError, IntegrityFailure

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
    bank_account: str = typer.Option(
        "6222020200112233445", envvar="CROWDLEV_CUSTODY_BANK_ACCOUNT", help="custody account"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Compare every mint/burn with its ledger twin, supplies and balances."""
    from crowdleverage.chain.factory import open_chain

    positions = _json_file(broker_positions, "broker positions")
    addr = _json_file(addresses, "addresses")
    settings = load_settings()
    engine = engine_from_settings(settings)
    custody = CustodyService(engine, bank_account)
    custody.setup()
    log = AuditLog(engine, settings.ensure_data_dir())
    log.create_schema()
    rec = Reconciler(custody, audit_log=log)
    rec.create_schema()
    chain = open_chain(settings, read_only=not pause)
    try:
        gateway = ChainGateway(chain)
        report = rec.run(
            gateway,
            pauser=gateway if pause else None,
            addresses={str(k): str(v) for k, v in addr.items()} if addr else None,
            broker_positions={str(k): int(v) for k, v in positions.items()} if positions else None,
        )
    finally:
        chain.close()
    if html_out is not None:
        html_out.write_text(report.to_html(), encoding="utf-8")
    if as_json:
        emit_json(report.to_dict())
    else:
        typer.echo("reconciliation clean" if report.ok else f"{len(report.breaks)} break(s):")
        for b in report.breaks:
            typer.echo(f"  {b.kind.value:<20} {b.asset:<7} {b.reference or '':<32} {b.detail}")
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
    from crowdleverage.chain.factory import open_chain

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
