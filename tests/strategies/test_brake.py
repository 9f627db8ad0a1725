"""The liquidity-reversal brake: stages, hysteresis, the operator view, and the 2015 case — a
financed basis book hit by the CFFEX rule changes of late August/September 2015 is unwound by
the brake before its lines, with the losses attributed."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd

from crowdleverage.strategies import basis
from crowdleverage.strategies.backtest import BacktestConfig, RunOptions, run
from crowdleverage.strategies.base import StrategyFrame
from crowdleverage.strategies.brake import (
    BrakeInputs,
    BrakeParams,
    LiquidityBrake,
    Stage,
    brake_state,
    regime_proxy,
)
from crowdleverage.strategies.data import MarketData

D = dt.date


def calm(day: dt.date) -> BrakeInputs:
    return BrakeInputs(day, pool_share_bps=100, adverse_move_bps=0.0, volume_ratio=1.0, regime=0.0)


def test_stages_rise_at_once_and_fall_after_calm_days() -> None:
    brake = LiquidityBrake(BrakeParams(calm_days=3, unwind_days=4))
    assert brake.state().stage is Stage.NORMAL and brake.state().to_dict()["new_financing"]
    hot = BrakeInputs(D(2015, 9, 1), 2_000, 500.0, 0.3, 0.0)  # crowding, adverse, thin volume
    st = brake.update(hot)
    assert st.stage is Stage.UNWIND and st.score == 3 and st.cap_fraction == 0.75
    assert brake.update(hot).cap_fraction == 0.5  # the unwind schedule goes on
    day = D(2015, 9, 3)
    for _ in range(2):
        assert brake.update(calm(day)).stage is Stage.UNWIND  # not yet calm long enough
    assert brake.update(calm(day)).stage is Stage.LIMIT
    # one hot day resets the calm count
    brake.update(BrakeInputs(day, 2_000, 500.0, 1.0, 0.0))  # score 2: the LIMIT stage
    assert brake.stage is Stage.LIMIT and brake.calm == 0


def test_each_signal_scores_once() -> None:
    brake = LiquidityBrake()
    p = brake.params
    day = D(2015, 9, 7)
    assert brake.score(calm(day))[0] == 0
    assert brake.score(BrakeInputs(day, 0, 0.0, 1.0, 0.0, margin_step=1.33))[0] == 1
    assert brake.score(BrakeInputs(day, 0, 0.0, 1.0, p.regime_stressed))[0] == 1
    assert brake.score(BrakeInputs(day, 0, 0.0, p.volume_ratio_min - 0.01, 0.0))[0] == 1


def test_state_for_the_operator_panel_is_json() -> None:
    assert brake_state(None)["stage"] == "NORMAL" and brake_state(None)["day"] is None
    brake = LiquidityBrake()
    brake.update(BrakeInputs(D(2015, 9, 7), 2_000, 300.0, 0.06, 1.0, 1.33))
    out = json.loads(json.dumps(brake.state().to_dict()))
    assert out["stage"] == "UNWIND" and out["new_financing"] is False
    assert out["inputs"]["day"] == "2015-09-07" and len(out["reasons"]) == 5
    assert out["params"]["unwind_days"] == BrakeParams().unwind_days
    assert brake_state(brake) == brake.state().to_dict()


def test_regime_proxy_is_causal_and_bounded(market: MarketData) -> None:
    close = market.indices["000300"]["close"]
    reg = regime_proxy(close)
    assert reg.between(0, 1).all()
    assert reg.loc["2015-06-08"] < 0.2 and reg.loc["2015-07-08"] == 1.0
    cut = pd.Timestamp("2015-07-01")
    later = close.copy()
    later[later.index > cut] *= 0.5
    assert regime_proxy(later).loc[:cut].equals(reg.loc[:cut])


def crowded_basis_book(market: MarketData) -> StrategyFrame:
    """The crowd's trade of August 2015: futures at a deep discount, so long IF and short the
    basket (−1) from 2015-08-03, on 2.3× the account's equity."""
    sf = basis.build(market, basis.BasisParams())
    f = sf.frame.copy()
    f["signal"] = np.where(f.index >= pd.Timestamp("2015-08-03"), -1, 0)
    return StrategyFrame(sf.name, sf.a, sf.b, f)


def test_brake_unwinds_the_2015_basis_book_before_its_lines(market: MarketData) -> None:
    sf = crowded_basis_book(market)
    cfg = BacktestConfig(notional_x_equity=2.3)
    opts = RunOptions(crowd_multiple=20)  # the pool finances 20 books like this one
    window = {"date_from": D(2015, 7, 1), "date_to": D(2015, 10, 30)}
    bare = run(sf, cfg, options=opts, **window)
    braked_brake = LiquidityBrake()
    braked = run(sf, cfg, brake=braked_brake, options=opts, **window)
    tier = cfg.tier

    # without the brake the margin steps (20% → 30% on 08-31, 40% announced for 09-07) drain
    # the account: a margin call, then a forced exit below the lines
    d = bare.daily
    first_call = d.index[d["margin_calls"] > 0][0]
    assert pd.Timestamp("2015-08-31") <= first_call <= pd.Timestamp("2015-09-07")
    assert bare.stats["forced_exits"] == 1 and bare.stats["min_ratio_bps"] < tier.warning_ratio_bps

    # with the brake: unwound in steps, flat before the first call of the bare book,
    # never a margin call or a forced exit, the ratio never under the warning line
    b = braked.daily
    assert braked.stats["margin_calls"] == 0 and braked.stats["forced_exits"] == 0
    assert braked.stats["brake_unwinds"] >= 2
    assert (b["ratio_bps"].dropna() >= tier.warning_ratio_bps).all()
    flat_from = b.index[(b.index > pd.Timestamp("2015-08-03")) & (b["position"] == 0)][0]
    assert flat_from < first_call
    # flat through the rule changes; it may re-enter once the brake has released (October)
    assert (b.loc[flat_from:"2015-09-30", "position"] == 0).all()
    unwind = [s for s in braked_brake.history if s.stage is Stage.UNWIND]
    assert unwind and unwind[0].day < flat_from.date()

    # losses attributed: the borrower's margin absorbs all of it, the pool nothing; the brake
    # saves most of the bare book's loss; the P&L splits into market and costs exactly
    for res in (bare, braked):
        s, loss = res.stats, res.losses
        assert loss["borrower_margin"] == -s["pnl_fen"] > 0
        assert loss["insurance"] == loss["junior"] == loss["senior"] == loss["unabsorbed"] == 0
        costs = s["fees_fen"] + s["interest_fen"] + s["borrow_fen"] + s["penalty_fen"]
        assert s["market_pnl_fen"] - costs == s["pnl_fen"]
    assert -braked.stats["pnl_fen"] < 0.5 * -bare.stats["pnl_fen"]
    assert bare.stats["penalty_fen"] > 0 == braked.stats["penalty_fen"]
