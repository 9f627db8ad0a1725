"""Compliance commands, merged at the top level of `crowdlev`:

    crowdlev screen "NAME" [--dob YYYY-MM-DD] [--json]
    crowdlev screen-batch FILE [--json]        (one name per line, or CSV: name[,YYYY-MM-DD])
    crowdlev lists load FILE [--json]          (UN XML, OFAC SDN.CSV, FtM JSON; rescreens)
    crowdlev lists show [--json]

Lists live in the database under the data dir (Settings); with none loaded, screening uses
the shipped UN list. On-chain identity writes caused by rescreening are queued in the outbox.
"""

from __future__ import annotations

import csv
import io
import sys
from datetime import date
from pathlib import Path

import typer

from crowdleverage.cliutil import emit_json, typed_errors
from crowdleverage.compliance.repository import make_engine
from crowdleverage.compliance.screening import ScreenResult
from crowdleverage.compliance.service import ComplianceService
from crowdleverage.config import load_settings
from crowdleverage.domain.errors import DataFileError, InvalidInput

app = typer.Typer(no_args_is_help=True)
lists_app = typer.Typer(help="Sanctions lists: load and show.", no_args_is_help=True)
app.add_typer(lists_app, name="lists")

JSON_OPT = typer.Option(False, "--json", help="machine-readable output")


def _service() -> ComplianceService:
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


if __name__ == "__main__":  # pragma: no cover
    app()
    sys.exit(0)
