"""A crash inside a tick (issue 14, "a durable record"): the platform dies in the middle of a
tick — after some of the oracle's reports, after the keeper acted, while the broker settles the
tick's fills, before the tick is committed, or in the middle of a day's open — and a new
`Platform` on the same data dir resumes it. Nothing done on chain is done again and nothing is
lost: the chain's events of the day (every oracle report, keeper action and fill) are exactly
those of a run without the crash, and so is the chain's state and the platform's record.

The day is 2016-01-04 of the shipped sample: at its fifth tick (step 4) the keeper liquidates
a tier-3 account below its NAV stop, the liquidation sells fill and the liquidation ends. The
book up to the close of 2015-12-31 is built once; each case starts from a copy of that data
dir. A "crash" is an exception raised at the point, then the process's objects dropped after
`Platform.close()` (which saves nothing), as in tests/flows/test_flows_record.py; once, the
platform runs in a child process SIGKILLed at the point. One crash comes after the record was
committed between two parts of the tick (where the platform process runs wallet commands):
the record names the tick before as the last committed one, so the tick resumes exactly."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
from flows_world import BORROWER, MARKET, START, fund_pool, lever_up
from test_flows_platform import check_invariants

from crowdleverage.broker.simulated import SimulatedCrash
from crowdleverage.chain.codes import code_from_chain
from crowdleverage.config import Settings
from crowdleverage.custody.db import make_engine
from crowdleverage.flows.market import MarketFeed
from crowdleverage.flows.platform import Platform
from crowdleverage.market.bars import Bar, read_bars
from crowdleverage.market.replay import intraday_ticks
from crowdleverage.oracle.feeder import session_index

DAY = dt.date(2016, 1, 4)
KEEPER_STEP = 4  # the tick of DAY at which the keeper starts the liquidation
KEEPER_EVENTS = ("MarginWarning", "ToppedUp", "LiquidationStarted", "LiquidationEnded",
                 "KeeperSkipped")  # fmt: skip


def _open(data_dir: Path, bars: list[Bar]) -> Platform:
    engine = make_engine(f"sqlite:///{data_dir / 'platform.db'}")
    p = Platform(Settings(data_dir=data_dir), engine=engine, market=MarketFeed(bars, start=START))
    for uid, role in ((1, "investor"), (2, "investor"), (BORROWER, "borrower")):
        p.enroll(uid, role)
    return p


def _close(p: Platform) -> None:
    p.close()
    p.engine.dispose()


@dataclass(frozen=True)
class Book:
    dir: Path  # the data dir at the close of the day before DAY (committed, closed)
    account_id: int
    seq: int  # the chain's last event seq then


@dataclass(frozen=True)
class Outcome:
    events: Counter[tuple[str, str, str]]  # (contract, event, args) of the chain after the book
    reports: Counter[tuple[str, str]]  # (code, reporter actor) → reports on DAY
    codes: list[str]  # the securities the oracle is fed
    keeper: list[tuple[str, str]]  # (event, account) of the keeper's actions, in order
    state_root: str
    facts: Any


def _finish_day(p: Platform) -> None:
    while p.market.today <= DAY:
        p.tick()


def _outcome(p: Platform, book: Book) -> Outcome:
    evs = p.chain.events(since=book.seq)
    acc = p.account(book.account_id)
    facts = {
        "view": asdict(p.account_view(acc)),
        "positions": [(x["code"], x["quantity"], x["sellable"]) for x in p.positions(acc)],
        "orders": [
            (o.id, o.status, o.filled_qty, o.filled_value_fen, o.fees_fen, o.liquidation)
            for o in p.orders_of(book.account_id)
        ],
        # the statement lines without their wall-clock time
        "lines": {
            u: [{k: v for k, v in x.items() if k != "at"} for x in v] for u, v in p.history.items()
        },
        "wallets": [p.wallet_fen(u) for u in (1, 2, BORROWER)],
        "market": (p.market.today, p.market.step, p.day_open),
    }
    index = session_index(DAY)
    actors = {p.chain.address_of(r).lower(): r for r in ("reporter1", "reporter2", "reporter3")}
    return Outcome(
        Counter((e.contract, e.event, repr(sorted(e.args.items()))) for e in evs),
        Counter(
            (code_from_chain(int(e.args["code"])), actors[str(e.args["reporter"]).lower()])
            for e in evs
            if e.event == "PriceReported" and int(e.args["day"]) == index
        ),
        list(p.codes),
        [(e.event, str(e.args["account"])) for e in evs if e.event in KEEPER_EVENTS],
        p.chain.state_root(),
        facts,
    )


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return read_bars(MARKET)


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory, bars: list[Bar]) -> Book:
    work = tmp_path_factory.mktemp("book")
    p = _open(work, bars)
    fund_pool(p, 800_000_000, 300_000_000)
    p.deposit(BORROWER, 60_000_000, "BORROWER-0001")
    acc = p.open_margin_account(BORROWER, 3, 3)
    p.fund_account(acc.id, 50_000_000, reserve=False)
    p.fund_account(acc.id, 2_000_000, reserve=True)
    lever_up(p, acc.id, 50_000_000)
    while not p.market.at_close() or p.market.today < DAY - dt.timedelta(days=4):
        p.tick()  # up to the last tick of 2015-12-31 (the next tick closes it, opens DAY)
    assert p.market.today == dt.date(2015, 12, 31) and p.market.at_close()
    seq = p.chain.events()[-1].seq
    _close(p)
    return Book(work, acc.id, seq)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, book: Book, bars: list[Bar]) -> Outcome:
    """DAY without a crash (from a copy of the book: a restart at a committed tick, which the
    crash runs make too)."""
    work = tmp_path_factory.mktemp("reference") / "data"
    shutil.copytree(book.dir, work)
    p = _open(work, bars)
    _finish_day(p)
    out = _outcome(p, book)
    _close(p)
    return out


_KILL = False  # in a child process: the crash points SIGKILL it instead of raising


def _die(point: str) -> None:
    if _KILL:
        os.kill(os.getpid(), signal.SIGKILL)  # no shutdown of any kind
    raise SimulatedCrash(point)


def _in_step(p: Platform, step: int) -> bool:
    return p.market.today == DAY and p.market.step == step and p.day_open


def _after_reports(p: Platform, when: Callable[[], bool], n: int = 2) -> None:
    """Die after the `n`th reporter's batches of the tick `when` names."""
    real = p.fin.feeder._report
    done = [0]

    def report(*args: Any) -> int:
        landed = real(*args)
        if when():
            done[0] += 1
            if done[0] == n:
                _die("after some reports")
        return landed

    p.fin.feeder._report = report  # type: ignore[method-assign]


def crash_after_some_reports(p: Platform) -> None:
    _after_reports(p, lambda: _in_step(p, KEEPER_STEP))


def crash_after_the_keeper(p: Platform) -> None:
    real = p.fin.keeper.on_tick_parts

    def on_tick_parts(*args: Any) -> Generator[None, None, int]:
        acted = yield from real(*args)
        if _in_step(p, KEEPER_STEP):
            assert acted, "the keeper acts at this tick"
            _die("after the keeper")
        return acted

    p.fin.keeper.on_tick_parts = on_tick_parts  # type: ignore[method-assign]


def crash_while_settling(p: Platform) -> None:
    def fail(point: str) -> None:
        if point == "after_settle_before_journal" and _in_step(p, KEEPER_STEP):
            _die(point)

    p.fin.broker._fail = fail


def crash_before_the_commit(p: Platform) -> None:
    real = p.save

    def save(*args: Any, **kwargs: Any) -> None:
        if _in_step(p, KEEPER_STEP):
            _die("before the tick is committed")
        real(*args, **kwargs)

    p.save = save  # type: ignore[method-assign]


def crash_in_the_open(p: Platform) -> None:
    """After two reporters reported DAY's first tick at its open (the day's bands are set)."""
    _after_reports(p, lambda: p.market.today == DAY and not p.day_open)


def crash_in_the_first_step(p: Platform) -> None:
    """After the open, in the first step: the keeper's follow-up of a new session records the
    NAV-stop references, then the process dies."""
    real = p.fin.keeper.follow_up_parts

    def follow_up_parts(accounts: Any, *, new_session: bool) -> Generator[None, None, int]:
        n = yield from real(accounts, new_session=new_session)
        if new_session and p.market.today == DAY:
            _die("in the first step")
        return n

    p.fin.keeper.follow_up_parts = follow_up_parts  # type: ignore[method-assign]


def crash_after_a_commit_between_the_parts(p: Platform) -> None:
    """The platform process's writer runs wallet commands between the parts of a tick
    (`Platform.between_parts`), and each commits the record: after the keeper acted, the
    record is committed (as a command's commit does) and the process dies."""
    parts = [0]

    def between() -> None:
        if _in_step(p, KEEPER_STEP):
            parts[0] += 1
            p.save()
            # after the first and the second reporter, after the prices, after the keeper
            if parts[0] == 4:
                _die("after a commit between the tick's parts")

    p.between_parts = between


def _commit_in_the_open(n: int, what: str) -> Callable[[Platform], None]:
    def crash(p: Platform) -> None:
        """The same between the parts of the tick that closes the day before DAY and opens
        DAY: at each cut after the close's commit (the close's last part), then of DAY's
        open (after the oracle's day, after the regime and liquidity, after the orders and
        the refresh, after the first and the second reporter's prices of the first tick,
        after its last reporter's and the monitor's) the record is committed; at the `n`-th
        the process dies."""
        parts = [0]

        def between() -> None:
            if p.market.today == DAY and not p.day_open:
                parts[0] += 1
                p.save()
                if parts[0] == n:
                    _die(f"after a commit between the parts of the open ({what})")

        p.between_parts = between

    crash.__name__ = f"crash_after_a_commit_in_the_open_{what}"
    return crash


crash_after_a_commit_in_the_open = _commit_in_the_open(7, "after_it")


CRASHES = [crash_after_some_reports, crash_after_the_keeper, crash_while_settling,
           crash_before_the_commit, crash_in_the_open, crash_in_the_first_step,
           crash_after_a_commit_between_the_parts, crash_after_a_commit_in_the_open,
           _commit_in_the_open(2, "oracle_day"), _commit_in_the_open(4, "refresh"),
           _commit_in_the_open(6, "two_reporters")]  # fmt: skip


@pytest.fixture
def copy(tmp_path: Path, book: Book) -> Iterator[Path]:
    work = tmp_path / "data"
    shutil.copytree(book.dir, work)
    yield work


@pytest.mark.parametrize("crash", CRASHES, ids=lambda f: f.__name__.removeprefix("crash_"))
def test_a_crash_inside_a_tick_resumes_it_exactly(
    crash: Callable[[Platform], None], copy: Path, book: Book, reference: Outcome,
    bars: list[Bar],
) -> None:  # fmt: skip
    first = _open(copy, bars)
    crash(first)
    with pytest.raises(SimulatedCrash):
        _finish_day(first)
    _close(first)

    _resume_and_check(copy, book, reference, bars)


def _child(data_dir: str, crash: str) -> None:
    """In a child process: the platform on `data_dir`, killed at the crash point `crash`."""
    global _KILL
    _KILL = True
    p = _open(Path(data_dir), read_bars(MARKET))
    globals()[crash](p)
    _finish_day(p)
    raise AssertionError(f"{crash} was not reached")


@pytest.mark.parametrize("crash", ["crash_after_some_reports"])
def test_a_platform_process_killed_inside_a_tick_resumes_it_exactly(
    crash: str, copy: Path, book: Book, reference: Outcome, bars: list[Bar]
) -> None:
    here = Path(__file__).parent
    code = (
        f"import sys; sys.path[:0] = [{str(here)!r}, {str(here.parent)!r}]\n"
        f"import test_flows_tick_crash as t; t._child({str(copy)!r}, {crash!r})"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    _resume_and_check(copy, book, reference, bars)


def _resume_and_check(copy: Path, book: Book, reference: Outcome, bars: list[Bar]) -> None:
    again = _open(copy, bars)
    check_invariants(again)
    _finish_day(again)
    got = _outcome(again, book)
    check_invariants(again)
    _close(again)

    # every oracle report of the day once: each watched code, from each reporter, once a tick
    feed = MarketFeed(bars, start=START)
    feed.seek(DAY, 0)
    day = feed.days[feed.day_index]
    want = Counter()
    for code in reference.codes:
        bar = day.bars.get(code)
        if bar is not None and not bar.halted and not bar.is_index:
            for reporter in ("reporter1", "reporter2", "reporter3"):
                want[(code, reporter)] = len(intraday_ticks(bar, feed.ticks_per_day))
    assert got.reports == reference.reports == want
    # the keeper's actions once each, in the reference's order, and nothing else on chain
    assert got.keeper == reference.keeper and got.keeper
    assert got.events == reference.events
    assert got.state_root == reference.state_root
    assert got.facts == reference.facts  # the record agrees with the chain as before


# ── a tick cut to a CPU budget (the platform process's writer: `tick_part_budget_s`) ──────


def _trades(o: Outcome) -> tuple[Any, ...]:
    """What a tick cut into smaller batches must do as the whole tick did: the same fills
    (order, number, quantity, price, fee, reference), keeper actions, orders and positions
    (more transactions mine more blocks: interest differs by their seconds, not trades)."""
    fills = Counter(k for k in o.events if k[1] in ("Filled", "OrderClosed"))
    return fills, o.keeper, o.facts["orders"], o.facts["positions"], o.facts["market"]


def _cut_to_one(p: Platform, die_at: int | None = None) -> list[tuple[int, str]]:
    """A budget of 0 (a fill a batch, a keeper action a transaction, a part each) with the
    writer's hook: the cuts of DAY, (step, the part before), recorded; at the `die_at`-th
    the process dies."""
    p.tick_part_budget_s = 0.0
    cuts: list[tuple[int, str]] = []

    def between() -> None:
        if p.market.today == DAY:
            cuts.append((p.market.step, p.last_part))
            if len(cuts) == die_at:
                _die("between two batches of fills")

    p.between_parts = between
    return cuts


@dataclass(frozen=True)
class CutRun:
    cuts: list[tuple[int, str]]
    outcome: Outcome


@pytest.fixture(scope="module")
def cut_to_one(tmp_path_factory: pytest.TempPathFactory, book: Book, bars: list[Bar]) -> CutRun:
    work = tmp_path_factory.mktemp("cut") / "data"
    shutil.copytree(book.dir, work)
    p = _open(work, bars)
    cuts = _cut_to_one(p)
    _finish_day(p)
    out = _outcome(p, book)
    check_invariants(p)
    _close(p)
    return CutRun(cuts, out)


def test_a_tick_cut_to_one_fill_and_one_keeper_action_a_part_trades_as_the_whole_tick(
    cut_to_one: CutRun, reference: Outcome
) -> None:
    assert _trades(cut_to_one.outcome) == _trades(reference)
    assert cut_to_one.outcome.reports == reference.reports
    # a tick whose fills settled in several batches, a cut between each two
    settles = Counter(c for c in cut_to_one.cuts if c[1] == "step:settle")
    assert max(settles.values()) >= 2


def test_a_crash_between_two_batches_of_fills_settles_the_rest_once(
    copy: Path, cut_to_one: CutRun, reference: Outcome, bars: list[Bar], book: Book
) -> None:
    cuts = cut_to_one.cuts
    at = next(
        i for i in range(len(cuts) - 1) if cuts[i] == cuts[i + 1] == (cuts[i][0], "step:settle")
    )
    first = _open(copy, bars)
    _cut_to_one(first, die_at=at + 1)  # after the first batch of that tick's fills
    with pytest.raises(SimulatedCrash):
        _finish_day(first)
    _close(first)

    again = _open(copy, bars)  # the broker settles the rest at start-up, the tick resumes
    check_invariants(again)
    _finish_day(again)
    got = _outcome(again, book)
    check_invariants(again)
    _close(again)
    assert _trades(got) == _trades(reference)  # each fill once, nothing lost
