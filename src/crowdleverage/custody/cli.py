"""`crowdlev custody ...`: the custody ledger and the (simulated) custodian bank's files.

    crowdlev custody register-investor INV-0001 --name 张三 --virtual-account VA-0001 \\
        --reference CLZS01 --payout-account 6217001
    crowdlev custody bank-receive 15000.00 --payer 张三 --payer-account 6217001 \\
        --virtual-account VA-0001
    crowdlev custody bank-close --out var/camt053-1.xml
    crowdlev custody import-camt053 var/camt053-1.xml --json
    crowdlev custody balances --json
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from crowdleverage.cliutil import (
    DataDirOpt,
    emit_json,
    platform_settings,
    readonly_engine,
    require_platform_data,
    typed_errors,
)
from crowdleverage.domain.errors import DataFileError

if TYPE_CHECKING:
    from crowdleverage.custody.bank.simulator import SimulatedBank
    from crowdleverage.custody.service import CustodyService


app = typer.Typer(help="Custody ledger and custodian bank files.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="machine-readable output")
BANK_ACCOUNT = typer.Option(
    "6222020200112233445",
    envvar="CROWDLEV_CUSTODY_BANK_ACCOUNT",
    help="custody account at the bank",
)


def _service(bank_account: str) -> CustodyService:
    from crowdleverage.config import load_settings
    from crowdleverage.custody.db import engine_from_settings
    from crowdleverage.custody.service import CustodyService

    svc = CustodyService(engine_from_settings(load_settings()), bank_account)
    svc.setup()
    return svc


def _bank(bank_account: str) -> tuple[SimulatedBank, Path]:
    from crowdleverage.config import load_settings
    from crowdleverage.custody.bank.simulator import SimulatedBank

    file = load_settings().ensure_data_dir() / "bank_sim.json"
    return (SimulatedBank.load(file) if file.exists() else SimulatedBank(bank_account)), file


@app.command("register-investor")
@typed_errors
def register_investor(
    investor_id: str,
    name: str = typer.Option(...),
    virtual_account: str = typer.Option(...),
    reference: str = typer.Option(...),
    payout_account: str = typer.Option(...),
    bank_account: str = BANK_ACCOUNT,
    as_json: bool = JSON,
) -> None:
    """Open an investor's custody account (idempotent)."""
    acc = _service(bank_account).register_investor(
        investor_id,
        name=name,
        virtual_account=virtual_account,
        reference=reference,
        payout_account=payout_account,
    )
    out = {"investor_id": investor_id, "ledger_account_id": f"{acc:032x}"}
    emit_json(out) if as_json else typer.echo(f"{investor_id}: account {acc:032x}")


@app.command("import-camt053")
@typed_errors
def import_camt053(file: Path, bank_account: str = BANK_ACCOUNT, as_json: bool = JSON) -> None:
    """Validate and book a camt.053 statement (all or nothing; re-import changes nothing)."""
    from crowdleverage.domain.money import format_yuan

    try:
        data = file.read_bytes()
    except OSError as exc:
        raise DataFileError(str(file), None, f"cannot read: {exc.strerror}") from exc
    report = _service(bank_account).import_statement(data, str(file))
    if as_json:
        emit_json(report.to_dict())
    elif report.already_imported:
        typer.echo(f"{report.statement_id}: already imported, nothing changed")
    else:
        typer.echo(
            f"{report.statement_id}: {report.entries} entries, {len(report.deposits)} deposits,"
            f" {report.payouts_settled} payouts settled,"
            f" suspense {format_yuan(report.suspense_fen)} 元"
        )


@app.command("request-payout")
@typed_errors
def request_payout(
    investor_id: str,
    amount: str = typer.Argument(..., help="元, e.g. 1000.00"),
    bank_account: str = BANK_ACCOUNT,
    as_json: bool = JSON,
) -> None:
    """Reserve a payout (pending transfer) for the next pain.001 file."""
    from crowdleverage.custody.types import new_id
    from crowdleverage.domain.money import parse_yuan

    pid = _service(bank_account).request_payout(investor_id, parse_yuan(amount), payout_id=new_id())
    emit_json({"payout_id": f"{pid:032x}"}) if as_json else typer.echo(f"payout {pid:032x}")


@app.command("export-pain001")
@typed_errors
def export_pain001(
    out: Path = typer.Option(..., help="file to write"),
    bank_account: str = BANK_ACCOUNT,
    as_json: bool = JSON,
) -> None:
    """Write every requested payout into one pain.001 payment file."""
    now = datetime.now()
    data = _service(bank_account).export_payouts(at=now, execution_date=now.date())
    if data is not None:
        out.write_bytes(data)
    result = {"written": data is not None, "file": str(out) if data else None}
    emit_json(result) if as_json else typer.echo(f"wrote {out}" if data else "no payouts to export")


@app.command("balances")
@typed_errors
def balances(bank_account: str = BANK_ACCOUNT, data_dir: DataDirOpt = None,
             as_json: bool = JSON) -> None:  # fmt: skip
    """Custody cash and every investor's balance (read-only; JSON in fen)."""
    from crowdleverage.custody.service import CustodyService
    from crowdleverage.domain.money import format_cn, format_yuan

    settings = platform_settings(data_dir, announce=not as_json)
    require_platform_data(settings)
    from crowdleverage.custody.schema import metadata as custody_tables

    svc = CustodyService(readonly_engine(settings, shadow=[custody_tables]), bank_account)
    investors = svc.investor_balances()
    out = {"bank_cash_fen": svc.bank_cash_fen(), "investors_fen": investors}
    if as_json:
        emit_json(out)
        return
    typer.echo(f"custody cash {format_cn(svc.bank_cash_fen())}  ({len(investors)} investors)")
    width = max((len(i) for i in investors), default=0)
    for inv, fen in investors.items():
        typer.echo(f"  {inv:<{width}}  {format_cn(fen):>16}  ({format_yuan(fen)} 元)")


@app.command("bank-receive")
@typed_errors
def bank_receive(
    amount: str = typer.Argument(..., help="元, e.g. 15000.00"),
    payer: str = typer.Option(...),
    payer_account: str = typer.Option(...),
    virtual_account: str = typer.Option(""),
    remittance: str = typer.Option(""),
    bank_account: str = BANK_ACCOUNT,
    as_json: bool = JSON,
) -> None:
    """Simulated bank: an investor's transfer arrives."""
    from crowdleverage.domain.money import parse_yuan

    bank, file = _bank(bank_account)
    e = bank.receive_transfer(
        parse_yuan(amount),
        payer_name=payer,
        payer_account=payer_account,
        virtual_account=virtual_account,
        remittance=remittance,
        day=date.today(),
    )
    bank.save(file)
    emit_json({"ref": e.account_servicer_ref}) if as_json else typer.echo(e.account_servicer_ref)


@app.command("bank-execute")
@typed_errors
def bank_execute(file: Path, bank_account: str = BANK_ACCOUNT, as_json: bool = JSON) -> None:
    """Simulated bank: execute a pain.001 payment file."""
    bank, state = _bank(bank_account)
    n = bank.execute_payment_file(file.read_bytes(), day=date.today(), source=str(file))
    bank.save(state)
    emit_json({"payments": n}) if as_json else typer.echo(f"executed {n} payments")


@app.command("bank-close")
@typed_errors
def bank_close(
    out: Path = typer.Option(..., help="camt.053 file to write"),
    bank_account: str = BANK_ACCOUNT,
    as_json: bool = JSON,
) -> None:
    """Simulated bank: issue the end-of-day camt.053 statement."""
    bank, state = _bank(bank_account)
    out.write_bytes(bank.close_statement(at=datetime.now().replace(microsecond=0)))
    bank.save(state)
    emit_json({"file": str(out)}) if as_json else typer.echo(f"wrote {out}")


@app.command("bridge")
@typed_errors
def bridge_cmd(
    addresses: Path = typer.Option(..., help='JSON {"INV-0001": "0x…", ...}: investor addresses'),
    bank_account: str = BANK_ACCOUNT,
    as_json: bool = JSON,
) -> None:
    """Mint every booked deposit not yet on chain, finish in-flight burns, and mirror internal
    chain movements into the ledger (idempotent; run after each statement import)."""
    import json

    from crowdleverage.chain.factory import open_chain
    from crowdleverage.config import load_settings
    from crowdleverage.custody.bridge import Bridge
    from crowdleverage.custody.indexer import ChainMirror

    try:
        mapping = json.loads(addresses.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataFileError(str(addresses), None, f"not a readable JSON object: {exc}") from exc
    if not isinstance(mapping, dict):
        raise DataFileError(str(addresses), None, "must be a JSON object")
    by_address = {str(a).lower(): str(i) for i, a in mapping.items()}
    svc = _service(bank_account)

    def address_of(investor_id: str) -> str:
        if investor_id not in mapping:
            raise DataFileError(str(addresses), None, f"no address for investor {investor_id}")
        return str(mapping[investor_id])

    chain = open_chain(load_settings())
    try:
        stats = Bridge(svc, chain, address_of).process()
        mirrored = ChainMirror(svc, chain, lambda a: by_address.get(a.lower())).sync()
    finally:
        chain.close()
    out = {
        "queued": stats.queued,
        "minted": stats.minted,
        "burned": stats.burned,
        "already_on_chain": stats.already_on_chain,
        "failed": stats.failed,
        "mirrored": mirrored.created,
        "mirror_failed": mirrored.failed,
    }
    if as_json:
        emit_json(out)
    else:
        typer.echo(", ".join(f"{k} {v}" for k, v in out.items()))


@app.command("correct")
@typed_errors
def correct(
    investor_id: str,
    amount: str = typer.Argument(..., help="元, e.g. 700.00"),
    credit: bool = typer.Option(..., "--credit/--debit", help="credit or debit the investor"),
    reference: str = typer.Option("", help="hex chain reference / ledger transfer id corrected"),
    operator: str = typer.Option(..., help="who books it (goes to the audit log)"),
    bank_account: str = BANK_ACCOUNT,
    as_json: bool = JSON,
) -> None:
    """Operator: book a correcting entry between an investor and SUSPENSE (audited)."""
    from crowdleverage.audit.log import AuditLog
    from crowdleverage.config import load_settings
    from crowdleverage.custody.types import new_id
    from crowdleverage.domain.errors import InvalidInput
    from crowdleverage.domain.money import parse_yuan

    try:
        ref = int(reference, 16) if reference else 0
    except ValueError as exc:
        raise InvalidInput(f"reference {reference!r} is not hex") from exc
    svc = _service(bank_account)
    amount_fen = parse_yuan(amount)
    cid = new_id()
    svc.book_correction(
        cid, investor_id=investor_id, amount_fen=amount_fen, credit_investor=credit, reference=ref
    )
    settings = load_settings()
    log = AuditLog(svc.engine, settings.ensure_data_dir())
    log.create_schema()
    log.append(operator, "book_correction", {"correction_id": f"{cid:032x}",
               "investor_id": investor_id, "amount_fen": amount_fen, "credit": credit,
               "reference": f"{ref:032x}" if ref else None})  # fmt: skip
    emit_json({"correction_id": f"{cid:032x}"}) if as_json else typer.echo(f"booked {cid:032x}")
