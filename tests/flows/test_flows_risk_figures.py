"""`flows.risk_figures`: the chain figures of the market-wide views kept between blocks are
read again exactly when something they depend on changed (a tick, an event naming the
account, any other event but a wallet's cash), and equal the figures read afresh but for the
interest the debts accrued since."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows_world import BORROWER, INVESTOR_SENIOR, MARKET, fund_pool, lever_up, open_platform

from crowdleverage.api.views import account_out
from crowdleverage.custody.db import make_engine
from crowdleverage.flows.platform import Platform
from crowdleverage.flows.risk_figures import RiskFigures
from crowdleverage.market.bars import read_bars

OTHER = 4  # a second borrower


def _fresh(p: Platform) -> dict[str, Any]:
    """The risk panel read afresh (nothing kept), the kept figures left as they were."""
    kept = p.figures
    p.figures = RiskFigures(p)
    try:
        return p._risk_snapshot()
    finally:
        p.figures = kept


def _same(kept: dict[str, Any], fresh: dict[str, Any], debt_slack_fen: int = 0) -> None:
    for a, b in zip(kept["accounts"], fresh["accounts"], strict=True):
        assert 0 <= b["debt_fen"] - a["debt_fen"] <= debt_slack_fen
        if debt_slack_fen == 0:
            assert a == b
        else:
            strip = ("debt_fen", "ratio_bps")
            assert {k: v for k, v in a.items() if k not in strip} == {
                k: v for k, v in b.items() if k not in strip
            }
    for k in ("exposure_by_security_fen", "exposure_by_board_fen", "waiting_liquidations"):
        assert kept[k] == fresh[k]


def test_kept_figures_are_read_again_only_when_they_may_have_changed(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'custody.db'}")
    p = open_platform(tmp_path, engine, read_bars(MARKET))
    try:
        p.enroll(OTHER, "borrower")
        fund_pool(p, 800_000_000, 300_000_000)
        p.deposit(BORROWER, 60_000_000, "BORROWER-0001")
        p.deposit(OTHER, 30_000_000, "OTHER-0001")
        p.deposit(INVESTOR_SENIOR, 1_000, "SENIOR-0002")  # wallet cash to withdraw
        acc = p.open_margin_account(BORROWER, 3, 3)
        other = p.open_margin_account(OTHER, 2, 2)
        p.fund_account(acc.id, 50_000_000, reserve=False)
        p.fund_account(other.id, 20_000_000, reserve=False)
        lever_up(p, acc.id, 50_000_000)

        snap = p.risk_snapshot()
        _same(snap, _fresh(p))  # the same block: equal
        assert snap["exposure_by_security_fen"] and snap["total_debt_fen"] > 0
        reads = p.figures.reads

        # a wallet's cash only (a withdrawal mines a block): nothing is read again; the debts
        # kept lack the interest of the seconds since
        p.withdraw(INVESTOR_SENIOR, 1)
        _same(p.risk_snapshot(), _fresh(p), debt_slack_fen=5)
        assert p.figures.reads == reads

        # an event naming one account: its figures only, and its owner reads its own write
        p.fund_account(other.id, 1_000, reserve=False)
        view, _ = p.figures.account(OTHER)
        assert view.cash_fen == p.fin.account(OTHER).cash_fen
        assert p.figures.reads - reads == 2  # its engine view and its positions
        reads = p.figures.reads
        p.risk_snapshot()
        p.published_policy()
        assert p.figures.reads > reads  # the securities' platform positions: engine events
        reads = p.figures.reads
        p.risk_snapshot()
        assert p.figures.reads == reads

        # the margin account's page from the kept figures equals the engine's now, but for
        # the interest since it was read
        out = account_out(p, acc)
        assert 0 <= p.account_view(acc).debt_fen - out.debt_fen <= 5
        assert [x.model_dump() for x in out.positions] == p.positions(acc)

        # a tick: every figure is stale; the writer's slices read them piece by piece
        p.tick()
        slices = 1
        while not p.warm_views(0.0):  # a budget of 0: one piece per slice
            slices += 1
        assert slices >= 3
        reads = p.figures.reads
        _same(p.risk_snapshot(), _fresh(p))
        assert p.figures.reads == reads  # the render read none of them
    finally:
        p.close()
        engine.dispose()
