"""`crowdlev run`: the main job that `make run` starts.

Replays the shipped January 2016 circuit-breaker week through the whole platform on the
embedded default: the market summary first (index moves, stocks sealed at the limits), then
the crash replay — investors fund both tranches, borrowers in the three tiers trade with
leverage, and the exchange, oracle reporters, risk monitor, keeper, broker, margin engine,
tranche pool and insurance fund run day by day, with the design's invariants checked at the
end. The web service with the dashboards is `crowdlev serve --demo`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console

from crowdleverage.cliutil import typed_errors
from crowdleverage.config import load_settings
from crowdleverage.market.calendar import parse_date
from crowdleverage.market.cli import render_days, replay_summaries

app = typer.Typer()

WEEK = (dt.date(2016, 1, 4), dt.date(2016, 1, 8))


@app.command()
@typed_errors
def run(
    date_from: Annotated[str, typer.Option("--from", help="first day")] = WEEK[0].isoformat(),
    date_to: Annotated[str, typer.Option("--to", help="last day")] = WEEK[1].isoformat(),
) -> None:
    """Replay the January 2016 circuit-breaker week through the whole platform."""
    from crowdleverage.risk.cli import render
    from crowdleverage.risk.replay import ReplayConfig, run_replay

    settings = load_settings()
    start, end = parse_date(date_from), parse_date(date_to)
    console = Console(width=max(Console().width, 200))
    console.print(
        f"[bold]CrowdLeverage[/bold] — replay {start} … {end} (the January 2016 "
        f"circuit-breaker week by default) from {settings.market_data}"
    )
    render_days(replay_summaries(settings.market_data, start, end, progress=True), console)
    console.print("Replaying the week through the platform (contracts on the embedded EVM)…")
    report = run_replay(
        ReplayConfig(data=settings.market_data, start=start, end=end, seed=settings.seed)
    )
    render(report, console)
    if not all(report.invariants.values()):
        raise typer.Exit(code=10)
    console.print("Web service and dashboards: [bold]crowdlev serve --demo[/bold]")
