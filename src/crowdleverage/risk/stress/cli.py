"""`crowdlev stress run|report|calibrate`: stress tests of the margin policy (DESIGN §11)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from crowdleverage.cliutil import emit_json, typed_errors
from crowdleverage.domain.errors import InvalidInput

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from crowdleverage.risk.stress.policy import MarginPolicy


# the engine, the data and the report are imported inside the commands: `crowdlev` starts fast
SCENARIO_NAMES = "cb2016, crash2015, deval2015, gfc2008, covid2020, mc60"

app = typer.Typer(help="Stress tests: historical scenarios, Monte Carlo, calibration, reports.")


def render(result: dict[str, Any], console: Console) -> None:
    from rich.table import Table

    from crowdleverage.risk.stress.report import HEADER, scenario_rows

    table = Table(title=f"Stress {result['suite']} {result['date']} ({result['params_hash']})")
    for h in HEADER:
        table.add_column(h, justify="right")
    for row in scenario_rows(result):
        table.add_row(*row)
    console.print(table)
    for name, t in result["targets"].items():
        mark = "✓" if t["ok"] else "✗"
        console.print(f"  {mark} {name}: {t['value']} (limit {t['limit']})")


def progress_bar(console: Console) -> tuple[Progress, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    prog = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = prog.add_task("chunks", total=None)

    def on_chunk(done: int, total: int) -> None:
        prog.update(task, completed=done, total=total)

    return prog, on_chunk


def _policy(params: Path | None) -> MarginPolicy:
    from crowdleverage.risk.stress.policy import MarginPolicy, load_params_toml

    return load_params_toml(params) if params is not None else MarginPolicy()


@app.command("run")
@typed_errors
def run_cmd(
    suite: Annotated[str, typer.Option(help="full (every scenario) or reduced (end of day)")] = (
        "full"
    ),
    scenario: Annotated[
        list[str] | None, typer.Option(help=f"scenario(s), default all: {SCENARIO_NAMES}")
    ] = None,
    paths: Annotated[int, typer.Option(help="paths per scenario")] = 1_000,
    accounts: Annotated[int, typer.Option(help="accounts in the book")] = 1_000,
    utilisation_bps: Annotated[int, typer.Option(help="share of the pool lent")] = 7_000,
    seed: Annotated[int | None, typer.Option(help="seed (default: settings.seed)")] = None,
    workers: Annotated[int, typer.Option(help="local Dask workers (0: in this process)")] = 2,
    scheduler: Annotated[str | None, typer.Option(help="address of a Dask scheduler")] = None,
    chunk_paths: Annotated[int, typer.Option(help="paths per Dask task")] = 100,
    params: Annotated[Path | None, typer.Option(help="parameter TOML (platform format)")] = None,
    as_of: Annotated[str | None, typer.Option(help="date of the run (bands), YYYY-MM-DD")] = None,
    store: Annotated[bool, typer.Option(help="store the result under the data dir")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    strategies: Annotated[
        Path | None,
        typer.Option(help="TOML of institutional strategy books ([[book]]) to add (default none)"),
    ] = None,
    strategy_shock: Annotated[
        str | None,
        typer.Option(
            help="strategy shock: basis_blowout, ah_premium_jump, etf_discount, "
            "rule_change_2015_09 (default: the TOML's, else basis_blowout)"
        ),
    ] = None,
) -> None:
    """Run the stress suite and store the result (JSON under <data_dir>/stress/)."""
    from rich.console import Console

    from crowdleverage.config import load_settings
    from crowdleverage.market.calendar import parse_date
    from crowdleverage.risk.stress.policy import Book
    from crowdleverage.risk.stress.scenarios import SCENARIOS, RunOptions
    from crowdleverage.risk.stress.suite import REDUCED, REDUCED_BOOK, run_suite, store_result

    settings = load_settings()
    if paths < 1 or chunk_paths < 1 or workers < 0:
        raise InvalidInput("paths and chunk-paths must be ≥ 1, workers ≥ 0")
    if suite not in ("full", "reduced"):
        raise InvalidInput("suite must be full or reduced")
    names = scenario or (list(REDUCED) if suite == "reduced" else list(SCENARIOS))
    book = (
        REDUCED_BOOK
        if suite == "reduced" and accounts == 1_000
        else Book(accounts=accounts, utilisation_bps=utilisation_bps)
    )
    strat = None
    if strategies is not None:
        import dataclasses

        from crowdleverage.risk.stress.strategy import load_strategy_toml

        strat = load_strategy_toml(strategies)
        if strategy_shock is not None:
            strat = dataclasses.replace(strat, shock=strategy_shock)
    elif strategy_shock is not None:
        raise InvalidInput("--strategy-shock needs --strategies FILE")
    opt = RunOptions(
        strategies=strat,
        paths=paths,
        seed=settings.seed if seed is None else seed,
        chunk_paths=chunk_paths,
        workers=workers,
        scheduler=scheduler,
        as_of=parse_date(as_of) if as_of else dt.date.today(),
    )
    console = Console(stderr=True)
    prog, on_chunk = progress_bar(console)
    with prog:
        result = run_suite(suite, names, _policy(params), book, opt, on_chunk)
    if store:
        result["stored_at"] = str(store_result(result, settings.ensure_data_dir()))
    if as_json:
        emit_json(result)
    else:
        render(result, Console(width=max(Console().width, 160)))
        if store:
            Console().print(f"stored {result['stored_at']}")


@app.command("report")
@typed_errors
def report_cmd(
    result_file: Annotated[
        Path | None, typer.Option("--result", help="a stored result (default: the latest)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="folder for the HTML and PDF")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Write an HTML report with charts and a PDF of a stored stress result."""
    from rich.console import Console

    from crowdleverage.config import load_settings
    from crowdleverage.risk.stress.report import write_html, write_pdf
    from crowdleverage.risk.stress.suite import latest_result

    settings = load_settings()
    if result_file is not None:
        try:
            result = json.loads(result_file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InvalidInput(f"result file {result_file} not found") from exc
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"result file {result_file} is not JSON: {exc}") from exc
    else:
        result = latest_result(settings.data_dir)
    folder = out or settings.data_dir / "stress" / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"stress-{result['date']}-{result['suite']}-{result['params_hash']}"
    h = write_html(result, folder / f"{stem}.html")
    p = write_pdf(result, folder / f"{stem}.pdf")
    if as_json:
        emit_json({"html": str(h), "pdf": str(p)})
    else:
        Console().print(f"wrote {h}\nwrote {p}")


@app.command("calibrate")
@typed_errors
def calibrate_cmd(
    out: Annotated[Path, typer.Option(help="where to write the chosen parameter TOML")] = Path(
        "stress-params.toml"
    ),
    candidates: Annotated[int, typer.Option(help="parameter sets tried per utilisation")] = 24,
    paths_hist: Annotated[int, typer.Option(help="paths per historical scenario")] = 20,
    paths_mc: Annotated[int, typer.Option(help="Monte Carlo paths")] = 200,
    accounts: Annotated[int, typer.Option(help="accounts in the book")] = 300,
    utilisation: Annotated[
        list[int] | None, typer.Option(help="utilisations to try, bps (default 9000 8000 7000)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="seed (default: settings.seed)")] = None,
    params: Annotated[Path | None, typer.Option(help="starting parameter TOML")] = None,
    workers: Annotated[int, typer.Option(help="local Dask workers (0: in this process)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Search tier lines, haircuts, stressed-regime settings, insurance premium and minimum
    junior ratio for sets that meet the stress targets; print the trade-off table; write the
    chosen set in the platform's parameter format."""
    from rich.console import Console
    from rich.table import Table

    from crowdleverage.config import load_settings
    from crowdleverage.risk.stress.calibrate import UTILISATION, calibrate
    from crowdleverage.risk.stress.policy import Book, write_params_toml

    settings = load_settings()
    if candidates < 1 or paths_hist < 1 or paths_mc < 1 or accounts < 1:
        raise InvalidInput("candidates, paths and accounts must be ≥ 1")
    utils = tuple(utilisation or UTILISATION)
    if any(not 0 < u <= 10_000 for u in utils):
        raise InvalidInput("utilisation must be within 1..10000 bps")
    if not out.parent.is_dir():
        raise InvalidInput(f"folder {out.parent} does not exist")
    console = Console(stderr=True)
    prog, on_chunk = progress_bar(console)
    with prog:
        chosen, best, rows = calibrate(
            _policy(params),
            Book(accounts=accounts),
            n_candidates=candidates,
            paths_hist=paths_hist,
            paths_mc=paths_mc,
            seed=settings.seed if seed is None else seed,
            utilisations=utils,
            workers=workers,
            on_candidate=lambda i, n, _row: on_chunk(i, n),
        )
    from crowdleverage.risk.stress.deploy import deploy_problems

    verdict = "meets every target" if best["feasible"] else "NO set met every target"
    problems = deploy_problems(chosen)
    used = (f"--candidates {candidates} --paths-hist {paths_hist} --paths-mc {paths_mc} "
            f"--accounts {accounts} " + " ".join(f"--utilisation {u}" for u in utils)
            + f" --seed {settings.seed if seed is None else seed}")  # fmt: skip
    comment = (
        f"crowdlev stress calibrate: {verdict}\n{best['label']}, utilisation "
        f"{best['utilisation_bps'] / 100:.0f}% (reached under the liquidity cap: "
        f"{best['lent_utilisation_bps'] / 100:.0f}%)\nfailed: {', '.join(best['failed']) or 'none'}"
        f"\nrun: {used}\ndeploys: "
        + ("yes (risk/stress/deploy.py apply_policy)" if not problems else "; ".join(problems))
    )
    write_params_toml(chosen, out, comment=comment)
    plain = [{k: v for k, v in r.items() if k != "policy"} for r in rows]
    if as_json:
        emit_json({"chosen": {k: v for k, v in best.items() if k != "policy"}, "rows": plain,
                   "out": str(out)})  # fmt: skip
        return
    table = Table(title="Calibration trade-off (max over historical scenarios)")
    for h in ("util → lent", "parameters", "junior VaR99 hist", "senior hist", "MC P(senior)",
              "MC junior ES99", "tier medians", "umbrella", "failed"):  # fmt: skip
        table.add_column(h)
    for r in plain:
        table.add_row(
            f"{r['utilisation_bps'] / 100:.0f}% → {r['lent_utilisation_bps'] / 100:.0f}%",
            r["label"], f"{r['hist_junior_var99_max']:.2%}",
            f"{r['hist_senior_max']:.2%}", f"{r['mc_p_senior_loss']:.2%}",
            f"{r['mc_junior_es99']:.2%}",
            "/".join(f"{v:.0%}" for v in r["tier_median_max"].values()),
            "/".join(f"{v:.0%}" for v in r["umbrella_median_max"].values()),
            str(len(r["failed"])),
        )  # fmt: skip
    Console(width=max(Console().width, 200)).print(table)
    Console().print(
        f"chosen ({verdict}): {best['label']} at {best['utilisation_bps'] / 100:.0f}%"
        f" ({best['lent_utilisation_bps'] / 100:.0f}% lent under the liquidity cap)"
    )
    Console().print(f"wrote {out}")
