"""The stress hook's arrays, and `crowdlev strategy backtest` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crowdleverage.cli import app
from crowdleverage.domain.errors import InvalidInput
from crowdleverage.strategies import stress
from crowdleverage.strategies.stress import BookExposure, Scenario

YI = 100_000_000 * 100  # 1亿元 in fen


def books() -> list[BookExposure]:
    # a −1 basis book (long futures, short spot) and a +1 A/H book (long A, short H)
    return [
        BookExposure("basis", "basis", -1, 1, 2 * YI, 1 * YI, 2 * YI, 1_000),
        BookExposure("ah", "ah", 1, -1, 1 * YI, 0.5 * YI),
    ]


def test_basis_blowout_hits_a_long_futures_book_and_spares_the_ah_book() -> None:
    pnl = stress.book_pnl(books(), Scenario("x", basis_bps=-600).row())
    assert pnl.shape == (1, 2)
    assert pnl[0, 0] == pytest.approx(-0.06 * 2 * YI)  # 600 bps of a 2亿 notional
    assert pnl[0, 1] == 0
    # the A/H book gains when the premium rises (long A) and loses when it falls
    up, down = stress.book_pnl(books(), np.array([[0, 500, 0, 0], [0, -500, 0, 0]]))[:, 1]
    assert up > 0 > down


def test_rule_change_forces_an_unwind_at_a_cost_and_reaches_the_pool() -> None:
    rule = Scenario("rule", margin_bps=4_000).row()
    pnl = stress.book_pnl(books(), rule, unwind_cost_bps=300)[0, 0]
    # the call (30% of 2亿 = 0.6亿) beyond the free half of 1亿 equity: 1/6 of the book sold
    assert pnl == pytest.approx(-(0.1 / 0.6) * 2 * YI * 0.03)
    blow = np.array([[-6_000, 0, 0, 4_000]])  # an extreme: 60% basis move and the rule change
    loss = stress.pool_loss(books(), blow)
    assert loss.shape == (1,) and loss[0] > 0
    assert stress.pool_loss(books(), np.zeros((3, 4))).tolist() == [0, 0, 0]


def test_scenario_table_and_bootstrap_are_reproducible() -> None:
    table = stress.scenario_table(books())
    assert set(table) == set(stress.SCENARIOS)
    assert table["basis_blowout"]["book_pnl_fen"] < 0
    hist = {"basis_bps": np.array([-50.0, 10.0, 30.0]), "ah_bps": np.array([5.0])}
    a = stress.bootstrap_shocks(hist, 1_000, seed=11)
    assert np.array_equal(a, stress.bootstrap_shocks(hist, 1_000, seed=11))
    assert set(np.unique(a[:, 0])) <= {-50.0, 10.0, 30.0} and (a[:, 2] == 0).all()
    with pytest.raises(InvalidInput):
        stress.book_pnl(books(), np.zeros((2, 3)))


runner = CliRunner()


def test_cli_backtest_prints_json_and_writes_an_offline_plot(tmp_path: Path) -> None:
    cfg = tmp_path / "basis.toml"
    cfg.write_text(
        '[strategy]\nproduct = "IH"\nspot = "etf"\nentry_bps = 80\n'
        "[account]\ndeposit_yuan = 5000000\n[brake]\nenabled = false\n"
    )
    plot = tmp_path / "plot.html"
    args = ["strategy", "backtest", "basis", "--config", str(cfg), "--from", "2015-05-01"]
    res = runner.invoke(app, [*args, "--to", "2015-12-31", "--json", "--plot", str(plot)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["strategy"] == "basis-IH-etf" and out["from"] >= "2015-05-01"
    assert out["brake_unwinds"] == 0 and "losses_fen" in out
    html = plot.read_text()
    # plotly.js is embedded (offline): no external script, the bundle inline (~4 MB)
    assert "<script src=" not in html and len(html) > 1_000_000 and "equity" in html


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[strategy]\nentry_z = 2\n", "unknown key 'entry_z'"),
        ('[strategy]\nentry_bps = "high"\n', "expected float"),
        ("[account]\ndeposit_yuan = -5\n", "whole 元"),
        ("[oops]\n", "unknown tables"),
        ("[strategy\n", "not valid TOML"),
        ('[strategy]\nspot = "future"\n', "spot must be 'basket' or 'etf'"),
        ("[strategy]\nentry_bps = 10\nexit_bps = 20\n", "exit_bps < entry_bps"),
    ],
)
def test_cli_bad_config_exits_with_a_typed_error(tmp_path: Path, toml: str, message: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    res = runner.invoke(app, ["strategy", "backtest", "basis", "--config", str(cfg), "--json"])
    assert res.exit_code == 78
    assert message in json.loads(res.stderr)["message"]


def test_cli_names_match_the_registry() -> None:
    from crowdleverage.strategies import cli as strategy_cli
    from crowdleverage.strategies import config, data

    assert tuple(config.STRATEGIES) == strategy_cli.STRATEGY_NAMES
    assert strategy_cli.DATA_DIR == data.DATA_DIR


def test_cli_unknown_strategy_and_bad_dates() -> None:
    res = runner.invoke(app, ["strategy", "backtest", "momentum"])
    assert res.exit_code == 2 and "unknown strategy" in res.stderr
    res = runner.invoke(app, ["strategy", "backtest", "etf", "--from", "2015-13-01"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["strategy", "backtest", "etf", "--from", "2030-01-01"])
    assert res.exit_code == 2 and "fewer than two trading days" in res.stderr


def test_historical_changes_feed_the_bootstrap(market) -> None:
    from crowdleverage.strategies import basis

    sf = basis.build(market, basis.BasisParams())
    hist = stress.historical_changes({"basis": sf}, horizon_days=5)
    ch = hist["basis_bps"]
    assert len(ch) == len(sf.frame) - 5
    # the 2015-07-07 → 2015-09-02 path had 5-day basis moves beyond −500 bps
    assert ch.min() < -500
    shocks = stress.bootstrap_shocks(hist, 10_000, seed=1)
    losses = stress.book_pnl(books()[:1], shocks)[:, 0]
    assert (losses < 0).any() and (losses > 0).any()
