"""`crowdlev market …`: price limits, data conversion and validation, replay."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from crowdleverage.cliutil import emit_json, typed_errors
from crowdleverage.domain.errors import DataFileError, RuleViolation
from crowdleverage.market import ca_cli

if TYPE_CHECKING:
    from rich.console import Console

    from crowdleverage.market.bars import Bar
    from crowdleverage.market.replay import DaySummary


# = market.convert.FORMATS (tests/test_cli_lazy.py checks): importing convert loads the calendar
FORMATS = ("tushare-qfq", "tushare-index", "netease", "tushare-hist")
app = typer.Typer(help="A-share market rules and data.", no_args_is_help=True)
app.command("corporate-actions")(ca_cli.corporate_actions)
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


@app.command()
@typed_errors
def limits(
    code: str,
    date: Annotated[str, typer.Option("--date", help="trading day YYYY-MM-DD")],
    prev_close: Annotated[str, typer.Option("--prev-close", help="previous close in 元")],
    st: Annotated[bool, typer.Option("--st", help="ST stock (±5% on the main board)")] = False,
    listing_day: Annotated[
        int | None, typer.Option(help="n-th trading day since listing (1 = first)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Limit-up and limit-down prices (fen) of CODE on a date."""
    from crowdleverage.domain.money import format_yuan, parse_price_fen
    from crowdleverage.domain.security import Security
    from crowdleverage.market.calendar import parse_date
    from crowdleverage.market.rules import price_band

    sec = Security.parse(code)
    day = parse_date(date)
    pc = parse_price_fen(prev_close)
    band = price_band(sec, day, pc, st=st, listing_day_index=listing_day)
    out = {
        "code": sec.code,
        "exchange": sec.exchange.value,
        "board": sec.board.value,
        "date": day.isoformat(),
        "st": st,
        "prev_close_fen": pc,
        "limit_bps": band.limit_bps,
        "limit_up_fen": band.limit_up_fen,
        "limit_down_fen": band.limit_down_fen,
    }
    if as_json:
        emit_json(out)
        return
    if band.limit_up_fen is None or band.limit_down_fen is None:
        typer.echo(f"{sec.symbol} {sec.board.value} {day}: no price limit")
        return
    typer.echo(
        f"{sec.symbol} {sec.board.value} {day}: limit-down {format_yuan(band.limit_down_fen)} "
        f"({band.limit_down_fen} fen)  limit-up {format_yuan(band.limit_up_fen)} "
        f"({band.limit_up_fen} fen)"
    )


@app.command("convert")
@typed_errors
def convert_cmd(
    fmt: Annotated[str, typer.Option("--format", help=f"one of: {', '.join(FORMATS)}")],
    sources: Annotated[list[Path], typer.Argument(help="source files")],
    out: Annotated[Path, typer.Option("--out", help="bar file to write")],
    date_from: Annotated[str | None, typer.Option("--from")] = None,
    date_to: Annotated[str | None, typer.Option("--to")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert published data files into the project's bar schema (all or nothing)."""
    from crowdleverage.market.bars import write_bars
    from crowdleverage.market.calendar import parse_date
    from crowdleverage.market.convert import convert

    start = parse_date(date_from) if date_from else None
    end = parse_date(date_to) if date_to else None
    bars, reports = [], []
    for src in sources:
        b, rep = convert(fmt, src, start, end)
        bars.extend(b)
        reports.append({"source": str(src), **rep.__dict__})
    n = write_bars(bars, out)
    result = {"out": str(out), "bars": n, "sources": reports}
    if as_json:
        emit_json(result)
    else:
        typer.echo(f"wrote {n} bars to {out}")


@app.command()
@typed_errors
def validate(
    path: Path,
    listings: Annotated[
        Path | None,
        typer.Option(help="CSV of code and listing_date (or tushare timeToMarket): IPO days"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check every bar against the schema and the market rules in force on its date (band
    by board and ST, halted bars flat, prev close continuity). Exit 6 on any violation."""
    from crowdleverage.market.validate import load_listings, validate_file

    res = validate_file(path, load_listings(listings) if listings else None)
    out = {
        "file": res.file,
        "bars": res.rows,
        "codes": res.codes,
        "first_day": res.first_day,
        "last_day": res.last_day,
        "violations": [v.__dict__ for v in res.violations],
    }
    if as_json:
        emit_json(out)
    else:
        span = f"{out['first_day']} … {out['last_day']}"
        typer.echo(f"{path}: {out['bars']} bars, {out['codes']} codes, {span}")
        for v in res.violations:
            typer.echo(str(v))
        typer.echo(f"{len(res.violations)} violation(s)")
    if res.violations:
        raise typer.Exit(code=RuleViolation.exit_code)


def _change(bps: int) -> str:
    colour = "red" if bps > 0 else "green" if bps < 0 else "white"  # A-share: red up, green down
    return f"[{colour}]{bps / 100:+.2f}%[/{colour}]"


def render_days(summaries: list[DaySummary], console: Console) -> None:
    from rich.table import Table

    index_codes = sorted({c for s in summaries for c in s.indices})
    table = Table(title="Trading days")
    table.add_column("date")
    for code in index_codes:
        table.add_column(code, justify="right")
    for col in ("stocks", "halted", "sealed ↓", "locked ↓", "sealed ↑"):
        table.add_column(col, justify="right")
    for s in summaries:
        idx = [
            f"{s.indices[c][0] / 100:,.2f} {_change(s.indices[c][1])}" if c in s.indices else "–"
            for c in index_codes
        ]
        table.add_row(
            s.date.isoformat(),
            *idx,
            str(s.stocks),
            str(s.halted),
            f"[green]{s.sealed_down}[/green]",
            str(s.locked_down),
            f"[red]{s.sealed_up}[/red]",
        )
    console.print(table)


def replay_summaries(
    data: Path, start: dt.date | None, end: dt.date | None, progress: bool
) -> list[DaySummary]:
    from rich.progress import Progress

    from crowdleverage.market.bars import read_bars
    from crowdleverage.market.replay import summarise, trading_days

    bars = read_bars(data)
    days = list(trading_days(bars, start, end))
    if not progress:
        return [summarise(d) for d in days]
    out = []
    with Progress(transient=True) as bar:
        task = bar.add_task("replaying", total=len(days))
        for d in days:
            out.append(summarise(d))
            bar.advance(task)
    return out


@app.command()
@typed_errors
def replay(
    data: Annotated[Path | None, typer.Option("--data", help="bar file")] = None,
    date_from: Annotated[str | None, typer.Option("--from")] = None,
    date_to: Annotated[str | None, typer.Option("--to")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Per trading day: index closes, stock count, and how many closed sealed at the limits."""
    from rich.console import Console

    from crowdleverage.config import load_settings
    from crowdleverage.market.calendar import parse_date

    path = data or load_settings().market_data
    start = parse_date(date_from) if date_from else None
    end = parse_date(date_to) if date_to else None
    summaries = replay_summaries(path, start, end, progress=not as_json)
    if as_json:
        emit_json([s.as_dict() for s in summaries])
    else:
        render_days(summaries, Console(width=max(Console().width, 120)))


@app.command()
@typed_errors
def merge(
    sources: Annotated[list[Path], typer.Argument(help="bar files in the project's schema")],
    out: Annotated[Path, typer.Option("--out", help="bar file to write")],
    as_json: JsonOpt = False,
) -> None:
    """Merge bar files into one (each validated; a (code, date) present twice is an error)."""
    from crowdleverage.market.bars import read_bars, write_bars

    merged: list[Bar] = []
    seen: dict[tuple[str, dt.date], int] = {}
    for i, src in enumerate(sources):
        for bar in read_bars(src):  # each file validated whole first
            first = seen.setdefault((bar.code, bar.date), i)
            if first != i:
                raise DataFileError(
                    str(src), None, f"{bar.code} on {bar.date} is also in {sources[first]}"
                )
            merged.append(bar)
    n = write_bars(merged, out)
    if as_json:
        emit_json({"out": str(out), "bars": n})
    else:
        typer.echo(f"wrote {n} bars to {out}")
