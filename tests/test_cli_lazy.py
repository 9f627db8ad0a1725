"""`crowdlev --help` lists every command without importing the feature modules; the static
table it lists from matches the modules' own commands and help; a command still runs."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from crowdleverage import cli

HEAVY = ("crowdleverage.market.cli", "crowdleverage.risk.stress.cli", "crowdleverage.api.serve")


def test_static_table_matches_the_feature_modules() -> None:
    assert cli.command_table() == cli._LISTED


def test_top_level_help_imports_no_feature_module() -> None:
    code = (
        "import sys\n"
        "from crowdleverage.cli import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        f"print(sorted(m for m in {list(HEAVY)!r} + "
        "[f for f, *_ in __import__('crowdleverage.cli').cli._FEATURES] if m in sys.modules))\n"
        "print(r.output)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    first, _, help_text = out.partition("\n")
    assert first == "[]", first
    for name in cli._LISTED:
        assert name in help_text, name


def test_group_help_and_a_command_run_through_the_lazy_group() -> None:
    r = CliRunner().invoke(cli.app, ["market", "--help"])
    assert r.exit_code == 0, r.output
    assert "limits" in r.output and "validate" in r.output
    args = ["market", "limits", "600000", "--date", "2016-01-04", "--prev-close", "10.00"]
    r = CliRunner().invoke(cli.app, args)
    assert r.exit_code == 0, r.output
    assert "1100" in r.output and "900" in r.output, r.output  # ±10% of 1000 fen
    r = CliRunner().invoke(cli.app, ["no-such-command"])
    assert r.exit_code == 2 and "No such command" in r.output


def test_feature_modules_import_no_heavy_library() -> None:
    """Every command's --help imports its module only: none of them may pull pandas, numpy,
    exchange_calendars, SQLAlchemy, the EVM or the web stack at import (bench/cli.py times it)."""
    heavy = ("pandas", "numpy", "exchange_calendars", "sqlalchemy", "eth_keys", "boa", "vyper",
             "fastapi", "uvicorn", "statsmodels", "scipy", "sklearn")  # fmt: skip
    code = (
        "import sys\n"
        "from crowdleverage import cli\n"
        "for f in cli._FEATURES: cli.feature_commands(*f)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]", out


def test_market_constants_kept_beside_their_modules() -> None:
    """market/cli.py and ca_cli.py repeat two constants to avoid importing the converter and
    the settings at --help: they must stay equal."""
    from crowdleverage.config import SHIPPED_DATA
    from crowdleverage.market import ca_cli
    from crowdleverage.market import cli as market_cli
    from crowdleverage.market.convert import FORMATS

    assert market_cli.FORMATS == FORMATS
    assert ca_cli.DEFAULT_ACTIONS == SHIPPED_DATA / "market" / "corporate_actions.csv"
