"""Institutional strategy books in the stress run (issue 17, item 5): their losses beyond their
own equity and reserve go down the pool's waterfall beside the retail deficits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crowdleverage.cli import app
from crowdleverage.domain.errors import InvalidInput
from crowdleverage.risk.stress.engine import allocate_deficit
from crowdleverage.risk.stress.policy import Book, MarginPolicy
from crowdleverage.risk.stress.scenarios import RunOptions, run
from crowdleverage.risk.stress.strategy import (
    STRATEGY_LAYERS,
    StrategyStress,
    attribute,
    load_strategy_toml,
)
from crowdleverage.strategies.stress import BookExposure, pool_loss

# A crowded cheap-basis book (long futures / short spot, as on 2015-07): 20亿元 notional on
# 2,000万元 equity and a 500万元 reserve; the basis blow-out (−600 bps) costs it 1.2亿元.
BASIS_BOOK = BookExposure(
    "basis-if", "basis", direction=-1, spread_sign=1, notional_fen=2e11, equity_fen=2e9,
    futures_notional_fen=2e11, margin_bps=1_000.0, reserve_fen=5e8,
)  # fmt: skip
BOOK = Book(accounts=40)


def _opt(workers: int, strategies: StrategyStress | None) -> RunOptions:
    return RunOptions(paths=16, seed=11, chunk_paths=4, workers=workers, umbrella=False,
                      as_of=dt.date(2026, 11, 27), strategies=strategies)  # fmt: skip


def test_losses_beyond_margin_and_reserve_match_the_strategy_pool_loss() -> None:
    # Arrange
    st = StrategyStress((BASIS_BOOK,), shock="basis_blowout")
    no_reserve = dataclasses.replace(BASIS_BOOK, reserve_fen=0.0)
    # Act
    got = st.losses(3, seed=1, scenario_no=0, chunk_no=0)
    bare = StrategyStress((no_reserve,)).losses(3, seed=1, scenario_no=0, chunk_no=0)
    # Assert: 6% of 20亿 = 1.2亿; equity 2,000万, reserve 500万, 9,500万 left for the pool
    assert got["loss"] == pytest.approx([1.2e8] * 3)
    assert got["strategy_margin"] == pytest.approx([2e7] * 3)
    assert got["strategy_reserve"] == pytest.approx([5e6] * 3)
    assert got["deficit"] == pytest.approx([9.5e7] * 3)
    row = np.array([[-600.0, 0.0, 0.0, 0.0]])
    assert bare["deficit"][0] == pytest.approx(pool_loss([no_reserve], row)[0] / 100.0)


def test_attribution_closes_per_path() -> None:
    # Arrange: a retail deficit beside the strategy's on each path
    st = StrategyStress((BASIS_BOOK,), severity_sd=0.5)
    losses = st.losses(50, seed=3, scenario_no=1, chunk_no=2)
    retail = np.linspace(0.0, 4e7, 50)
    total = retail + losses["deficit"]
    absorbed = allocate_deficit(total, np.full(50, 2e6), np.full(50, 5e6), np.full(50, 1e8))
    # Act
    part = attribute(losses, absorbed, total)
    # Assert: the layers' parts add up to the books' loss, and no layer gives the strategy more
    # than it absorbed in all
    summed = sum(part[k] for k in STRATEGY_LAYERS)
    np.testing.assert_allclose(summed, losses["loss"], rtol=1e-12)
    for k in ("penalty", "insurance", "junior", "senior"):
        assert (part[k] <= absorbed[k] + 1e-6).all()
    assert len(set(np.round(losses["loss"]))) > 40  # the severity differs per path


def test_basis_blowout_reaches_insurance_and_junior_same_on_two_workers() -> None:
    # Arrange
    st = StrategyStress((BASIS_BOOK,), shock="basis_blowout", severity_sd=0.3)
    names = ["deval2015"]
    # Act
    base = run(names, MarginPolicy(), BOOK, _opt(0, None))
    local = run(names, MarginPolicy(), BOOK, _opt(0, st))
    dask2 = run(names, MarginPolicy(), BOOK, _opt(2, st))
    # Assert: identical in process and on 2 Dask workers
    assert json.dumps(local, sort_keys=True) == json.dumps(dask2, sort_keys=True)
    r, b = local["deval2015"], base["deval2015"]
    s = r["strategy"]
    assert s["shock"] == "basis_blowout" and s["books"] == 1
    assert s["layers"]["strategy_margin"]["p_reached"] == 1.0
    assert s["layers"]["insurance"]["p_reached"] == 1.0
    assert s["layers"]["junior"]["p_reached"] > 0.5
    assert s["layers"]["junior"]["loss_yuan_mean"] > 1e6
    # the attribution sums (means are linear)
    total = sum(s["layers"][k]["loss_yuan_mean"] for k in STRATEGY_LAYERS)
    assert total == pytest.approx(s["loss_yuan"]["mean"], rel=1e-9)
    # the pool's junior loss now includes the strategy's; retail lines are unchanged
    assert r["layers"]["junior"]["loss_yuan_mean"] >= s["layers"]["junior"]["loss_yuan_mean"]
    assert b["layers"]["junior"]["loss_yuan_mean"] < r["layers"]["junior"]["loss_yuan_mean"]
    assert r["tiers"] == b["tiers"]
    assert r["layers"]["borrower_margin"] == b["layers"]["borrower_margin"]
    assert "strategy" not in b


def test_cli_runs_strategy_books_from_a_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange
    monkeypatch.setenv("CROWDLEV_DATA_DIR", str(tmp_path))
    books = tmp_path / "books.toml"
    books.write_text(
        'shock = "etf_discount"\n[[book]]\nname = "etf"\nkind = "etf"\ndirection = 1\n'
        "spread_sign = -1\nnotional_fen = 1e11\nequity_fen = 1e9\n",
        encoding="utf-8",
    )
    args = ["stress", "run", "--scenario", "deval2015", "--paths", "4", "--accounts", "20",
            "--workers", "0", "--no-store", "--json", "--strategies", str(books)]  # fmt: skip
    # Act
    res = CliRunner().invoke(app, [*args, "--strategy-shock", "basis_blowout"])
    etf = CliRunner().invoke(app, args)
    # Assert: an ETF book is not hit by a basis shock; the ETF discount (−300 bps) costs it
    # 3% of 10亿 = 3,000万 > its 1,000万 equity
    assert res.exit_code == 0, res.output
    assert etf.exit_code == 0, etf.output
    st = json.loads(res.stdout.strip().splitlines()[-1])["scenarios"]["deval2015"]["strategy"]
    assert st["shock"] == "basis_blowout" and st["loss_yuan"]["max"] == 0.0
    st = json.loads(etf.stdout.strip().splitlines()[-1])["scenarios"]["deval2015"]["strategy"]
    assert st["loss_yuan"]["mean"] == pytest.approx(3e7)
    assert st["layers"]["strategy_margin"]["loss_yuan_mean"] == pytest.approx(1e7)


def test_bad_strategy_input_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[book]]\nname = "x"\nkind = "basis"\nsize = 3\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match="unknown key"):
        load_strategy_toml(bad)
    bad.write_text('[[book]]\nname = "x"\nkind = "basis"\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match="missing"):
        load_strategy_toml(bad)
    bad.write_text(
        '[[book]]\nname = "x"\nkind = "basis"\ndirection = 2\nspread_sign = 1\n'
        "notional_fen = 1.0\nequity_fen = 1.0\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidInput, match="direction"):
        load_strategy_toml(bad)
    with pytest.raises(InvalidInput, match="unknown strategy shock"):
        StrategyStress((BASIS_BOOK,), shock="nope")
    res = CliRunner().invoke(app, ["stress", "run", "--strategy-shock", "basis_blowout"])
    assert res.exit_code != 0 and "needs --strategies" in res.stderr
