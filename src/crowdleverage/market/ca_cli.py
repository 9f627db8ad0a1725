"""`crowdlev market corporate-actions`: validate a corporate-action file, check it against a bar
file, or propose actions from a bar file's previous closes.

Exit codes (typed errors, cliutil): 0 done; 2 a malformed file (file:line: reason) or bad
arguments; 6 `--data` given and an action disagrees with the bars (the bar's previous close on
the ex-date is neither the previous close nor the action's reference price).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from crowdleverage.cliutil import emit_json, typed_errors
from crowdleverage.domain.errors import InvalidInput, RuleViolation

if TYPE_CHECKING:
    from rich.console import Console

    from crowdleverage.market.corporate_actions import (
        CorporateAction,
        Proposal,
        ReferenceCheck,
    )


# = config.SHIPPED_DATA / … (importing config loads pydantic-settings: slower --help)
DEFAULT_ACTIONS = Path(__file__).resolve().parents[3] / "data" / "market" / "corporate_actions.csv"


def _render_proposals(proposals: list[Proposal], console: Console) -> None:
    from rich.table import Table

    table = Table(title="Candidate ex-dates (previous close ≠ previous bar's close)")
    for col in ("code", "ex-date", "prev close", "reference", "factor", "change", "kind", "known"):
        table.add_column(col, justify="right" if col not in ("code", "kind") else "left")
    table.add_column("note")
    for p in proposals:
        table.add_row(
            p.code, p.ex_date.isoformat(), f"{p.prev_close_fen / 100:.2f}",
            f"{p.reference_fen / 100:.2f}", f"{p.factor:.4f}", f"{p.change_bps / 100:+.2f}%",
            p.kind, "yes" if p.known else "", p.note,
        )  # fmt: skip
    console.print(table)


def _render_actions(
    actions: list[CorporateAction], checks: dict[tuple[str, dt.date], ReferenceCheck] | None,
    console: Console,
) -> None:  # fmt: skip
    from rich.table import Table

    table = Table(title="Corporate actions")
    cols = ("code", "ex-date", "record", "pay", "送/10", "转/10", "元/10 (pre-tax)")
    for col in cols:
        table.add_column(col)
    if checks is not None:
        table.add_column("reference (fen)", justify="right")
        table.add_column("vs bars")
    table.add_column("source")
    for a in actions:
        r = a.row()
        extra: list[str] = []
        if checks is not None:
            c = checks[a.key]
            extra = [str(c.reference_fen or "–"), c.status]
        table.add_row(*r[:7], *extra, a.source.split(":", 1)[0])
    console.print(table)


@typed_errors
def corporate_actions(
    actions_file: Annotated[
        Path | None, typer.Argument(help="corporate-action file (default: the shipped one)")
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="bar file")] = None,
    infer: Annotated[
        bool, typer.Option("--infer", help="propose actions from the bar file's previous closes")
    ] = False,
    min_bps: Annotated[
        int, typer.Option("--min-bps", help="--infer: ignore differences below this (bps)")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Validate corporate actions (and check them against --data), or with --infer propose
    them where a bar's previous close differs from the previous day's close."""
    from rich.console import Console

    from crowdleverage.market.bars import read_bars
    from crowdleverage.market.corporate_actions import check_references, infer_actions, read_actions

    console = Console(width=max(Console().width, 140))
    if infer:
        if data is None:
            raise InvalidInput("--infer needs --data BARS")
        known = read_actions(actions_file) if actions_file is not None else []
        proposals = infer_actions(read_bars(data), known, min_bps)
        if as_json:
            emit_json([p.as_dict() for p in proposals])
        else:
            _render_proposals(proposals, console)
            typer.echo(f"{len(proposals)} candidate(s); review each against the notice")
        return
    if min_bps:
        raise InvalidInput("--min-bps applies to --infer only")
    actions = read_actions(actions_file or DEFAULT_ACTIONS)
    checks = None
    if data is not None:
        checks = {c.action.key: c for c in check_references(read_bars(data), actions)}
    if as_json:
        emit_json(
            {
                "actions": [a.as_dict() for a in actions],
                "checks": [c.as_dict() for c in checks.values()] if checks else None,
            }
        )
    else:
        _render_actions(actions, checks, console)
    bad = [c for c in (checks or {}).values() if c.status == "differs"]
    if bad:
        raise RuleViolation(
            f"{len(bad)} action(s) disagree with the bars: "
            + ", ".join(f"{c.action.code} {c.action.ex_date}" for c in bad)
        )
