"""DESIGN.md §2: dependencies point down the package table. The packages below `flows/` (the
parts it joins, `risk/` with the trading session included) never import `flows/` or what
stands on it (`api/`, `web/`, `service/`, `reports/`, the CLI)."""

from __future__ import annotations

import ast
from pathlib import Path

import crowdleverage

SRC = Path(crowdleverage.__file__).parent
BELOW_FLOWS = ("domain", "market", "chain", "custody", "broker", "oracle", "risk",
               "compliance", "credit", "strategies", "audit")  # fmt: skip
ABOVE = ("flows", "api", "web", "service", "reports", "cli")


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_no_package_below_flows_imports_flows_or_above() -> None:
    bad = []
    for pkg in BELOW_FLOWS:
        for path in sorted((SRC / pkg).rglob("*.py")):
            for mod in _imports(path):
                parts = mod.split(".")
                if parts[0] == "crowdleverage" and len(parts) > 1 and parts[1] in ABOVE:
                    bad.append(f"{path.relative_to(SRC)} imports {mod}")
    assert not bad, bad


def test_the_trading_session_is_in_risk_and_flows_has_no_copy() -> None:
    from crowdleverage.flows import chain_financing
    from crowdleverage.risk import replay, session

    assert chain_financing.TradingSession is session.TradingSession
    assert replay.TradingSession is session.TradingSession
    assert not (SRC / "flows" / "session.py").exists()
