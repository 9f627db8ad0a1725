"""Shared by the platform flows tests (embedded chain and anvil): the users, the replay's
start, the platform's database on either backend, opening a platform with its users, funding
the pool and levering a borrower up."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from crowdleverage.config import SHIPPED_DATA, Settings
from crowdleverage.custody.db import make_engine
from crowdleverage.domain.errors import ContractRevert
from crowdleverage.flows.market import MarketFeed
from crowdleverage.flows.model import Tranche
from crowdleverage.flows.platform import Platform
from crowdleverage.market.bars import Bar

MARKET = SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv"
INVESTOR_SENIOR, INVESTOR_JUNIOR, BORROWER = 1, 2, 3
START = dt.date(2015, 12, 30)


@contextlib.contextmanager
def custody_engine(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[sa.Engine]:
    """The platform's database for a fixture parametrised "sqlite" / "postgresql": a file in
    `data_dir`, or a schema of its own on the test PostgreSQL (`pg_url`), dropped after."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{data_dir / 'custody.db'}")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    url = request.getfixturevalue("pg_url")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(url, schema=schema)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def open_platform(data_dir: Path, engine: sa.Engine, bars: list[Bar]) -> Platform:
    """A platform on `data_dir` and `engine` replaying `bars` from START, its three users
    enrolled."""
    p = Platform(Settings(data_dir=data_dir), engine=engine, market=MarketFeed(bars, start=START))
    for uid, role in ((INVESTOR_SENIOR, "investor"), (INVESTOR_JUNIOR, "investor"),
                      (BORROWER, "borrower")):  # fmt: skip
        p.enroll(uid, role)
    return p


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
