"""Compliance commands, merged at the top level of `crowdlev`:

    crowdlev screen "NAME" [--dob YYYY-MM-DD] [--json]
    crowdlev screen-batch FILE [--json]        (one name per line, or CSV: name[,YYYY-MM-DD])
    crowdlev lists load FILE [--json]          (UN XML, OFAC SDN.CSV, FtM JSON; rescreens)
    crowdlev lists show [--json]
    crowdlev kyc onboard|verify|reject|show
    crowdlev cases list|show|investigate|report|close|str-export

Lists live in the database under the data dir (Settings); with none loaded, screening uses
the shipped UN list. On-chain identity writes caused by rescreening are queued in the outbox.
"""

from __future__ import annotations

import csv
import io
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from crowdleverage.cliutil import emit_json, typed_errors
from crowdleverage.domain.errors import DataFileError, InvalidInput

if TYPE_CHECKING:
    from crowdleverage.compliance.cases import Case, CaseStatus
    from crowdleverage.compliance.screening import ScreenResult
    from crowdleverage.compliance.service import ComplianceService


app = typer.Typer(no_args_is_help=True)
lists_app = typer.Typer(help="Sanctions lists: load and show.", no_args_is_help=True)
app.add_typer(lists_app, name="lists")
kyc_app = typer.Typer(help="KYC onboarding: onboard, verify, reject, show.", no_args_is_help=True)
app.add_typer(kyc_app, name="kyc")
cases_app = typer.Typer(
    help="Compliance cases: list, show, move, STR export.", no_args_is_help=True
)
app.add_typer(cases_app, name="cases")

JSON_OPT = typer.Option(False, "--json", help="machine-readable output")


def _service() -> ComplianceService:
    from crowdleverage.compliance.repository import make_engine
    from crowdleverage.compliance.service import ComplianceService
    from crowdleverage.config import load_settings

    settings = load_settings()
    if settings.database_url is None:
        settings.ensure_data_dir()
    return ComplianceService(make_engine(settings.resolved_database_url), None)


def _parse_dob(text: str | None, where: str = "--dob") -> date | None:
    if text is None or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{where}: {text!r} is not a date like 1971-10-10") from None


def _print_result(r: ScreenResult) -> None:
    verdict = "HIT" if r.is_hit else "clear"
    dob = f" (born {r.birth_date})" if r.birth_date else ""
    typer.echo(f"{r.query}{dob}: {verdict}, top score {r.top_score} (threshold {r.threshold})")
    for h in r.hits[:5]:
        typer.echo(
            f"  {h.score:3d}  {h.primary_name}  [{h.list_id} {h.reference or h.entry_id}]"
            f"  matched {h.matched_name!r}: {'; '.join(h.reasons)}"
        )


@app.command("screen")
@typed_errors
def screen(
    name: str = typer.Argument(..., help="name to screen, any script"),
    dob: str | None = typer.Option(None, "--dob", help="date of birth YYYY-MM-DD"),
    min_score: int | None = typer.Option(None, "--min-score", help="also show near misses"),
    as_json: bool = JSON_OPT,
) -> None:
    """Screen one name against the loaded sanctions lists. Exit code 7 on a hit."""
    svc = _service()
    result = svc.screener().screen(name, _parse_dob(dob), min_score=min_score)
    if as_json:
        emit_json({**result.to_dict(), "lists": svc.list_versions()})
    else:
        _print_result(result)
    if result.is_hit:
        raise typer.Exit(code=7)


def _read_batch(path: Path) -> list[tuple[str, date | None]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(str(path), None, f"cannot read as UTF-8 text: {exc}") from exc
    out: list[tuple[str, date | None]] = []
    for line_no, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if line_no == 1 and row[0].strip().lower() == "name":
            continue  # header
        if len(row) > 2:
            raise DataFileError(str(path), line_no, f"expected name[,dob], got {len(row)} fields")
        try:
            dob = _parse_dob(row[1] if len(row) == 2 else None, f"line {line_no}")
        except InvalidInput as exc:
            raise DataFileError(str(path), line_no, exc.message) from exc
        out.append((row[0].strip(), dob))
    if not out:
        raise DataFileError(str(path), None, "no names to screen")
    return out


@app.command("screen-batch")
@typed_errors
def screen_batch(
    file: Path = typer.Argument(..., help="one name per line, or CSV name[,YYYY-MM-DD]"),
    as_json: bool = JSON_OPT,
) -> None:
    """Screen every name in a file. Exit code 7 when any name hits."""
    queries = _read_batch(file)
    svc = _service()
    results = svc.screener().screen_many(queries)
    hits = sum(r.is_hit for r in results)
    if as_json:
        emit_json(
            {
                "lists": svc.list_versions(),
                "screened": len(results),
                "hits": hits,
                "results": [r.to_dict() for r in results],
            }
        )
    else:
        for r in results:
            _print_result(r)
        typer.echo(f"{len(results)} screened, {hits} hit(s)")
    if hits:
        raise typer.Exit(code=7)


@lists_app.command("load")
@typed_errors
def lists_load(
    file: Path = typer.Argument(..., help="UN consolidated XML, OFAC SDN.CSV or FtM JSON lines"),
    as_json: bool = JSON_OPT,
) -> None:
    """Load a sanctions list (once per file content) and rescreen every identity."""
    result = _service().load_list(file)
    if as_json:
        emit_json(result.to_dict())
        return
    state = "loaded" if result.created else "already loaded"
    typer.echo(
        f"{result.list_id} {result.version}: {state}, {result.entry_count} entries; "
        f"rescreened {result.rescreened} identities, {len(result.new_cases)} new case(s)"
    )


@lists_app.command("show")
@typed_errors
def lists_show(as_json: bool = JSON_OPT) -> None:
    """The lists screening uses now."""
    loaded = _service().loaded_lists()
    if as_json:
        emit_json({"lists": loaded})
        return
    if not loaded:
        typer.echo("no lists loaded; screening uses the shipped UN list (2018-10-29)")
    for x in loaded:
        typer.echo(f"{x['list']} {x['version']} ({x['format']}): {x['entries']} entries")


ACTOR_OPT = typer.Option(..., "--actor", help="officer named in the audit trail")


@kyc_app.command("onboard")
@typed_errors
def kyc_onboard(
    address: str = typer.Option(..., "--address", help="on-chain account 0x..."),
    name: str = typer.Option(..., "--name"),
    id_number: str = typer.Option(..., "--id-number", help="18-character resident id"),
    phone: str = typer.Option(..., "--phone"),
    bank_card: str = typer.Option(..., "--bank-card"),
    expiry: str = typer.Option(..., "--document-expiry", help="YYYY-MM-DD"),
    role: list[str] = typer.Option(["investor"], "--role", help="investor and/or borrower"),
    document: list[Path] = typer.Option([], "--document", help="scan to store by hash"),
    as_json: bool = JSON_OPT,
) -> None:
    """Validate and screen an applicant; a sanctions hit opens a case (exit code 7)."""
    from crowdleverage.compliance.ports import IdentityRole
    from crowdleverage.compliance.service import Document, KycApplication

    roles = IdentityRole(0)
    for r in role:
        try:
            roles |= IdentityRole[r.upper()]
        except KeyError:
            raise InvalidInput(f"role {r!r} must be investor or borrower") from None
    expiry_date = _parse_dob(expiry, "--document-expiry")
    assert expiry_date is not None, "dev: required option"
    docs = []
    for p in document:
        try:
            docs.append(Document(p.stem, p.read_bytes()))
        except OSError as exc:
            raise InvalidInput(f"--document {p}: {exc.strerror}") from exc
    app_ = KycApplication(address, name, id_number, phone, bank_card, expiry_date, roles,
                          tuple(docs))  # fmt: skip
    result = _service().onboard(app_)
    if as_json:
        emit_json(result.to_dict())
    else:
        state = f"BLOCKED by case {result.case_id}" if result.blocked else "pending review"
        typer.echo(f"{result.identity_id}: {state}")
        _print_result(result.screening)
    if result.blocked:
        raise typer.Exit(code=7)


@kyc_app.command("verify")
@typed_errors
def kyc_verify(identity_id: str, actor: str = ACTOR_OPT, as_json: bool = JSON_OPT) -> None:
    """Verify a pending identity (refused while a sanctions case is open)."""
    svc = _service()
    svc.verify(identity_id, actor=actor)
    _emit_identity(svc.identity(identity_id), as_json)


@kyc_app.command("reject")
@typed_errors
def kyc_reject(
    identity_id: str,
    actor: str = ACTOR_OPT,
    reason: str = typer.Option(..., "--reason"),
    as_json: bool = JSON_OPT,
) -> None:
    """Reject a pending identity, with the reason."""
    svc = _service()
    svc.reject(identity_id, actor=actor, reason=reason)
    _emit_identity(svc.identity(identity_id), as_json)


@kyc_app.command("show")
@typed_errors
def kyc_show(identity_id: str, as_json: bool = JSON_OPT) -> None:
    """An identity's status (masked id and card numbers)."""
    _emit_identity(_service().identity(identity_id), as_json)


def _emit_identity(ident: dict[str, object], as_json: bool) -> None:
    if as_json:
        emit_json(ident)
        return
    frozen = ", FROZEN" if ident["frozen"] else ""
    typer.echo(
        f"{ident['identity_id']} {ident['name']} {ident['address']}: {ident['status']}{frozen}"
    )


def _case_line(c: Case) -> str:
    who = c.identity_id or "-"
    return f"{c.case_id}  {c.status.value:<13} {c.kind:<24} {who}  {c.title}"


@cases_app.command("list")
@typed_errors
def cases_list(
    status: str | None = typer.Option(None, "--status", help="open|investigating|reported|closed"),
    as_json: bool = JSON_OPT,
) -> None:
    """Cases, oldest first."""
    from crowdleverage.compliance import cases as case_repo

    want = _status(status) if status else None
    with _service().engine.connect() as conn:
        found = case_repo.list_cases(conn, status=want)
    if as_json:
        emit_json({"cases": [c.to_dict() for c in found]})
        return
    for c in found:
        typer.echo(_case_line(c))
    typer.echo(f"{len(found)} case(s)")


@cases_app.command("show")
@typed_errors
def cases_show(case_id: str, as_json: bool = JSON_OPT) -> None:
    """One case with its audit trail."""
    from crowdleverage.compliance import cases as case_repo

    with _service().engine.connect() as conn:
        case = case_repo.get_case(conn, case_id)
        trail = case_repo.history(conn, case_id)
    if as_json:
        emit_json({**case.to_dict(), "history": trail})
        return
    typer.echo(_case_line(case))
    for e in trail:
        typer.echo(f"  {e['at']}  {e['actor']}: {e['action']} -> {e['to']}  {e['note']}")


@cases_app.command("investigate")
@typed_errors
def cases_investigate(case_id: str, actor: str = ACTOR_OPT, as_json: bool = JSON_OPT) -> None:
    """Take an open case under investigation."""
    _emit_case(_service().investigate_case(case_id, actor=actor), as_json)


@cases_app.command("report")
@typed_errors
def cases_report(
    case_id: str,
    actor: str = ACTOR_OPT,
    grounds: str = typer.Option(..., "--grounds", help="why the activity is suspicious"),
    as_json: bool = JSON_OPT,
) -> None:
    """File the suspicious-transaction report for a case under investigation."""
    _emit_case(_service().report_case(case_id, actor=actor, grounds=grounds), as_json)


@cases_app.command("close")
@typed_errors
def cases_close(
    case_id: str,
    resolution: str = typer.Option(..., "--resolution", help="false_positive|confirmed|no_action"),
    actor: str = ACTOR_OPT,
    note: str = typer.Option("", "--note"),
    as_json: bool = JSON_OPT,
) -> None:
    """Close a case; a confirmed sanctions match rejects or freezes the identity."""
    from crowdleverage.compliance.cases import Resolution

    try:
        res = Resolution(resolution)
    except ValueError:
        raise InvalidInput(
            f"resolution {resolution!r} must be one of {', '.join(r.value for r in Resolution)}"
        ) from None
    _emit_case(_service().resolve_case(case_id, res, actor=actor, note=note), as_json)


@cases_app.command("str-export")
@typed_errors
def cases_str_export(
    csv_out: Path | None = typer.Option(None, "--csv", help="also write the reports as CSV"),
    as_json: bool = JSON_OPT,
) -> None:
    """Suspicious-transaction reports of every reported AML case."""
    from crowdleverage.compliance import cases as case_repo

    reports = _service().str_export()
    if csv_out is not None:
        csv_out.write_text(case_repo.reports_to_csv(reports), encoding="utf-8")
    if as_json:
        emit_json({"reports": reports})
        return
    for r in reports:
        typer.echo(f"{r['case_id']}  {r['rule']}  {r['subject_name']}  {r['total_amount_fen']} fen")
    typer.echo(f"{len(reports)} report(s)")


def _status(text: str) -> CaseStatus:
    from crowdleverage.compliance.cases import CaseStatus

    try:
        return CaseStatus(text)
    except ValueError:
        raise InvalidInput(
            f"status {text!r} must be one of {', '.join(s.value for s in CaseStatus)}"
        ) from None


def _emit_case(case: Case, as_json: bool) -> None:
    if as_json:
        emit_json(case.to_dict())
    else:
        typer.echo(_case_line(case))


if __name__ == "__main__":  # pragma: no cover
    app()
    sys.exit(0)
