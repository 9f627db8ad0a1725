"""Liquidator.keep (issue 12): the keeper's actions over many accounts in one call. Each action
is re-verified as its single entry point does; an account no longer eligible is skipped with
`KeeperSkipped` (the single entry point's revert string), the others act and log as usual."""

from __future__ import annotations

import boa
import pytest
from fin_system import CMB, PAB, PINGAN, YUAN, Platform

CODES = (PAB, CMB, PINGAN)
WARN, TOP_UP, START, END = 0, 1, 2, 3


@pytest.fixture
def p(platform: Platform) -> Platform:
    return platform.fund_pool((4_000, 500, 100, 10_500, 30, 30_000), prefix="keep_")


def logs(p: Platform, name: str) -> list:
    return [e for e in p.liquidator.get_logs() if type(e).__name__ == name]


def test_keep_acts_on_the_eligible_and_skips_the_rest(p: Platform) -> None:
    levered = p.open_borrower("keep_levered", 3, 100_000 * YUAN)
    p.build_portfolio(levered, CODES, step=20_000)
    calm = p.open_borrower("keep_calm", 3, 100_000 * YUAN)  # no debt: never below a line
    p.next_day({c: 930 for c in CODES})  # -7%: the levered account is under its warning line
    assert p.ratio(levered) < 12_500
    with boa.reverts("margin: caller is not keeper"):
        p.liquidator.keep([levered], [WARN], sender=p.operator)
    with boa.reverts("margin: length mismatch"):
        p.liquidator.keep([levered, calm], [WARN], sender=p.keeper)
    with boa.reverts("margin: unknown keeper action"):
        p.liquidator.keep([levered], [4], sender=p.keeper)
    done = p.liquidator.keep([levered, calm, levered], [WARN, WARN, END], sender=p.keeper)
    assert done == 1
    [warning] = logs(p, "MarginWarning")
    assert warning.account == levered
    skipped = [(e.account, e.action, e.reason) for e in logs(p, "KeeperSkipped")]
    assert skipped == [
        (calm, WARN, "margin: above warning line"),
        (levered, END, "margin: not in liquidation"),
    ]
    # the single entry points still revert with the same strings
    with boa.reverts("margin: above warning line"):
        p.liquidator.warn(calm, sender=p.keeper)
    with boa.reverts("margin: above liquidation line"):
        p.liquidator.start_liquidation(levered, sender=p.keeper)
    # the next day (the lots are sellable now) it is under the 115% line
    p.next_day({c: 850 for c in CODES})
    assert p.ratio(levered) < 11_500
    assert p.liquidator.keep([calm, levered], [START, START], sender=p.keeper) == 1
    assert [e.account for e in logs(p, "LiquidationStarted")] == [levered]
    assert [(e.account, e.reason) for e in logs(p, "KeeperSkipped")] == [
        (calm, "margin: above liquidation line")
    ]
    assert p.engine.accounts(levered).locked and p.engine.accounts(levered).open_liq > 0
    assert not p.engine.accounts(calm).locked
    # orders are open: ending is skipped, the batch itself goes through
    assert p.liquidator.keep([levered, calm], [END, END], sender=p.keeper) == 0
    assert [e.reason for e in logs(p, "KeeperSkipped")] == [
        "margin: liquidation orders open",
        "margin: not in liquidation",
    ]
