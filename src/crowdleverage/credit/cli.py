"""`crowdlev credit …`: train, evaluate, score, list models.

    crowdlev credit train --config FILE [--registry DIR] [--no-promote] [--json]
    crowdlev credit evaluate --config FILE [--no-cv] --json
    crowdlev credit score [--model VERSION] [--registry DIR] --json < application.json
    crowdlev credit models [--registry DIR] [--json]

`score` reads one application (a JSON object) or a batch (a JSON array) from stdin; a missing
or out-of-range field is refused with every field's reason (exit 2). A model whose files do
not match its card's hashes is refused (exit 11).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from crowdleverage.cliutil import emit_json, typed_errors
from crowdleverage.domain.errors import InvalidInput

if TYPE_CHECKING:
    pass


app = typer.Typer(help="Credit models: train, evaluate, score.", no_args_is_help=True)
JSON_OPT = typer.Option(False, "--json", help="machine-readable output")
CONFIG_OPT = typer.Option(..., "--config", help="the data set's TOML config")
REGISTRY_OPT = typer.Option(None, "--registry", help="model registry folder")


@app.command()
@typed_errors
def train(
    config: Path = CONFIG_OPT,
    registry: Path | None = REGISTRY_OPT,
    promote: bool = typer.Option(True, "--promote/--no-promote", help="make it the one in use"),
    as_json: bool = JSON_OPT,
) -> None:
    """Train the scorecard and the challenger, write the model card, store the version."""
    from crowdleverage.credit import train as pipeline
    from crowdleverage.credit.config import load_config

    cfg = load_config(config)
    if registry is not None:
        cfg = dataclasses.replace(cfg, registry=registry)
    card = pipeline.run(cfg, promote=promote)
    if as_json:
        emit_json(card)
        return
    champ = card["champion"]
    test = card["metrics"][champ["model"]]["test"]
    typer.echo(f"model {card['version']} in {cfg.registry}")
    typer.echo(f"champion {champ['model']}: {champ['reason']}")
    typer.echo(f"test AUC {test['auc']}  KS {test['ks']}  ECE {test['ece']}")


@app.command()
@typed_errors
def evaluate(
    config: Path = CONFIG_OPT,
    cv: bool = typer.Option(True, "--cv/--no-cv", help="add stratified k-fold CV"),
    as_json: bool = JSON_OPT,
) -> None:
    """Train without saving; print held-out and cross-validated metrics."""
    from crowdleverage.credit import train as pipeline
    from crowdleverage.credit.config import load_config

    out = pipeline.evaluate(load_config(config), cv=cv)
    if as_json:
        emit_json(out)
        return
    for model, m in out["metrics"].items():
        t = m["test"]
        typer.echo(f"{model:10} test AUC {t['auc']}  KS {t['ks']}  ECE {t['ece']}")
    for model, m in out.get("cross_validation", {}).items():
        if isinstance(m, dict):
            typer.echo(f"{model:10} CV AUC {m['auc']['mean']} ± {m['auc']['std']}")
    typer.echo(out["champion"]["reason"])


@app.command()
@typed_errors
def score(
    model: str | None = typer.Option(None, "--model", help="version (default: the one in use)"),
    registry: Path | None = REGISTRY_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Score applications read from stdin as JSON."""
    from crowdleverage.credit.model import ModelRegistry
    from crowdleverage.credit.registry import default_registry

    try:
        body: Any = json.loads(sys.stdin.read())
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"stdin: not JSON ({exc.msg} at line {exc.lineno})") from None
    m = ModelRegistry(registry or default_registry()).load(model)
    apps = body if isinstance(body, list) else [body]
    scores = [s.to_dict() for s in m.score_frame(m.frame_of(apps))]
    out: Any = scores if isinstance(body, list) else scores[0]
    if as_json:
        emit_json(out)
        return
    for s in scores:
        why = "; ".join(r["en"] for r in s["reasons"]) or "-"
        typer.echo(f"PD {s['pd']:.4f}  points {s['points']}  ({s['version']})  {why}")


@app.command()
@typed_errors
def models(registry: Path | None = REGISTRY_OPT, as_json: bool = JSON_OPT) -> None:
    """The stored versions and the one in use."""
    from crowdleverage.credit.model import ModelRegistry
    from crowdleverage.credit.registry import default_registry

    reg = ModelRegistry(registry or default_registry())
    current, versions = reg.current(), reg.versions()
    if as_json:
        emit_json({"registry": str(reg.root), "current": current, "versions": versions})
        return
    for v in versions:
        typer.echo(("* " if v == current else "  ") + v)
