"""`crowdlev run`: the main job that `make run` starts.

For now: replay the shipped January 2016 circuit-breaker week and print the daily table.
Later parts replace this with the full platform.
"""

from __future__ import annotations

import datetime as dt

import typer
from rich.console import Console

from crowdleverage.cliutil import typed_errors
from crowdleverage.config import load_settings
from crowdleverage.market.cli import render_days, replay_summaries

app = typer.Typer()

WEEK = (dt.date(2016, 1, 4), dt.date(2016, 1, 8))


@app.command()
@typed_errors
def run() -> None:
    """Run the platform's main job (today: the January 2016 circuit-breaker week replay)."""
    settings = load_settings()
    console = Console(width=max(Console().width, 120))
    console.print(
        "[bold]CrowdLeverage[/bold] — replaying the January 2016 circuit-breaker week "
        f"from {settings.market_data}"
    )
    render_days(replay_summaries(settings.market_data, *WEEK, progress=True), console)
