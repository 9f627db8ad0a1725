"""`crowdlev`: the command line. Each feature contributes a typer sub-app; typed errors become
an exit code and a message on stderr (JSON when --json was asked for).

Feature modules are imported lazily: `crowdlev --help` lists the commands from the static
table `_LISTED` (no feature import), and `crowdlev <command> …` imports only the module of
that command. A module in `_FEATURES` without rows in `_LISTED` is imported when the help
lists the commands (correct, only slower); tests/test_cli_lazy.py checks the table against
the modules."""

from __future__ import annotations

import importlib

import typer
import typer.main
from typer import _click as click  # typer vendors click: its group/command classes are these
from typer.core import TyperCommand, TyperGroup

# (module, attribute, sub-command name or None to merge its commands at top level)
_FEATURES: list[tuple[str, str, str | None]] = [
    ("crowdleverage.market.cli", "app", "market"),
    ("crowdleverage.main_job", "app", None),
    ("crowdleverage.compliance.cli", "app", None),
    ("crowdleverage.chain.cli", "app", "chain"),
    ("crowdleverage.custody.cli", "app", "custody"),
    ("crowdleverage.audit.cli", "app", "audit"),
    ("crowdleverage.audit.reconcile_cli", "app", None),
    ("crowdleverage.api.serve", "app", None),
    ("crowdleverage.risk.cli", "app", None),
    ("crowdleverage.risk.stress.cli", "app", "stress"),
    ("crowdleverage.strategies.cli", "app", "strategy"),
    ("crowdleverage.credit.cli", "app", "credit"),
    ("crowdleverage.compliance.onboarding_cli", "app", "onboarding"),
    ("crowdleverage.migrations.cli", "app", "db"),
]

# command → (module, one-line help) for `crowdlev --help` without importing the features
_LISTED: dict[str, tuple[str, str]] = {
    "market": ("crowdleverage.market.cli", "A-share market rules and data."),
    "run": (
        "crowdleverage.main_job",
        "Replay the January 2016 circuit-breaker week through the whole platform.",
    ),
    "screen": (
        "crowdleverage.compliance.cli",
        "Screen one name against the loaded sanctions lists.",
    ),
    "screen-batch": ("crowdleverage.compliance.cli", "Screen every name in a file."),
    "lists": ("crowdleverage.compliance.cli", "Sanctions lists: load and show."),
    "kyc": ("crowdleverage.compliance.cli", "KYC onboarding: onboard, verify, reject, show."),
    "cases": ("crowdleverage.compliance.cli", "Compliance cases: list, show, move, STR export."),
    "chain": ("crowdleverage.chain.cli", "Chain gateway: deploy contracts, show status."),
    "custody": ("crowdleverage.custody.cli", "Custody ledger and custodian bank files."),
    "audit": ("crowdleverage.audit.cli", "Audit: hash-chained signed log, proofs of liabilities."),
    "reconcile": (
        "crowdleverage.audit.reconcile_cli",
        "Compare every mint/burn with its ledger twin, supplies and balances.",
    ),
    "resume-after-break": (
        "crowdleverage.audit.reconcile_cli",
        "Operator: unpause the chain after a break — refused unless the latest "
        "reconciliation is clean (run `crowdlev reconcile` after booking the correction).",
    ),
    "serve": (
        "crowdleverage.api.serve",
        "Run the platform process and the HTTP API workers (one writer, many readers).",
    ),
    "platform": (
        "crowdleverage.api.serve",
        "Run the platform process: the single writer (chain, trading session, command queue).",
    ),
    "api": (
        "crowdleverage.api.serve",
        "Run the HTTP API workers (commands to the platform process's queue, reads from its "
        "read models).",
    ),
    "replay": (
        "crowdleverage.risk.cli",
        "Replay a period through the whole platform; report per day and check invariants.",
    ),
    "stress": (
        "crowdleverage.risk.stress.cli",
        "Stress tests: historical scenarios, Monte Carlo, calibration, reports.",
    ),
    "strategy": ("crowdleverage.strategies.cli", "Institutional strategy accounts: backtests."),
    "credit": ("crowdleverage.credit.cli", "Credit models: train, evaluate, score."),
    "onboarding": (
        "crowdleverage.compliance.onboarding_cli",
        "Onboarding: the compliance officer's queue.",
    ),
    "db": ("crowdleverage.migrations.cli", "Database schema: migrations (Alembic)."),
}  # fmt: skip


def feature_commands(module: str, attr: str, name: str | None) -> dict[str, click.Command]:
    """Import one feature module and build its click command(s), as the eager CLI did:
    a named sub-app becomes one group, an unnamed one's commands join the top level."""
    sub = getattr(importlib.import_module(module), attr)
    group = typer.main.get_group(sub)
    if name is None:
        return dict(group.commands)
    group.name = name
    return {name: group}


class LazyGroup(TyperGroup):
    """The top-level group: command names and one-line help from `_LISTED`, each feature
    module imported on first use."""

    _listing = False

    def _unlisted(self) -> list[tuple[str, str, str | None]]:
        listed = {m for m, _ in _LISTED.values()}
        return [f for f in _FEATURES if f[0] not in listed]

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = list(_LISTED)
        for feature in self._unlisted():
            names += [n for n in feature_commands(*feature) if n not in names]
        return names

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in _LISTED and self._listing:  # help text only: no import
            return TyperCommand(cmd_name, help=_LISTED[cmd_name][1])
        for module, attr, name in _FEATURES:
            if cmd_name in _LISTED and _LISTED[cmd_name][0] != module:
                continue
            if cmd_name not in _LISTED and (module, attr, name) not in self._unlisted():
                continue
            cmds = feature_commands(module, attr, name)
            if cmd_name in cmds:
                self.commands[cmd_name] = cmds[cmd_name]
                return cmds[cmd_name]
        return None

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="crowdlev",
    cls=LazyGroup,
    help="CrowdLeverage: compliant pooled stock margin financing (众筹股票配资).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """CrowdLeverage: compliant pooled stock margin financing (众筹股票配资)."""


def main() -> None:
    app()


def command_table() -> dict[str, tuple[str, str]]:
    """Every top-level command → (module, one-line help), from the modules themselves
    (imports them all; for the consistency test and for regenerating `_LISTED`)."""
    out: dict[str, tuple[str, str]] = {}
    for module, attr, name in _FEATURES:
        for n, cmd in feature_commands(module, attr, name).items():
            out[n] = (module, cmd.get_short_help_str(limit=300))
    return out


__all__ = ["app", "command_table", "main"]

if __name__ == "__main__":
    main()
