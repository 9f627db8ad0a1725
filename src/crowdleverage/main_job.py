"""`crowdlev run`: the main job that `make run` starts.

Replays the shipped January 2016 circuit-breaker week through the whole platform on the
embedded default: the market summary first (index moves, stocks sealed at the limits), then
the crash replay — investors fund both tranches, borrowers in the three tiers trade with
leverage, and the exchange, oracle reporters, risk monitor, keeper, broker, margin engine,
tranche pool and insurance fund run day by day, with the design's invariants checked at the
end. A progress bar shows the setup and each replayed day; the tables fit in 100 columns
(`crowdlev replay` prints every column). The web service with the dashboards is
`crowdlev serve --demo`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

import typer

from crowdleverage.cliutil import typed_errors

if TYPE_CHECKING:
    from rich.console import Console

    from crowdleverage.risk.replay import ReplayConfig, ReplayReport

app = typer.Typer()

WEEK = (dt.date(2016, 1, 4), dt.date(2016, 1, 8))
WIDTH = 100  # the tables of `crowdlev run` fit in this many columns


@app.command()
@typed_errors
def run(
    date_from: Annotated[str, typer.Option("--from", help="first day")] = WEEK[0].isoformat(),
    date_to: Annotated[str, typer.Option("--to", help="last day")] = WEEK[1].isoformat(),
) -> None:
    """Replay the January 2016 circuit-breaker week through the whole platform."""
    from rich.console import Console

    from crowdleverage.config import load_settings
    from crowdleverage.market.calendar import parse_date
    from crowdleverage.market.cli import render_days, replay_summaries
    from crowdleverage.risk.replay import ReplayConfig

    settings = load_settings()
    start, end = parse_date(date_from), parse_date(date_to)
    console = Console(width=min(Console().width, WIDTH))
    console.print(
        f"[bold]CrowdLeverage[/bold] — replay {start} … {end} (the January 2016 "
        f"circuit-breaker week by default) from {settings.market_data}"
    )
    render_days(replay_summaries(settings.market_data, start, end, progress=True), console)
    console.print("Replaying the week through the platform (contracts on the embedded EVM)…")
    cfg = ReplayConfig(data=settings.market_data, start=start, end=end, seed=settings.seed)
    report = replay_with_progress(cfg, console)
    render_run(report, console)
    if not all(report.invariants.values()):
        raise typer.Exit(code=10)
    console.print("Web service and dashboards: [bold]crowdlev serve --demo[/bold]")


def replay_with_progress(cfg: ReplayConfig, console: Console) -> ReplayReport:
    """`run_replay` with a progress bar: the setup (funding, deployment, portfolios), then one
    step per replayed day (transient: gone when done)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from crowdleverage.risk.replay import Replay

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("setting up: funding the pool, deploying contracts", total=None)
        replay = Replay(cfg)
        try:
            bar.update(task, total=len(replay.days) + 1)
            replay.start()
            bar.advance(task)
            days = []
            for d in replay.days:
                bar.update(task, description=f"replaying {d.date}")
                days.append(replay.run_day(d))
                bar.advance(task)
            bar.update(task, description="checking invariants")
            return replay.finish(days)
        finally:
            replay.close()


def _pct(bps: int | None) -> str:
    return "—" if bps is None else f"{bps / 100:.0f}%"


def _count(d: dict[str, Any]) -> str:
    """{'a': 2, 'b': 1} → 'a 2, b 1' ('none' when empty)."""
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d.items() if v) or "none"


def render_run(report: ReplayReport, console: Console) -> None:
    """The replay for a person, in at most 100 columns: per day, per tier, per tranche, then
    the loss by layer, the oracle and keeper in words, and the invariants."""
    from rich.table import Table

    from crowdleverage.domain.money import format_cn
    from crowdleverage.risk.replay import BOOKED

    t = Table(
        title=f"Replay day by day ({len(report.borrowers)} borrowers, set up {report.setup_day})",
        caption="ratio: 维持担保比例 percentiles across accounts; liq.: accounts entering / "
        "finishing liquidation; loss booked on chain beyond the borrower's margin (reserve, "
        "penalty, insurance, tranches)",
    )
    for col in ("day", "regime", "ratio p1", "p50", "warn", "top-up", "liq.", "fills",
                "behind seals", "loss booked"):  # fmt: skip
        t.add_column(col, justify="right")
    for d in report.days:
        t.add_row(
            d.date[5:], d.regime, _pct(d.ratio_p01_bps), _pct(d.ratio_p50_bps), str(d.warnings),
            str(d.top_ups), f"{d.liquidations_started}/{d.liquidations_completed}",
            str(d.liquidation_fills), f"{d.orders_waiting_behind_seals} ord.",
            format_cn(sum(d.losses_fen.get(k, 0) for k in BOOKED)),
        )  # fmt: skip
    console.print(t)
    t = Table(title="Borrowers per tier: loss in % of deposits, beside an umbrella trust")
    for col in ("tier", "borrowers", "deposits (median)", "loss median", "p90", "worst",
                "umbrella median", "umbrella p90"):  # fmt: skip
        t.add_column(col, justify="right")
    for tier, r in sorted(report.tiers.items()):
        t.add_row(
            str(tier), str(r["borrowers"]), format_cn(round(r["deposits_yuan_median"] * 100)),
            f"{r['loss_pct_median']:.1f}%", f"{r['loss_pct_p90']:.1f}%",
            f"{r['loss_pct_worst']:.1f}%", f"{r['umbrella_loss_pct_median']:.1f}%",
            f"{r['umbrella_loss_pct_p90']:.1f}%",
        )  # fmt: skip
    console.print(t)
    t = Table(title="Tranches over the window")
    for col in ("tranche", "invested", "NAV", "accrued", "return", "annualised"):
        t.add_column(col, justify="right")
    for r in report.tranches:
        t.add_row(
            r["tranche"], format_cn(r["invested_fen"]), format_cn(r["nav_fen"]),
            format_cn(r["accrued_fen"]), f"{r['return_with_accrued_pct']:+.3f}%",
            f"{r['annualised_with_accrued_pct']:+.2f}%",
        )  # fmt: skip
    console.print(t)
    a = report.accounting
    layers = ", ".join(f"{k.replace('_', ' ')} {format_cn(v)}" for k, v in a["layers_fen"].items())
    console.print(
        f"Loss {format_cn(a['total_loss_fen'])} by layer: {layers} "
        f"({'sums to the total' if a['attribution_ok'] else 'DOES NOT sum to the total'}).",
        f"Open liquidations at the end: {a['open_liquidations']}, unsellable "
        f"{format_cn(a['unsellable_fen'])}.",
    )
    console.print(
        f"senior NAV {format_cn(report.senior_nav_fen)} · junior NAV "
        f"{format_cn(report.junior_nav_fen)} · insurance fund {format_cn(report.insurance_fen)}"
        f" · {report.fills:,} fills"
    )
    o = report.oracle
    console.print(
        f"Oracle: {o.get('reports_landed', 0):,} price reports landed, "
        f"{o.get('batches_refused', 0)} batches refused (reasons: {_count(o.get('reasons', {}))});"
        f" third reporter {o.get('reporter3', '?')}."
    )
    k = report.keeper
    console.print(f"Keeper calls: {_count(k.get('calls', {}))}; deferred {k.get('deferred', 0)}.")
    console.print("Invariants:")
    for name, ok in report.invariants.items():
        console.print(f"  {'✓' if ok else '✗'} {name.replace('_', ' ')}")
    for v in report.violations:
        console.print(f"  [red]violation[/red] {v}")
