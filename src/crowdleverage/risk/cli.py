"""`crowdlev replay`: the crash replay through the whole platform (exchange, oracle, monitor,
keeper, broker, margin engine, tranche pool, insurance fund)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from crowdleverage.cliutil import emit_json, typed_errors
from crowdleverage.config import load_settings
from crowdleverage.domain.errors import InvalidInput
from crowdleverage.domain.money import format_cn
from crowdleverage.market.calendar import parse_date
from crowdleverage.oracle.feeder import ReporterMode
from crowdleverage.risk.replay import LAYERS, ReplayConfig, ReplayReport, run_replay

app = typer.Typer()


def _pct(bps: int | None) -> str:
    return "—" if bps is None else f"{bps / 100:.1f}%"


def render(report: ReplayReport, console: Console) -> None:
    table = Table(title=f"Replay (setup {report.setup_day}, {len(report.borrowers)} borrowers)")
    short = {"borrower_margin": "margin", "borrower_reserve": "reserve", "insurance": "insur."}
    for col in ("day", "p1", "p5", "p50", "warn", "top-up", "liq start", "rounds", "liq done",
                "liq fills", "sealed ord/sh", *(short.get(k, k) for k in LAYERS)):  # fmt: skip
        table.add_column(col, justify="right")
    for d in report.days:
        table.add_row(
            d.date, _pct(d.ratio_p01_bps), _pct(d.ratio_p05_bps), _pct(d.ratio_p50_bps),
            str(d.warnings), str(d.top_ups), str(d.liquidations_started),
            str(d.liquidation_rounds), str(d.liquidations_completed), str(d.liquidation_fills),
            f"{d.orders_waiting_behind_seals}/{d.shares_waiting_behind_seals:,}",
            *(format_cn(d.losses_fen.get(k, 0)) for k in LAYERS),
        )  # fmt: skip
    console.print(table)
    console.print(
        f"senior NAV {format_cn(report.senior_nav_fen)} · junior NAV "
        f"{format_cn(report.junior_nav_fen)} · insurance fund {format_cn(report.insurance_fen)}"
        f" · fills {report.fills} · keeper {report.keeper['calls']}"
    )
    console.print(f"oracle: {report.oracle}")
    for name, ok in report.invariants.items():
        console.print(f"  {'✓' if ok else '✗'} {name}")
    for v in report.violations:
        console.print(f"  [red]violation[/red] {v}")


@app.command("replay")
@typed_errors
def replay_cmd(
    data: Annotated[Path | None, typer.Option("--data", help="bar file (project schema)")] = None,
    date_from: Annotated[str, typer.Option("--from", help="first day YYYY-MM-DD")] = "2016-01-04",
    date_to: Annotated[str, typer.Option("--to", help="last day YYYY-MM-DD")] = "2016-01-08",
    seed: Annotated[int | None, typer.Option(help="random seed (default: settings.seed)")] = None,
    borrowers_per_tier: Annotated[int, typer.Option(help="borrowers in each tier")] = 6,
    stocks: Annotated[int, typer.Option(help="stocks drawn from the data")] = 24,
    ticks_per_day: Annotated[int, typer.Option(help="intraday ticks per day")] = 8,
    faulty_reporter: Annotated[
        str, typer.Option(help="third reporter: honest, stale, outlier or manipulated")
    ] = "honest",
    actions: Annotated[
        Path | None, typer.Option("--actions", help="corporate actions (unadjusted data only)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Replay a period through the whole platform; report per day and check invariants."""
    settings = load_settings()
    if borrowers_per_tier < 1 or stocks < 3 or ticks_per_day < 4:
        raise InvalidInput("need ≥1 borrower per tier, ≥3 stocks and ≥4 ticks per day")
    try:
        mode = ReporterMode(faulty_reporter)
    except ValueError:
        raise InvalidInput(f"unknown reporter behaviour {faulty_reporter!r}") from None
    cfg = ReplayConfig(
        data=data or settings.market_data,
        start=parse_date(date_from),
        end=parse_date(date_to),
        seed=settings.seed if seed is None else seed,
        borrowers_per_tier=borrowers_per_tier,
        stocks=stocks,
        ticks_per_day=ticks_per_day,
        faulty_reporter=mode,
        actions=actions,
    )
    report = run_replay(cfg)
    if as_json:
        emit_json(report.as_dict())
    else:
        render(report, Console(width=max(Console().width, 200)))
    if not all(report.invariants.values()):
        raise typer.Exit(code=10)
