"""`crowdlev onboarding …`: the compliance officer's queue on the command line.

    crowdlev onboarding queue [--status referred|blocked|approved|declined|all] [--json]
    crowdlev onboarding show USER_ID [--json]
    crowdlev onboarding override USER_ID --outcome approve|decline [--tier N] --reason TEXT
                                 [--actor NAME] [--json]
    crowdlev onboarding population [--json]      (PSI of the credit model in use)

Same database as the service (Settings). An override's identity write is queued in the
compliance outbox; the platform process relays it on chain (after its next decision or tick).
Decisions and overrides go to the audit log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from crowdleverage.cliutil import emit_json, typed_errors
from crowdleverage.domain.errors import InvalidInput

if TYPE_CHECKING:
    from crowdleverage.compliance.onboarding import OnboardingService


app = typer.Typer(help="Onboarding: the compliance officer's queue.", no_args_is_help=True)
JSON_OPT = typer.Option(False, "--json", help="machine-readable output")
STATUSES = ("referred", "blocked", "approved", "declined", "all")


def _service() -> OnboardingService:
    from crowdleverage.audit.log import AuditLog
    from crowdleverage.compliance.onboarding import OnboardingService
    from crowdleverage.compliance.repository import make_engine
    from crowdleverage.compliance.service import ComplianceService
    from crowdleverage.config import load_settings
    from crowdleverage.credit.model import ModelRegistry
    from crowdleverage.credit.registry import default_registry

    settings = load_settings()
    settings.ensure_data_dir()
    engine = make_engine(settings.resolved_database_url)
    audit = AuditLog(engine, settings.data_dir)
    audit.create_schema()
    return OnboardingService(
        ComplianceService(engine, None), models=ModelRegistry(default_registry()), audit=audit
    )


def _line(r: dict[str, Any]) -> str:
    pd_ = f"{r['pd'] * 100:.1f}%" if r["pd"] is not None else "-"
    return (
        f"user {r['user_ref']:>6}  {r['role']:8} {r['status']:9} tier {r['tier'] or '-'}  "
        f"PD {pd_:>6}  {r['model_version'] or '-'}  {r['decided_at']}"
    )


@app.command()
@typed_errors
def queue(
    status: str = typer.Option("referred", help="|".join(STATUSES)), as_json: bool = JSON_OPT
) -> None:
    """Applications by status (default: referrals waiting for the officer)."""
    if status not in STATUSES:
        raise InvalidInput(f"--status must be one of {', '.join(STATUSES)}")
    rows = _service().queue(None if status == "all" else status)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        typer.echo(_line(r))


@app.command()
@typed_errors
def show(user_id: int, as_json: bool = JSON_OPT) -> None:
    """Every step of a user's latest application, with reasons (en, zh-CN)."""
    rec = _service().latest_for(str(user_id))
    if as_json:
        emit_json(rec)
        return
    typer.echo(_line(rec))
    for s in rec["steps"]:
        typer.echo(f"  {s['step']:12} {s['result']}")
        for r in s["reasons"]:
            typer.echo(f"      {r['en']} / {r['zh']}")


@app.command()
@typed_errors
def override(
    user_id: int,
    outcome: str = typer.Option(..., help="approve | decline"),
    reason: str = typer.Option(..., help="the written reason (audit log)"),
    tier: int | None = typer.Option(None, help="borrowers: the tier granted (1..3)"),
    actor: str = typer.Option("compliance-officer", help="who decides"),
    as_json: bool = JSON_OPT,
) -> None:
    """Decide a referred application."""
    svc = _service()
    rec = svc.latest_for(str(user_id))
    out = svc.override(
        rec["application_id"], actor=actor, outcome=outcome, reason=reason, tier=tier
    )
    if as_json:
        emit_json(out)
        return
    typer.echo(_line(out))


@app.command()
@typed_errors
def population(as_json: bool = JSON_OPT) -> None:
    """Population stability (PSI) of new applications against the model's training data."""
    out = _service().population()
    if as_json:
        emit_json(out)
        return
    typer.echo(f"model {out['model_version']}: {out['n']} applications")
    if "score" in out:
        typer.echo(f"score PSI {out['score']['psi']} ({out['score']['status']})")
        for name, v in out["inputs"].items():
            typer.echo(f"  {name:24} PSI {v['psi']:.4f} ({v['status']})")
