"""Shared by the platform flows tests (embedded chain and anvil): the users, the replay's
start, funding the pool and levering a borrower up."""

from __future__ import annotations

import datetime as dt

from crowdleverage.config import SHIPPED_DATA
from crowdleverage.domain.errors import ContractRevert
from crowdleverage.flows.model import Tranche
from crowdleverage.flows.platform import Platform

MARKET = SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv"
INVESTOR_SENIOR, INVESTOR_JUNIOR, BORROWER = 1, 2, 3
START = dt.date(2015, 12, 30)


def fund_pool(p: Platform, senior_fen: int, junior_fen: int) -> None:
    p.deposit(INVESTOR_SENIOR, senior_fen, "SENIOR-0001")
    p.deposit(INVESTOR_JUNIOR, junior_fen, "JUNIOR-0001")
    p.subscribe(INVESTOR_JUNIOR, Tranche.JUNIOR, junior_fen)
    p.subscribe(INVESTOR_SENIOR, Tranche.SENIOR, senior_fen)
    p.end_of_day()


def lever_up(p: Platform, account_id: int, equity_fen: int, n: int = 10) -> None:
    """Request buys of ~38% of the equity in `n` securities and tick until they filled."""
    if not p.day_open:
        p.tick()
    placed = 0
    for code in p.codes:
        q = p.quote(code)
        if placed == n or q.halted or q.at_limit_up:
            continue
        limit = min(q.price_fen + q.price_fen // 100, q.limit_up_fen or q.price_fen)
        try:
            p.buy(account_id, code, equity_fen * 38 // 100 // limit // 100 * 100, limit)
        except ContractRevert:
            continue
        placed += 1
    for _ in range(3):
        p.tick()
    assert placed and all(o.status == "filled" for o in p.orders_of(account_id))
