"""Liquidation planner: T+1, sealed days, halts, lots, partial vs full, re-planning."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.domain.params import TIERS
from crowdleverage.risk.planner import (
    AccountSnapshot,
    BlockReason,
    Holding,
    PlanMode,
    PlannerConfig,
    _State,
    collateral_fen,
    net_proceeds_fen,
    plan_liquidation,
    ratio_bps,
)

TODAY = dt.date(2016, 1, 5)
YESTERDAY = dt.date(2016, 1, 4)
TIER3 = TIERS[3]
CFG = PlannerConfig(target_ratio_bps=TIER3.initial_ratio_bps)
EXAMPLES = 400 if os.environ.get("CROWDLEV_LONG") == "1" else 40


def holding(code: str, qty: int, price_fen: int, *, liquidity: int = 10**10, **kw) -> Holding:
    return Holding(
        code=code,
        lots=((YESTERDAY, qty),),
        price_fen=price_fen,
        haircut_bps=10_000,
        liquidity_fen=liquidity,
        limit_down_fen=price_fen * 9 // 10,
        **kw,
    )


def account(debt_fen: int, *holdings: Holding, cash_fen: int = 0) -> AccountSnapshot:
    return AccountSnapshot("acct-1", cash_fen, debt_fen, tuple(holdings))


def apply(snapshot: AccountSnapshot, plan, cfg: PlannerConfig = CFG) -> int:
    """Ratio after executing every planned sale at its limit price (the worst fill)."""
    by_code = {h.code: h for h in snapshot.holdings}
    state = _State(collateral_fen(snapshot.cash_fen, snapshot.holdings), snapshot.debt_fen)
    for s in plan.sales:
        net = net_proceeds_fen(s.code, TODAY, s.quantity, s.limit_price_fen, cfg)
        assert net == s.expected_net_fen
        state = state.after(by_code[s.code], s.quantity, net)
    return state.ratio()


def test_partial_restores_the_target_with_the_fewest_lots():
    # tier 3: debt 300万, holdings worth 340万 → 113.3%: below the 115% line, above the floor
    snap = account(300_000_000, holding("000001", 340_000, 1_000))
    plan = plan_liquidation(snap, TODAY, CFG)
    assert plan.mode is PlanMode.PARTIAL
    assert plan.ratio_before_bps == 11_333
    (sale,) = plan.sales
    assert sale.quantity % 100 == 0 and 0 < sale.quantity < 340_000
    assert plan.reaches_target and apply(snap, plan) >= CFG.target_ratio_bps
    assert plan.ratio_after_bps == apply(snap, plan)
    # one lot fewer would not have been enough
    fewer = dataclasses.replace(
        plan,
        sales=(
            dataclasses.replace(
                sale,
                quantity=sale.quantity - 100,
                expected_net_fen=net_proceeds_fen(
                    "000001", TODAY, sale.quantity - 100, sale.limit_price_fen, CFG
                ),
            ),
        ),
    )
    assert apply(snap, fewer) < CFG.target_ratio_bps


def test_limit_price_is_mark_less_slippage_and_above_limit_down():
    snap = account(300_000_000, holding("000001", 340_000, 1_000))
    (sale,) = plan_liquidation(snap, TODAY, CFG).sales
    assert sale.limit_price_fen == 980  # 1000 × (1 − 2%)
    near = holding("000001", 340_000, 1_000)
    near = dataclasses.replace(near, limit_down_fen=990)
    (sale,) = plan_liquidation(account(300_000_000, near), TODAY, CFG).sales
    assert sale.limit_price_fen == 991  # one tick above the limit-down, never into it


def test_most_liquid_first_and_only_as_much_as_needed():
    snap = account(
        300_000_000,
        holding("600000", 40_000, 1_000, liquidity=10**9),
        holding("000001", 300_000, 1_000, liquidity=10**11),
    )
    plan = plan_liquidation(snap, TODAY, CFG)
    assert [s.code for s in plan.sales] == ["000001"]
    # a shortfall larger than the liquid holding spills over to the next one
    big = account(
        300_000_000,
        holding("600000", 300_000, 1_000, liquidity=10**9),
        holding("000001", 40_000, 1_000, liquidity=10**11),
    )
    plan = plan_liquidation(big, TODAY, CFG)
    assert [s.code for s in plan.sales] == ["000001", "600000"]
    assert plan.sales[0].quantity == 40_000 and plan.reaches_target


def test_t_plus_one_shares_bought_today_are_not_sold():
    h = Holding(
        "000001",
        lots=((YESTERDAY, 30_000), (TODAY, 310_000)),
        price_fen=1_000,
        haircut_bps=10_000,
        liquidity_fen=10**10,
        limit_down_fen=900,
    )
    plan = plan_liquidation(account(300_000_000, h), TODAY, CFG)
    assert sum(s.quantity for s in plan.sales) <= 30_000
    assert not plan.reaches_target
    assert any(b.reason is BlockReason.T1_LOCKED and b.quantity == 310_000 for b in plan.blocked)
    # the next day the same lots are all sellable
    plan = plan_liquidation(account(300_000_000, h), dt.date(2016, 1, 6), CFG)
    assert plan.reaches_target and not plan.blocked


def test_sealed_limit_down_waits_and_the_next_session_sells():
    sealed = holding("000001", 340_000, 900, sealed_down=True)
    sealed = dataclasses.replace(sealed, limit_down_fen=900)
    snap = account(270_000_000, sealed)
    plan = plan_liquidation(snap, TODAY, CFG)
    assert plan.sales == () and not plan.reaches_target
    assert plan.waiting_behind_seals == 340_000
    # next session: the seal opened (price above the new limit-down) → the planner sells
    reopened = dataclasses.replace(sealed, price_fen=900, limit_down_fen=810, sealed_down=False)
    plan = plan_liquidation(account(270_000_000, reopened), dt.date(2016, 1, 6), CFG)
    assert plan.sales and plan.sales[0].limit_price_fen > 810
    assert plan.waiting_behind_seals == 0


def test_a_price_at_limit_down_counts_as_sealed_even_without_the_flag():
    h = dataclasses.replace(holding("000001", 340_000, 900), limit_down_fen=900)
    plan = plan_liquidation(account(270_000_000, h), TODAY, CFG)
    assert plan.sales == () and plan.blocked[0].reason is BlockReason.SEALED_LIMIT_DOWN


def test_halted_holdings_wait_and_others_are_sold():
    snap = account(
        300_000_000,
        holding("600000", 200_000, 1_000, halted=True, liquidity=10**12),
        holding("000001", 140_000, 1_000),
    )
    plan = plan_liquidation(snap, TODAY, CFG)
    assert [s.code for s in plan.sales] == ["000001"]
    assert [(b.code, b.reason) for b in plan.blocked] == [("600000", BlockReason.HALTED)]


def test_full_below_the_hard_floor_sells_every_sellable_share_with_odd_tail():
    # 105%: below the 111% floor
    snap = account(
        300_000_000,
        holding("000001", 150_050, 1_000),
        holding("600000", 165_000, 1_000),
        cash_fen=0,
    )
    plan = plan_liquidation(snap, TODAY, CFG)
    assert plan.mode is PlanMode.FULL
    assert {s.code: s.quantity for s in plan.sales} == {"000001": 150_050, "600000": 165_000}
    assert all(s.whole_holding for s in plan.sales)


def test_full_with_t1_locked_part_rounds_to_lots():
    h = Holding(
        "000001",
        lots=((YESTERDAY, 250_050), (TODAY, 20_000)),
        price_fen=1_000,
        haircut_bps=10_000,
        liquidity_fen=10**10,
        limit_down_fen=900,
    )
    plan = plan_liquidation(account(260_000_000, h), TODAY, CFG)
    assert plan.mode is PlanMode.FULL
    assert [s.quantity for s in plan.sales] == [250_000]  # the odd 50 waits for the whole


def test_replan_after_a_partial_fill_counts_the_open_order_then_resells_after_expiry():
    snap = account(300_000_000, holding("000001", 340_000, 1_000))
    (sale,) = plan_liquidation(snap, TODAY, CFG).sales
    half = sale.quantity // 200 * 100
    net = net_proceeds_fen("000001", TODAY, half, sale.limit_price_fen, CFG)
    after_fill = account(
        300_000_000 - net,
        dataclasses.replace(
            holding("000001", 340_000 - half, 1_000), pending_sell=sale.quantity - half
        ),
    )
    replan = plan_liquidation(after_fill, TODAY, CFG)
    assert replan.sales == ()  # the open remainder already covers the target
    # the remainder expired unfilled (the stock sealed); next session: sell it again
    expired = account(300_000_000 - net, holding("000001", 340_000 - half, 1_000))
    replan = plan_liquidation(expired, dt.date(2016, 1, 6), CFG)
    assert replan.sales and replan.reaches_target
    assert abs(replan.sales[0].quantity - (sale.quantity - half)) <= 100


def test_no_debt_or_healthy_means_nothing_to_sell_and_bad_input_is_refused():
    assert plan_liquidation(account(0, holding("000001", 100, 1_000)), TODAY, CFG).mode is (
        PlanMode.NONE
    )
    healthy = account(100_000_000, holding("000001", 340_000, 1_000))
    assert plan_liquidation(healthy, TODAY, CFG).sales == ()
    with pytest.raises(InvalidInput):
        plan_liquidation(account(-1, holding("000001", 100, 1_000)), TODAY, CFG)
    with pytest.raises(InvalidInput):
        PlannerConfig(target_ratio_bps=10_000)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    qty_lots=st.lists(st.integers(1, 5_000), min_size=1, max_size=5),
    prices=st.lists(st.integers(200, 20_000), min_size=5, max_size=5),
    ratio_pct=st.integers(112, 132),
    cash_fen=st.integers(0, 10_000_000),
)
def test_partial_plans_raise_the_ratio_and_reach_the_target_when_possible(
    qty_lots, prices, ratio_pct, cash_fen
):
    codes = ["000001", "600000", "000002", "601318", "000651"]
    holds = tuple(
        holding(codes[i], q * 100, prices[i], liquidity=10**9 * (i + 1))
        for i, q in enumerate(qty_lots)
    )
    coll = collateral_fen(cash_fen, holds)
    debt = coll * 100 // ratio_pct
    snap = AccountSnapshot("a", cash_fen, debt, holds)
    before = ratio_bps(coll, debt)
    plan = plan_liquidation(snap, TODAY, CFG)
    after = apply(snap, plan)
    assert after >= before  # invariant 7: liquidation never lowers the ratio
    assert all(s.quantity % 100 == 0 or s.whole_holding for s in plan.sales)
    if plan.mode is PlanMode.PARTIAL:
        sold_all = sum(s.quantity for s in plan.sales) == sum(h.quantity for h in holds)
        assert plan.reaches_target or sold_all
