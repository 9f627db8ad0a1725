"""The simulated broker against the real margin engine (embedded chain) and the real December
2015 bars: orders from chain events, fills settled with unique references, restarts."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdleverage.broker.port import BrokerPort
from crowdleverage.broker.simulated import BATCH, FIRST_BATCH, SimulatedBroker, SimulatedCrash
from crowdleverage.chain.codes import code_to_chain, ref_to_bytes32
from crowdleverage.chain.margin import placed_order_id
from crowdleverage.config import SHIPPED_DATA
from crowdleverage.domain.errors import ContractRevert
from crowdleverage.market.bars import read_bars
from crowdleverage.market.exchange import ExchangeConfig, Fill, SimulatedExchange
from crowdleverage.market.replay import TradingDay, intraday_ticks, trading_days
from crowdleverage.oracle.feeder import OracleFeeder, Reporter
from crowdleverage.risk.world import World, open_financing_chain

DATA = SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv"
DAY = dt.date(2015, 12, 31)
CODES = ["000001", "600004", "600406"]
GENESIS = 1_451_350_800  # 2015-12-29 09:00 Asia/Shanghai
YI = 100_000_000 * 100  # 1亿元 in fen
ACTORS = ["investor-senior", "investor-junior", "b-settle", "b-crash1", "b-crash2", "b-down",
          "b-expire", "b-replace", "b-batch", "b-parts", "b-sized"]  # fmt: skip


@pytest.fixture(scope="module")
def day() -> TradingDay:
    bars = read_bars(DATA)
    (d,) = trading_days(bars, DAY, DAY)
    return d


@pytest.fixture(scope="module")
def world(day: TradingDay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    chain = open_financing_chain(
        tmp_path_factory.mktemp("broker-chain"), ACTORS, genesis_time_s=GENESIS
    )
    w = World(chain)
    w.list_securities(CODES)
    w.invest("investor-senior", True, 4 * YI)
    w.invest("investor-junior", False, 1 * YI)
    w.close_epoch()
    w.fund_broker(YI)
    feeder = OracleFeeder(chain, [Reporter(f"reporter{i}") for i in (1, 2, 3)], CODES)
    feeder.open_day(day)
    feeder.on_ticks(intraday_ticks(day.bars[c])[0] for c in CODES)
    yield w
    chain.close()


def buy(world: World, name: str, code: str, qty: int, limit: int) -> int:
    tx = world.chain.send("OrderBook", "request_buy", code_to_chain(code), qty, limit, actor=name)
    return placed_order_id(tx)


def filled_refs(world: World) -> list[bytes]:
    return [e.args["ref"] for e in world.chain.events("OrderBook", "Filled")]


def test_orders_from_events_fill_and_settle_once(world, day, tmp_path: Path):
    who = world.open_borrower("b-settle", 2, 50_000_000)  # 50万 margin, tier 2
    price = day.bars["000001"].open
    oid = buy(world, "b-settle", "000001", 10_000, price + 5)
    exchange = SimulatedExchange()
    exchange.open_day(day)
    broker = SimulatedBroker(world.chain, exchange, tmp_path / "broker.db")
    assert isinstance(broker, BrokerPort)
    assert broker.poll() == 1
    fills = exchange.run_day()
    assert broker.on_fills(fills) == len(fills) > 0
    assert sum(f.quantity for f in fills) == 10_000
    assert world.chain.call("MarginEngine", "positions", who, 1) == 10_000
    assert broker.positions(who) == {"000001": 10_000}
    refs = filled_refs(world)
    assert len(refs) == len(set(refs))
    # the engine's order is complete, and the broker journals it done with its last fill
    # (the day's end does not read it back from the chain)
    assert not world.chain.call("OrderBook", "orders", oid)[4]
    assert broker.order_status(oid) == "done"
    # the certificates match the broker's custody
    assert world.chain.call("ShareCertificates", "total_supply", 1) == sum(
        broker.positions(world.chain.address_of(n)).get("000001", 0) for n in ["b-settle"]
    )
    # polling again finds nothing new; settling again settles nothing
    assert broker.poll() == 0 and broker.settle_pending() == 0
    exchange.close_day()
    broker.close()


def test_crash_after_settle_before_journal_settles_nothing_twice(world, day, tmp_path: Path):
    who = world.open_borrower("b-crash1", 3, 50_000_000)
    oid = buy(world, "b-crash1", "600004", 5_000, day.bars["600004"].band.limit_up_fen)
    exchange = SimulatedExchange(ExchangeConfig(participation_bps=10))  # many small fills
    exchange.open_day(day)
    journal = tmp_path / "broker.db"

    def die(point: str) -> None:
        if point == "after_settle_before_journal":
            raise SimulatedCrash(point)

    first = SimulatedBroker(world.chain, exchange, journal, fail_point=die)
    first.poll()
    fills = exchange.run_day()
    assert len(fills) > 3
    before = len(filled_refs(world))
    with pytest.raises(SimulatedCrash):
        first.on_fills(fills)
    first.close()
    # the first batch (up to 64 fills, in one settle_fills) reached the chain, then death
    assert len(filled_refs(world)) == before + min(len(fills), BATCH)
    mine = [e for e in world.chain.events("OrderBook", "Filled") if e.args["order_id"] == oid]
    assert len({e.tx_hash for e in mine[:BATCH]}) == 1  # one transaction
    second = SimulatedBroker(world.chain, exchange, journal)  # recovers at start-up
    refs = filled_refs(world)
    assert len(refs) == len(set(refs)) == before + len(fills)  # each fill exactly once
    assert world.chain.call("MarginEngine", "positions", who, code_to_chain("600004")) == sum(
        f.quantity for f in fills
    )
    assert all(f.settled for f in second.fills())
    # the fill the chain had before the crash counts: once all are settled the order is done
    assert second.order_status(oid) == "done"
    assert world.chain.call("OrderBook", "fill_count", oid) == len(fills)
    # the crash window again: the first fill journaled pending under its number. The
    # broker finds the chain past that number and settles nothing; sent again as it is, the
    # chain refuses it
    first_fill = fills[0]
    db = sqlite3.connect(journal)
    with db:
        db.execute("UPDATE fills SET status = 'pending' WHERE fill_ref = ?", (first_fill.fill_ref,))
    (seq,) = db.execute(
        "SELECT seq FROM fills WHERE fill_ref = ?", (first_fill.fill_ref,)
    ).fetchone()
    db.close()
    assert seq == 0
    assert second.settle_pending() == 0
    assert all(f.settled for f in second.fills())
    with pytest.raises(ContractRevert, match="orderbook: fill already settled"):
        world.chain.send(
            "OrderBook",
            "settle_fill",
            oid,
            seq,
            first_fill.quantity,
            first_fill.price_fen,
            first_fill.fees.total_fen,
            ref_to_bytes32(first_fill.fill_ref),
            actor="broker",
        )
    assert world.chain.call("MarginEngine", "positions", who, code_to_chain("600004")) == sum(
        f.quantity for f in fills
    )
    exchange.close_day()
    second.close()


def test_crash_before_the_cursor_is_saved_places_each_order_once(world, day, tmp_path: Path):
    who = world.open_borrower("b-crash2", 1, 50_000_000)
    buy(world, "b-crash2", "600406", 1_000, day.bars["600406"].band.limit_up_fen)
    exchange = SimulatedExchange()
    exchange.open_day(day)
    journal = tmp_path / "broker.db"

    def die(point: str) -> None:
        if point == "after_orders_before_cursor":
            raise SimulatedCrash(point)

    first = SimulatedBroker(world.chain, exchange, journal, fail_point=die)
    with pytest.raises(SimulatedCrash):
        first.poll()
    first.close()  # the open journal transaction dies with the process
    second = SimulatedBroker(world.chain, exchange, journal)
    second.poll()
    second.poll()
    assert len(exchange.open_orders()) == 1
    second.on_fills(exchange.run_day())
    assert world.chain.call("MarginEngine", "positions", who, code_to_chain("600406")) == 1_000
    exchange.close_day()
    second.close()


def test_fills_made_while_the_broker_was_down_are_not_lost(world, day, tmp_path: Path):
    who = world.open_borrower("b-down", 2, 50_000_000)
    buy(world, "b-down", "000001", 3_000, day.bars["000001"].band.limit_up_fen)
    exchange = SimulatedExchange()
    exchange.open_day(day)
    journal = tmp_path / "broker.db"
    first = SimulatedBroker(world.chain, exchange, journal)
    first.poll()
    first.close()  # the broker dies; the exchange keeps trading
    fills = exchange.run_day()
    assert fills
    second = SimulatedBroker(world.chain, exchange, journal)
    assert {f.fill_ref for f in second.fills()} == {f.fill_ref for f in fills}
    assert world.chain.call("MarginEngine", "positions", who, 1) == 3_000
    exchange.close_day()
    second.close()


def test_unfilled_orders_are_released_at_the_close(world, day, tmp_path: Path):
    who = world.open_borrower("b-expire", 2, 50_000_000)
    low = day.bars["000001"].low
    oid = buy(world, "b-expire", "000001", 1_000, low - 1)  # below the day's low: no fill
    pending = world.account(who)["pending_fen"]
    assert pending > 0
    exchange = SimulatedExchange()
    exchange.open_day(day)
    broker = SimulatedBroker(world.chain, exchange, tmp_path / "broker.db")
    broker.poll()
    assert exchange.run_day() == []
    exchange.close_day()
    assert broker.end_day() == 1
    assert not world.chain.call("OrderBook", "orders", oid)[4]
    assert world.account(who)["pending_fen"] == 0
    assert broker.order_status(oid) == "expired"
    assert broker.end_day() == 0  # idempotent
    broker.close()


def test_a_session_lost_mid_day_places_the_remainder_again(world, day, tmp_path: Path):
    """The platform restarts mid-day: the exchange's book is gone with the process. The
    broker places each open order again for its unfilled remainder under the same venue id;
    the new fills' references continue after the old ones, so none is taken for settled."""
    who = world.open_borrower("b-replace", 3, 50_000_000)
    code = "600004"
    oid = buy(world, "b-replace", code, 5_000, day.bars[code].band.limit_up_fen)
    journal = tmp_path / "broker.db"
    first_session = SimulatedExchange(ExchangeConfig(participation_bps=10))  # small fills
    first_session.open_day(day)
    first = SimulatedBroker(world.chain, first_session, journal)
    first.poll()
    ticks = intraday_ticks(day.bars[code])
    early = first.on_fills(first_session.on_ticks([ticks[0]]))
    held = world.chain.call("MarginEngine", "positions", who, code_to_chain(code))
    assert early > 0 and 0 < held < 5_000  # partly filled when the process dies
    first.close()

    session = SimulatedExchange(ExchangeConfig(participation_bps=10))
    session.open_day(day)
    second = SimulatedBroker(world.chain, session, journal)
    assert second.replace_open() == 1
    venue = session.order(f"E{oid}")
    assert venue.quantity == 5_000 - held
    rest = [t for t in ticks[1:]]
    for t in rest:
        second.on_fills(session.on_ticks([t]))
    refs = filled_refs(world)
    assert len(refs) == len(set(refs))
    assert world.chain.call("MarginEngine", "positions", who, code_to_chain(code)) == 5_000
    assert all(f.settled for f in second.fills())
    session.close_day()
    second.close()


def test_a_batch_the_chain_refuses_settles_its_other_fills_one_at_a_time(world, day, tmp_path):
    """A fill the chain refuses (here a quantity above its order) reverts its whole
    settle_fills; the broker then settles the batch fill by fill: that fill alone is
    journaled refused, the others settle under consecutive numbers."""
    who = world.open_borrower("b-batch", 2, 50_000_000)
    oid = buy(world, "b-batch", "600004", 5_000, day.bars["600004"].band.limit_up_fen)
    exchange = SimulatedExchange(ExchangeConfig(participation_bps=10))  # several fills
    exchange.open_day(day)
    broker = SimulatedBroker(world.chain, exchange, tmp_path / "broker.db")
    broker.poll()
    fills = [f for f in exchange.run_day() if f.order_id == f"E{oid}"]
    assert len(fills) > 1
    f = fills[0]
    bogus = Fill(f"{f.fill_ref}-bogus", f.order_id, f.account, f.code, f.side, 1_000_000,
                 f.price_fen, f.fees, f.at, f.at_limit)  # fmt: skip
    assert broker.on_fills([bogus, *fills]) == len(fills)
    assert broker.refused() == [(bogus.fill_ref, "margin: fill exceeds order")]
    assert world.chain.call("OrderBook", "fill_count", oid) == len(fills)
    held = world.chain.call("MarginEngine", "positions", who, code_to_chain("600004"))
    assert held == sum(x.quantity for x in fills)
    exchange.close_day()
    broker.close()


def test_a_part_budget_settles_in_smaller_batches_and_a_restart_between_two_loses_nothing(
    world, day, tmp_path: Path
):
    """With a part budget of 0 (the platform process's writer cuts a tick's parts to a CPU
    budget: here one fill a batch) `settle_parts` yields after each fill, each in its own
    transaction; a process that dies between two batches leaves the rest pending, and the
    broker started again settles them, each fill exactly once under its number."""
    who = world.open_borrower("b-parts", 3, 50_000_000)
    oid = buy(world, "b-parts", "600004", 5_000, day.bars["600004"].band.limit_up_fen)
    exchange = SimulatedExchange(ExchangeConfig(participation_bps=10))  # many small fills
    exchange.open_day(day)
    journal = tmp_path / "broker.db"
    first = SimulatedBroker(world.chain, exchange, journal)
    first.part_budget_s = 0.0
    first.poll()
    fills = [f for f in exchange.run_day() if f.order_id == f"E{oid}"]
    assert len(fills) > 3
    first.journal(fills)
    parts = first.settle_parts()
    next(parts)
    next(parts)  # two batches settled; the process dies before the third
    parts.close()
    mine = [e for e in world.chain.events("OrderBook", "Filled") if e.args["order_id"] == oid]
    assert len(mine) == 2 and len({e.tx_hash for e in mine}) == 2  # a transaction each
    assert sum(not f.settled for f in first.fills()) == len(fills) - 2
    first.close()
    second = SimulatedBroker(world.chain, exchange, journal)  # recovers at start-up
    mine = [e for e in world.chain.events("OrderBook", "Filled") if e.args["order_id"] == oid]
    refs = sorted("0x" + ref_to_bytes32(f.fill_ref).hex() for f in fills)
    assert sorted(e.args["ref"] for e in mine) == refs  # each fill once
    assert world.chain.call("OrderBook", "fill_count", oid) == len(fills)
    assert world.chain.call("MarginEngine", "positions", who, code_to_chain("600004")) == sum(
        f.quantity for f in fills
    )
    assert all(f.settled for f in second.fills()) and second.order_status(oid) == "done"
    exchange.close_day()
    second.close()


def test_a_part_budget_sizes_the_batches_from_the_cpu_per_fill(world, day, tmp_path: Path):
    """A broker that has not timed a batch sends `FIRST_BATCH` fills, then as many as its CPU
    per fill says fit in the budget (here a budget no batch comes near: up to `BATCH`)."""
    world.open_borrower("b-sized", 3, 50_000_000)
    oid = buy(world, "b-sized", "600004", 5_000, day.bars["600004"].band.limit_up_fen)
    exchange = SimulatedExchange(ExchangeConfig(participation_bps=10))
    exchange.open_day(day)
    broker = SimulatedBroker(world.chain, exchange, tmp_path / "broker.db")
    broker.part_budget_s = 1_000.0
    broker.poll()
    fills = [f for f in exchange.run_day() if f.order_id == f"E{oid}"]
    assert FIRST_BATCH < len(fills) <= FIRST_BATCH + BATCH
    assert broker.on_fills(fills) == len(fills)
    mine = [e for e in world.chain.events("OrderBook", "Filled") if e.args["order_id"] == oid]
    txs = list(dict.fromkeys(e.tx_hash for e in mine))
    assert [sum(e.tx_hash == t for e in mine) for t in txs] == [
        FIRST_BATCH,
        len(fills) - FIRST_BATCH,
    ]
    exchange.close_day()
    broker.close()


def test_a_journal_of_the_previous_release_opens_with_the_new_columns(world, tmp_path: Path):
    """A journal written before fill numbers and event order (no `fills.seq`, no
    `orders.event_seq`) gets both columns at start-up; its rows keep NULL there."""
    journal = tmp_path / "broker.db"
    db = sqlite3.connect(journal)
    with db:
        db.executescript(
            """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE orders (
                order_id INTEGER PRIMARY KEY, account TEXT NOT NULL, code TEXT NOT NULL,
                side TEXT NOT NULL, qty INTEGER NOT NULL, limit_fen INTEGER NOT NULL,
                liquidation INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT
            );
            CREATE TABLE fills (
                n INTEGER PRIMARY KEY AUTOINCREMENT, fill_ref TEXT NOT NULL UNIQUE,
                order_id INTEGER NOT NULL, account TEXT NOT NULL, code TEXT NOT NULL,
                side TEXT NOT NULL, qty INTEGER NOT NULL, price_fen INTEGER NOT NULL,
                fee_fen INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT
            );
            INSERT INTO orders VALUES (7, '0xabc', '000001', 'BUY', 100, 1000, 0, 'done', NULL);
            INSERT INTO fills(fill_ref, order_id, account, code, side, qty, price_fen, fee_fen,
                              status) VALUES ('E7#1', 7, '0xabc', '000001', 'BUY', 100, 1000, 5,
                                              'settled');
            """
        )
    db.close()
    exchange = SimulatedExchange()
    broker = SimulatedBroker(world.chain, exchange, journal)
    assert [(f.fill_ref, f.settled) for f in broker.fills()] == [("E7#1", True)]
    assert broker.order_status(7) == "done"
    broker.close()
    db = sqlite3.connect(journal)
    assert "seq" in {r[1] for r in db.execute("PRAGMA table_info(fills)")}
    assert "event_seq" in {r[1] for r in db.execute("PRAGMA table_info(orders)")}
    db.close()
