"""`crowdlev`: the command line. Each feature contributes a typer sub-app; typed errors become
an exit code and a message on stderr (JSON when --json was asked for)."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="crowdlev",
    help="CrowdLeverage: compliant pooled stock margin financing (众筹股票配资).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

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
]


def _register() -> None:
    for module, attr, name in _FEATURES:
        sub = getattr(importlib.import_module(module), attr)
        if name is None:
            for cmd in sub.registered_commands:
                app.registered_commands.append(cmd)
            for grp in sub.registered_groups:
                app.registered_groups.append(grp)
        else:
            app.add_typer(sub, name=name)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
