"""`crowdlev replay`: the crash replay through the whole platform (exchange, oracle, monitor,
keeper, broker, margin engine, tranche pool, insurance fund)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from crowdleverage.cliutil import emit_json, typed_errors
from crowdleverage.domain.errors import InvalidInput

if TYPE_CHECKING:
    from rich.console import Console

    from crowdleverage.risk.replay import ReplayReport


app = typer.Typer()


def _pct(bps: int | None) -> str:
    return "—" if bps is None else f"{bps / 100:.1f}%"


def render_accounting(report: ReplayReport, console: Console) -> None:
    """Per tier beside the umbrella trust, per tranche, and the loss attribution."""
    from rich.table import Table

    from crowdleverage.domain.money import format_cn

    b = report.book
    console.print(
        f"book: senior {format_cn(b['senior_fen'])}, junior {format_cn(b['junior_fen'])}, "
        f"insurance seed {format_cn(b['insurance_seed_fen'])}; lent after setup "
        f"{format_cn(b['debt_after_setup_fen'])} = {b['utilisation_after_setup_bps'] / 100:.1f}%"
        f" of the pool (target {b['target_utilisation_bps'] / 100:.0f}%); borrowers "
        f"{b['borrowers_per_tier']}, {b['stocks']} stocks"
    )
    t = Table(title="Borrowers per tier (loss % of deposits) beside an umbrella trust")
    for col in ("tier", "n", "deposits median", "equity median", "loss median", "loss p90",
                "loss worst", "reserve used p90", "umbrella lev.", "umbrella median",
                "umbrella p90", "umbrella stopped", "umbrella at tier max"):  # fmt: skip
        t.add_column(col, justify="right")
    for tier, r in sorted(report.tiers.items()):
        t.add_row(
            str(tier), str(r["borrowers"]), f"{r['deposits_yuan_median']:,.0f}",
            f"{r['equity_yuan_median']:,.0f}", f"{r['loss_pct_median']:.1f}%",
            f"{r['loss_pct_p90']:.1f}%", f"{r['loss_pct_worst']:.1f}%",
            f"{r['reserve_used_yuan_p90']:,.0f}", f"{r['umbrella_leverage_median']:.2f}",
            f"{r['umbrella_loss_pct_median']:.1f}%", f"{r['umbrella_loss_pct_p90']:.1f}%",
            str(r["umbrella_stopped"]),
            f"{r['umbrella_tier_max_loss_pct_median']:.1f}% (1:{r['umbrella_tier_max_leverage']})",
        )  # fmt: skip
    console.print(t)
    t = Table(title="Tranches over the window")
    for col in ("tranche", "invested", "NAV", "accrued interest", "return booked",
                "with accrued", "annualised"):  # fmt: skip
        t.add_column(col, justify="right")
    for r in report.tranches:
        t.add_row(
            r["tranche"], format_cn(r["invested_fen"]), format_cn(r["nav_fen"]),
            format_cn(r["accrued_fen"]), f"{r['return_booked_pct']:+.3f}%",
            f"{r['return_with_accrued_pct']:+.3f}%", f"{r['annualised_with_accrued_pct']:+.2f}%",
        )  # fmt: skip
    console.print(t)
    a = report.accounting
    layers = " · ".join(f"{k} {format_cn(v)}" for k, v in a["layers_fen"].items())
    console.print(
        f"loss {format_cn(a['total_loss_fen'])} by layer: {layers} "
        f"({'sums to the total' if a['attribution_ok'] else 'DOES NOT sum to the total'}; "
        f"provisional {format_cn(a['provisional_fen'])}); open liquidations "
        f"{a['open_liquidations']}, unsellable at the end {format_cn(a['unsellable_fen'])}"
    )
    reg = report.regime["history"]
    console.print(
        "regime: "
        + " ".join(f"{h['date'][5:]}:{h['regime'][0].upper()}" for h in reg)
        + f" · liquidity: {report.liquidity['over_cap']} of {len(report.liquidity['codes'])}"
        f" stocks over {report.liquidity['cap_bps'] / 100:.0f}% of 20-day volume"
    )


def render(report: ReplayReport, console: Console) -> None:
    from rich.table import Table

    from crowdleverage.domain.money import format_cn
    from crowdleverage.risk.replay import BOOKED

    table = Table(title=f"Replay (setup {report.setup_day}, {len(report.borrowers)} borrowers)")
    short = {"borrower_margin": "margin", "borrower_reserve": "reserve", "insurance": "insur."}
    for col in ("day", "regime", "p1", "p5", "p50", "warn", "top-up", "liq start", "rounds",
                "liq done", "liq fills", "sealed ord/sh",
                *(short.get(k, k) for k in BOOKED)):  # fmt: skip
        table.add_column(col, justify="right")
    for d in report.days:
        table.add_row(
            d.date, d.regime, _pct(d.ratio_p01_bps), _pct(d.ratio_p05_bps), _pct(d.ratio_p50_bps),
            str(d.warnings), str(d.top_ups), str(d.liquidations_started),
            str(d.liquidation_rounds), str(d.liquidations_completed), str(d.liquidation_fills),
            f"{d.orders_waiting_behind_seals}/{d.shares_waiting_behind_seals:,}",
            *(format_cn(d.losses_fen.get(k, 0)) for k in BOOKED),
        )  # fmt: skip
    console.print(table)
    render_accounting(report, console)
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
    book_file: Annotated[Path | None, typer.Option("--book", help="book file (TOML)")] = None,
    borrowers_per_tier: Annotated[
        int | None, typer.Option(help="borrowers in each tier (default: the book's)")
    ] = None,
    stocks: Annotated[int | None, typer.Option(help="stocks (default: the book's)")] = None,
    utilisation: Annotated[
        int | None, typer.Option(help="target utilisation % (default: the book's)")
    ] = None,
    pool: Annotated[int | None, typer.Option(help="pool size in 元 (default: the book's)")] = None,
    work_dir: Annotated[
        Path | None, typer.Option("--work-dir", help="keep journals here (default: temporary)")
    ] = None,
    ticks_per_day: Annotated[int, typer.Option(help="intraday ticks per day")] = 8,
    faulty_reporter: Annotated[
        str, typer.Option(help="third reporter: honest, stale, outlier or manipulated")
    ] = "honest",
    actions: Annotated[
        Path | None, typer.Option("--actions", help="corporate actions (unadjusted data only)")
    ] = None,
    rpc_url: Annotated[
        str | None,
        typer.Option(
            "--rpc-url",
            help="run on this JSON-RPC dev node (a fresh local one such as anvil, e.g."
            " http://127.0.0.1:8545) instead of the embedded chain; refused if the node's clock"
            " is past the replay's start (start it with `anvil --timestamp <before the start>`)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Replay a period through the whole platform; report per day and check invariants."""
    from rich.console import Console

    from crowdleverage.config import load_settings
    from crowdleverage.market.calendar import parse_date
    from crowdleverage.oracle.feeder import ReporterMode
    from crowdleverage.risk.book import Book, load_book
    from crowdleverage.risk.replay import ReplayConfig, run_replay

    settings = load_settings()
    if (borrowers_per_tier is not None and borrowers_per_tier < 1) or ticks_per_day < 4:
        raise InvalidInput("need ≥1 borrower per tier and ≥4 ticks per day")
    if stocks is not None and stocks < 3:
        raise InvalidInput("need ≥3 stocks")
    book = (load_book(book_file) if book_file else Book()).with_options(
        borrowers_per_tier=borrowers_per_tier, utilisation_pct=utilisation, pool_yuan=pool,
        stocks=stocks,
    )  # fmt: skip
    try:
        mode = ReporterMode(faulty_reporter)
    except ValueError:
        raise InvalidInput(f"unknown reporter behaviour {faulty_reporter!r}") from None
    if rpc_url is not None:
        url = urlsplit(rpc_url)
        if url.scheme != "http" or not url.hostname:
            raise InvalidInput(f"--rpc-url needs an http://host:port URL, not {rpc_url!r}")
    cfg = ReplayConfig(
        data=data or settings.market_data,
        start=parse_date(date_from),
        end=parse_date(date_to),
        seed=settings.seed if seed is None else seed,
        book=book,
        ticks_per_day=ticks_per_day,
        work_dir=work_dir,
        faulty_reporter=mode,
        actions=actions,
        rpc_url=rpc_url,
    )
    report = run_replay(cfg)
    if as_json:
        emit_json(report.as_dict())
    else:
        render(report, Console(width=max(Console().width, 200)))
    if not all(report.invariants.values()):
        raise typer.Exit(code=10)
