"""The durable record (issue 14, item 3): Alembic migrations on SQLite and PostgreSQL, the
previous release's data dir (its JSON document) upgraded once, the record appended (never
rewritten), and a restart in the middle of a trading day resuming at the next tick with the
broker's open orders placed again.

The embedded chain, the custody ledger and the databases are real; a "crash" is the process's
objects dropped after `Platform.close()` (which saves nothing: what a killed process leaves),
followed by a new `Platform` on the same data dir and database."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tarfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flows_world import BORROWER, INVESTOR_SENIOR, MARKET, START, fund_pool, lever_up
from test_flows_platform import check_invariants

from crowdleverage.chain.margin import ORDERBOOK
from crowdleverage.config import Settings
from crowdleverage.custody.db import make_engine
from crowdleverage.flows import record
from crowdleverage.flows.market import MarketFeed
from crowdleverage.flows.platform import Platform
from crowdleverage.market.bars import Bar, read_bars
from crowdleverage.market.exchange import OrderStatus
from crowdleverage.migrations import HEAD, current, upgrade

LEGACY = Path(__file__).parent / "fixtures" / "legacy_v2_datadir.tar.gz"

if TYPE_CHECKING:  # tests/conftest.py (a bare `conftest` import is ambiguous)
    from conftest import EngineFactory


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return read_bars(MARKET)


def _open(data_dir: Path, engine: sa.Engine, bars: list[Bar]) -> Platform:
    p = Platform(Settings(data_dir=data_dir), engine=engine, market=MarketFeed(bars, start=START))
    for uid, role in ((1, "investor"), (2, "investor"), (BORROWER, "borrower")):
        p.enroll(uid, role)
    return p


def _component_metadata() -> list[sa.MetaData]:
    import crowdleverage.api.store as api_store
    import crowdleverage.audit.log as audit_log
    import crowdleverage.compliance.onboarding
    import crowdleverage.compliance.repository as compliance
    import crowdleverage.custody.bridge
    import crowdleverage.custody.indexer
    import crowdleverage.custody.schema as custody
    import crowdleverage.custody.service  # noqa: F401
    import crowdleverage.flows.commands as commands
    import crowdleverage.flows.platform as platform
    import crowdleverage.reports.attest as attest
    import crowdleverage.reports.notify as notify
    import crowdleverage.service.queue as service_queue

    return [custody.metadata, compliance.metadata, audit_log.metadata, commands.metadata,
            platform.snap_meta, api_store.metadata, notify.meta, attest.meta,
            service_queue.metadata]  # fmt: skip


def _diffs(engine: sa.Engine, md: sa.MetaData) -> list[object]:
    """Differences between `md` and the database for `md`'s tables (others are ignored)."""
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), md)
    return [d for d in diffs if _table_of(d) in md.tables and d[0] != "remove_table"]


def _table_of(d: object) -> str | None:
    if isinstance(d, list):  # modify_*: [(kind, schema, table, column, ...)]
        return str(d[0][2])
    assert isinstance(d, tuple)
    obj = d[1]
    if isinstance(obj, sa.Table):
        return obj.name
    table = getattr(obj, "table", None)
    if table is not None:
        return str(table.name)
    return str(d[2])  # add_column / remove_column: (kind, schema, table, column)


# ── migrations ──────────────────────────────────────────────────────────────────────────


def test_a_fresh_database_migrates_to_the_tables_the_code_uses(engine: sa.Engine) -> None:
    assert current(engine) is None
    assert upgrade(engine) == HEAD
    assert upgrade(engine) == HEAD  # idempotent
    assert _diffs(engine, record.metadata) == []
    for md in _component_metadata():  # the baseline is what create_all made
        assert _diffs(engine, md) == [], sorted(md.tables)
    assert "flows_snapshot" not in sa.inspect(engine).get_table_names()


def test_a_previous_release_database_upgrades_in_place(engine: sa.Engine) -> None:
    """The previous release created its tables with create_all and kept no revision; some
    components may never have run (their tables are missing): the baseline adds those."""
    mds = _component_metadata()
    mds[0].create_all(engine)  # custody only
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE flows_snapshot (id INTEGER PRIMARY KEY, "
                             "taken_at_s BIGINT NOT NULL, body TEXT NOT NULL)"))  # fmt: skip
    assert upgrade(engine) == HEAD
    for md in mds:
        assert _diffs(engine, md) == [], sorted(md.tables)
    with engine.connect() as conn:  # an empty document table: nothing to import
        assert record.read(conn) is None


def test_the_previous_release_data_dir_is_migrated_once(tmp_path: Path, bars: list[Bar]) -> None:
    with tarfile.open(LEGACY) as tar:  # written by main at 4c1d524 (fixtures/make_…py)
        tar.extractall(tmp_path, filter="data")
    data = tmp_path / "data"
    engine = make_engine(f"sqlite:///{data / 'custody.db'}")
    assert current(engine) is None
    with engine.connect() as conn:
        doc = json.loads(conn.execute(sa.text("SELECT body FROM flows_snapshot")).scalar_one())
    assert doc["version"] == 2

    p = _open(data, engine, bars)
    assert current(engine) == HEAD
    assert "flows_snapshot" not in sa.inspect(engine).get_table_names()
    assert p.history == {int(k): v for k, v in doc["history"].items()}
    assert [asdict(o) for o in p.orders] == doc["orders"]
    assert [asdict(a) for a in p.accounts.values()] == doc["accounts"]
    assert p.s.enrolled == {int(k): v for k, v in doc["enrolled"].items()}
    assert {k: [list(x) for x in v] for k, v in p.s.nav_history.items()} == doc["nav_history"]
    assert p.s.cursor == doc["cursor"] and p.s.next_id == doc["next_id"]
    assert p.market.today.isoformat() == doc["market_day"] and not p.day_open
    assert p.wallet_fen(INVESTOR_SENIOR) == 4_000  # 5 000 deposited, 1 000 withdrawn
    assert p.reconcile()["status"] == "ok"  # (the 1 000 fen payout leaves at the close)
    p.tick()  # the replay goes on: the saved next day opens
    assert p.day_open and p.market.today.isoformat() == doc["market_day"]
    p.deposit(INVESTOR_SENIOR, 2_000, "AFTER-UPGRADE")
    history = {u: list(v) for u, v in p.history.items()}
    p.close()

    again = _open(data, engine, bars)  # the document is not imported a second time
    assert again.history == history
    assert again.market.step == 0 and again.day_open
    again.close()
    engine.dispose()


# ── a restart in the middle of a trading day ────────────────────────────────────────────


def _resting_buy(p: Platform, account_id: int, skip: set[str]) -> int:
    """A buy at today's limit-down: it rests at the exchange (below the price)."""
    for code in p.codes:
        q = p.quote(code)
        if code in skip or q.halted or q.limit_down_fen is None:
            continue
        if q.limit_down_fen < q.price_fen * 95 // 100:
            skip.add(code)
            return p.buy(account_id, code, 100, q.limit_down_fen).id
    raise AssertionError("no security to rest an order on")


def _facts(p: Platform, account_id: int) -> object:
    """Positions, orders, statements and wallets, as JSON (compared across processes)."""
    acc = p.account(account_id)
    facts = {
        "view": asdict(p.account_view(acc)),
        "positions": [(x["code"], x["quantity"], x["sellable"]) for x in p.positions(acc)],
        "orders": [(o.id, o.status, o.filled_qty, o.fees_fen) for o in p.orders_of(account_id)],
        "history": {str(u): list(v) for u, v in p.history.items()},
        "wallets": [p.wallet_fen(u) for u in (1, 2, BORROWER)],
    }
    return json.loads(json.dumps(facts))


def _until_the_crash(data_dir: str, url: str, schema: str | None, out: str) -> None:
    """In a child process: a day under way with a resting order at the exchange and one
    requested but not placed yet; the facts go to `out`, then the process is SIGKILLed."""
    engine = make_engine(url, schema=schema)
    p = _open(Path(data_dir), engine, read_bars(MARKET))
    fund_pool(p, 100_000_000, 40_000_000)
    p.deposit(BORROWER, 10_000_000, "MIDDAY-0001")
    acc = p.open_margin_account(BORROWER, 2, 2)
    p.fund_account(acc.id, 10_000_000, reserve=False)
    lever_up(p, acc.id, 10_000_000, n=3)  # opens the day, 3 ticks: the buys filled
    used: set[str] = set()
    resting = _resting_buy(p, acc.id, used)
    p.tick()  # the broker places it at the exchange, where it rests
    assert p.fin.exchange.order(f"E{resting}").status is OrderStatus.OPEN
    received = _resting_buy(p, acc.id, used)  # requested on chain, not placed yet
    assert p.day_open and 0 < p.market.step < p.market.ticks_per_day - 1
    with engine.connect() as conn:
        lines = conn.execute(sa.select(record.lines).order_by(record.lines.c.seq)).all()
    Path(out).write_text(json.dumps({
        "account_id": acc.id, "resting": resting, "received": received,
        "day": p.market.today.isoformat(), "step": p.market.step,
        "block": p.chain.block_number(), "facts": _facts(p, acc.id),
        "lines": [list(r) for r in lines],
    }))  # fmt: skip
    os.kill(os.getpid(), signal.SIGKILL)  # no shutdown of any kind


# SQLite by default; PostgreSQL too with CROWDLEV_LONG=1 (+40 s; the record's writes on
# PostgreSQL run in tests/flows/test_flows_platform.py and the migrations above by default)
MID_DAY_BACKENDS = (
    ["sqlite", "postgresql"] if os.environ.get("CROWDLEV_LONG") == "1" else ["sqlite"]
)


@pytest.mark.parametrize("engine_factory", MID_DAY_BACKENDS, indirect=True)
def test_a_restart_mid_day_resumes_at_the_next_tick_and_places_open_orders_again(
    tmp_path: Path, bars: list[Bar], engine_factory: EngineFactory
) -> None:
    url, schema = engine_factory.url_and_schema()
    engine = make_engine(url, schema=schema)
    engine_factory._made.append((engine, schema))  # dropped at teardown
    out = tmp_path / "before-the-crash.json"
    here = Path(__file__).parent
    args = ", ".join(repr(x) for x in (str(tmp_path), url, schema, str(out)))
    code = (
        f"import sys; sys.path[:0] = [{str(here)!r}, {str(here.parent)!r}]\n"
        f"import test_flows_record as t; t._until_the_crash({args})"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    was = json.loads(out.read_text())
    day, step = dt.date.fromisoformat(was["day"]), was["step"]
    resting, received = was["resting"], was["received"]

    again = _open(tmp_path, engine, bars)
    assert (again.market.today, again.market.step, again.day_open) == (day, step, True)
    assert _facts(again, was["account_id"]) == was["facts"]  # nothing lost, nothing twice
    assert again.chain.block_number() == was["block"]  # nothing reported or sent again
    # the resting order is at the exchange again (its remainder, under its id); the one
    # requested before the crash is placed too
    for oid in (resting, received):
        venue = again.fin.exchange.order(f"E{oid}")
        assert venue.status is OrderStatus.OPEN and venue.quantity == 100
    check_invariants(again)

    ticks = 0
    while again.market.today == day:  # the day goes on from the next tick to its close
        again.tick()
        ticks += 1
        if again.market.today == day:
            assert again.market.step == step + ticks
    assert step + ticks == again.market.ticks_per_day  # every tick once, then the close
    for oid in (resting, received):  # expired (or filled) and released on chain
        assert not again.chain.call(ORDERBOOK, "orders", oid)[4]
        assert again.s.orders[oid].closed
    check_invariants(again)
    with engine.connect() as conn:  # appended, never rewritten
        now = conn.execute(sa.select(record.lines).order_by(record.lines.c.seq)).all()
    assert [list(r) for r in now[: len(was["lines"])]] == was["lines"]
    assert len(now) >= len(was["lines"])
    again.close()


def test_nav_points_keep_one_point_per_trade_date(tmp_path: Path, bars: list[Bar]) -> None:
    """Appended NAV points for the same date: the last one is the day's point."""
    engine = make_engine(f"sqlite:///{tmp_path / 'custody.db'}")
    upgrade(engine)
    s = record.Saved(market_day=dt.date(2016, 1, 4).isoformat())
    pend = record.Pending()
    for nav in (10_000, 10_010):
        pend.nav_points.append({"tranche": "senior", "trade_date": "2016-01-04", "nav_e4": nav})
    pend.nav_points.append({"tranche": "senior", "trade_date": "2016-01-05", "nav_e4": 10_020})
    with engine.begin() as conn:
        record.write(conn, s, pend)
    with engine.connect() as conn:
        loaded = record.read(conn)
    assert loaded is not None
    assert loaded[0].nav_history["senior"] == [("2016-01-04", 10_010), ("2016-01-05", 10_020)]
    engine.dispose()
