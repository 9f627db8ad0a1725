"""`crowdlev strategy …`: backtests of the institutional strategy accounts.

The strategy modules (statsmodels, pandas) are imported when a command runs, not when
`crowdlev` starts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from crowdleverage.cliutil import emit_json, typed_errors

if TYPE_CHECKING:
    from rich.console import Console


STRATEGY_NAMES = ("basis", "ah", "etf")  # = config.STRATEGIES (a test checks)
DATA_DIR = Path(__file__).resolve().parents[3] / "data" / "strategies"

app = typer.Typer(help="Institutional strategy accounts: backtests.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def render(table: dict[str, Any], console: Console) -> None:
    from rich.table import Table

    from crowdleverage.domain.money import format_yuan

    t = Table(title=f"{table['strategy']}  {table['from']} → {table['to']}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for k, v in table.items():
        if k in ("strategy", "losses_fen"):
            continue
        shown = format_yuan(v) + " 元" if k.endswith("_fen") and isinstance(v, int) else str(v)
        t.add_row(k.removesuffix("_fen"), shown)
    for layer, fen in table["losses_fen"].items():
        t.add_row(f"loss: {layer}", format_yuan(fen) + " 元")
    console.print(t)


@app.command()
@typed_errors
def backtest(
    name: Annotated[str, typer.Argument(help=f"one of: {', '.join(STRATEGY_NAMES)}")],
    config: Annotated[Path | None, typer.Option("--config", help="TOML file")] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="YYYY-MM-DD")] = None,
    data: Annotated[Path, typer.Option("--data", help="strategy data folder")] = DATA_DIR,
    plot: Annotated[Path | None, typer.Option("--plot", help="write an HTML plot")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Backtest strategy NAME under the platform's rules and print its table."""
    from rich.console import Console

    from crowdleverage.market.calendar import parse_date
    from crowdleverage.strategies.backtest import run
    from crowdleverage.strategies.config import load_setup
    from crowdleverage.strategies.data import load_market

    start = parse_date(date_from) if date_from else None
    end = parse_date(date_to) if date_to else None
    setup = load_setup(name, config)
    market = load_market(data)
    result = run(
        setup.frame(market),
        setup.account,
        brake=setup.brake(),
        date_from=start,
        date_to=end,
        options=setup.options(market),
    )
    table = result.table()
    if plot is not None:
        from crowdleverage.strategies.report import write_html

        table["plot"] = str(write_html(result, plot))
    if as_json:
        emit_json(table)
    else:
        render(table, Console())
