"""A crash inside the end of day (issue 14, "a durable record"): the platform dies at each
step of a trading day's close — after the unfilled orders expired, after the pool's epoch
closed (interest distributed, queues executed), after redemption proceeds were collected,
after the payouts were exported, after the bank executed them, after the bank's statement was
imported, after the liabilities snapshot, before the close is committed and before the next
open — and a new `Platform` on the same data dir resumes it. Nothing is done twice and
nothing is lost: the chain (its events, clock and state root), the custody ledger, payouts and
bank, the proofs of liabilities, the statement lines, NAV points and risk snapshots of the
record equal those of a run without the crash.

The close is that of 2015-12-31 (the book of tests/flows/test_flows_tick_crash.py: a levered
borrower, a funded pool) after these requests of its last tick: investor 1 withdraws (a payout
for the day's pain.001) and redeems senior units, investor 2 subscribes junior (both executed
at the epoch's close), the borrower repays (interest for the pool) and requests a sale after
the day's last tick (placed at the next open, also after a restart before the close). The
run goes on to the second tick of 2016-01-04."""

from __future__ import annotations

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
import sqlalchemy as sa
from flows_world import BORROWER, INVESTOR_JUNIOR, INVESTOR_SENIOR, MARKET
from test_flows_platform import check_invariants
from test_flows_tick_crash import DAY, Book, _close, _open, bars, book  # noqa: F401

from crowdleverage.broker.simulated import SimulatedCrash
from crowdleverage.custody.service import payouts
from crowdleverage.flows import record
from crowdleverage.flows.commands import CommandSpec, command_ref
from crowdleverage.flows.model import Tranche
from crowdleverage.flows.platform import Platform
from crowdleverage.market.bars import Bar, read_bars

CLOSE_TICKS = 2  # the tick that closes 2015-12-31 and opens DAY, then DAY's second tick


@dataclass(frozen=True)
class Eve:
    """The book after the requests of the day's last tick (committed, closed)."""

    dir: Path
    book: Book
    proof_epoch: int  # the latest proof-of-liabilities epoch then
    sell_order: int  # the borrower's order requested after the last tick


def _requests(p: Platform, book: Book) -> tuple[int, int]:  # noqa: F811
    """The requests of the day's last tick; returns the latest proof epoch and the
    borrower's order."""
    assert p.day_open and p.market.at_close() and p.paused_reason is None
    p.deposit(INVESTOR_SENIOR, 3_000_000, "CLOSE-0001")
    # a command: its burn reference (the payout id) derives from the key
    spec = CommandSpec(INVESTOR_SENIOR, "close-withdrawal", "h", "/withdrawals")
    p.execute(spec, lambda: (200, p.withdraw(INVESTOR_SENIOR, 1_000_000)))
    units = p.fin.units(INVESTOR_SENIOR, True)
    p.redeem(INVESTOR_SENIOR, Tranche.SENIOR, units // 50)
    p.deposit(INVESTOR_JUNIOR, 2_000_000, "CLOSE-0002")
    p.subscribe(INVESTOR_JUNIOR, Tranche.JUNIOR, 2_000_000)
    acc = p.account(book.account_id)
    p.fund_account(acc.id, 1_000_000, reserve=False)
    p.repay(acc.id, 1_000_000)  # interest first: distributed at the epoch's close
    pos = next(x for x in p.positions(acc) if x["sellable"] >= 100)
    q = p.quote(pos["code"])
    order = p.sell(acc.id, pos["code"], 100, q.limit_up_fen or q.price_fen)
    return p.latest_epoch() or 0, order.id


@pytest.fixture(scope="module")
def eve(tmp_path_factory: pytest.TempPathFactory, book: Book, bars: list[Bar]) -> Eve:  # noqa: F811
    work = tmp_path_factory.mktemp("eve") / "data"
    shutil.copytree(book.dir, work)
    p = _open(work, bars)
    proof_epoch, order = _requests(p, book)
    _close(p)
    return Eve(work, book, proof_epoch, order)


def _run_close(p: Platform) -> None:
    for _ in range(CLOSE_TICKS):
        p.tick()


@dataclass(frozen=True)
class Outcome:
    events: Counter[tuple[str, str, str]]  # (contract, event, args) after the book
    chain: tuple[int, int, str]  # the chain's block, clock and state root
    facts: dict[str, Any]


STATEMENTS = "SELECT statement_id, opening_fen, closing_fen FROM custody_statements ORDER BY 1"
NAV_ROWS = "SELECT tranche, trade_date, nav_e4 FROM flows_nav_points ORDER BY id"
LINE_ROWS = "SELECT user_id, trade_date, kind, amount_fen FROM flows_statement_lines ORDER BY seq"


def _no_at(line: dict[str, Any]) -> dict[str, Any]:
    """A statement line without its wall-clock time."""
    return {k: v for k, v in line.items() if k != "at"}


def _total(p: Platform, epoch: int) -> int:
    root = p.proofs.root(epoch)
    assert root is not None
    return root[1]


def _rows(p: Platform, sql: str) -> list[tuple[Any, ...]]:
    with p.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql)).all()]


def _outcome(p: Platform, eve: Eve) -> Outcome:
    evs = p.chain.events(since=eve.book.seq)
    acc = p.account(eve.book.account_id)
    users = (INVESTOR_SENIOR, INVESTOR_JUNIOR, BORROWER)
    with p.engine.connect() as conn:
        pays = sorted((r.amount_fen, r.status) for r in conn.execute(sa.select(payouts)).all())
    latest = p.latest_epoch() or 0
    bank = p.bank
    facts = {
        "view": asdict(p.account_view(acc)),
        "orders": [(o.id, o.status, o.filled_qty, o.closed) for o in p.orders_of(acc.id)],
        "lines": {u: [_no_at(x) for x in v] for u, v in p.history.items()},
        "wallets": [p.wallet_fen(u) for u in users],
        "holdings": [p.holdings(u) for u in users],
        "nav": {t.value: p.nav_history(t) for t in Tranche},
        "market": (p.market.today, p.market.step, p.day_open),
        # custody: the payouts, the bank and what custody holds there, the statements
        "payouts": pays,
        "bank": (bank.balance_fen, bank.sequence_nb, len(bank.executed_messages), bank.unimported),
        "custody_cash_fen": p.custody.bank_cash_fen(),
        "statements": _rows(p, STATEMENTS),
        # one proof of liabilities per close, with the same totals
        "proofs": [(e, _total(p, e)) for e in range(eve.proof_epoch + 1, latest + 1)],
        # the record: NAV points, risk snapshots and statement lines once each
        "nav_rows": _rows(p, NAV_ROWS),
        "risk_rows": _rows(p, "SELECT trade_date, step FROM flows_risk_snapshots ORDER BY id"),
        "line_rows": _rows(p, LINE_ROWS),
        "reconciliation": (p.last_reconciliation or {}).get("status"),
        "paused": p.paused_reason,
    }
    root = p.chain.state_root()
    return Outcome(
        Counter((e.contract, e.event, repr(sorted(e.args.items()))) for e in evs),
        (p.chain.block_number(), p.chain.block_time(), root),
        facts,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, eve: Eve, bars: list[Bar]) -> Outcome:  # noqa: F811
    """The requests and the close in one process, without a crash or a restart (the crash
    runs restart the eve, a committed tick, before the close: that changes nothing)."""
    work = tmp_path_factory.mktemp("reference") / "data"
    shutil.copytree(eve.book.dir, work)
    p = _open(work, bars)
    assert _requests(p, eve.book) == (eve.proof_epoch, eve.sell_order)
    _run_close(p)
    out = _outcome(p, eve)
    _close(p)
    # what the close does, so that every crash point below has something to cut short
    names = Counter(e for (_c, e, _a) in out.events)
    assert names["EpochClosed"] == 1 and names["InterestDistributed"] == 1
    assert names["Executed"] == 2  # the redemption and the subscription
    assert out.facts["payouts"] and {s for _a, s in out.facts["payouts"]} == {"settled"}
    assert out.facts["nav_rows"][-2:] and out.facts["proofs"]
    assert any(o[0] == eve.sell_order for o in out.facts["orders"])
    return out


_KILL = False  # in a child process: the crash points SIGKILL it instead of raising


def _die(point: str) -> None:
    if _KILL:
        os.kill(os.getpid(), signal.SIGKILL)  # no shutdown of any kind
    raise SimulatedCrash(point)


def _after(obj: Any, name: str, point: str, when: Callable[[Any], bool] = lambda _r: True) -> None:
    """Die right after the first call of `obj.name` (whose result `when` accepts)."""
    real = getattr(obj, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        if when(out):
            _die(point)
        return out

    setattr(obj, name, wrapped)


def crash_after_the_expiry(p: Platform) -> None:
    """The session's close released the unfilled orders on chain; the epoch is still open."""
    real = p.fin.broker.end_day_parts

    def end_day_parts() -> Generator[None, None, int]:
        released = yield from real()
        _die("after the expiry")
        return released

    p.fin.broker.end_day_parts = end_day_parts  # type: ignore[method-assign]


def crash_after_the_epoch(p: Platform) -> None:
    """`TranchePool.close_epoch` mined: interest distributed, the queues executed."""
    real = p.chain.send

    def send(contract: str, fn: str, *args: Any, **kwargs: Any) -> Any:
        tx = real(contract, fn, *args, **kwargs)
        if fn == "close_epoch":
            _die("after the epoch")
        return tx

    p.chain.send = send  # type: ignore[method-assign]


def crash_after_the_collect(p: Platform) -> None:
    """The investor's redemption proceeds are in the wallet (`TranchePool.withdraw`)."""
    _after(p.fin, "collect", "after the collect")


def crash_after_the_export(p: Platform) -> None:
    """Custody marked the day's payouts exported (pain.001); the bank has not seen it."""
    _after(p.custody, "export_payouts", "after the export", lambda data: data is not None)


def crash_after_the_bank(p: Platform) -> None:
    """The bank executed the payment file (in memory, not saved yet)."""
    _after(p.bank, "execute_payment_file", "after the bank")


def crash_after_the_statement(p: Platform) -> None:
    """The bank's statement with the payouts is imported: they are settled in custody."""
    _after(p, "_book_statement", "after the statement")


def crash_after_the_statement_closed(p: Platform) -> None:
    """The bank closed its statement with the payouts (saved as not imported yet)."""
    _after(p, "_close_statement", "after the statement closed")


def crash_after_the_proofs(p: Platform) -> None:
    """The proof-of-liabilities snapshot of the close is written."""
    _after(p, "snapshot_liabilities", "after the proofs")


def crash_before_the_commit(p: Platform) -> None:
    """Reconciled; the record of the close (NAV points, risk snapshot, next day) not saved."""
    _after(p, "reconcile", "before the commit")


def crash_before_the_open(p: Platform) -> None:
    """The close is committed; the next day's open has not begun."""
    real = p.fin.session.open_parts

    def open_parts(*args: Any, **kwargs: Any) -> Any:
        _die("before the open")
        return (yield from real(*args, **kwargs))

    p.fin.session.open_parts = open_parts  # type: ignore[method-assign]


def _at_cut(part: str, n: int = 1) -> Callable[[Platform], None]:
    """Die at the `n`-th cut after a part named `part` of the close (`Platform.last_part`),
    where the platform process's writer would serve queued wallet commands (`tick`); each
    per-user part is one user (`close_part_budget_s` 0)."""

    def crash(p: Platform) -> None:
        p.close_part_budget_s = 0.0
        seen = Counter[str]()

        def between() -> None:
            if p.last_part.startswith("close:"):
                seen[p.last_part] += 1
            if seen[f"close:{part}"] == n:
                _die(f"at the cut after {part} {n}")

        p.between_parts = between

    crash.__name__ = f"crash_at_the_cut_after_{part}_{n}"
    return crash


# every cut of this close: the session's (its expiry: no order of the book was still open on
# the exchange), the epoch, each user's collect and valuation, the payouts, the proofs, the
# reconciliation, and the commit (before the open)
CUTS = [_at_cut("session"), _at_cut("epoch"), _at_cut("collect"), _at_cut("collect", 3),
        _at_cut("payouts:export"), _at_cut("payouts:bank"), _at_cut("payouts:statement"),
        _at_cut("payouts"), _at_cut("liabilities"), _at_cut("liabilities", 2),
        _at_cut("liabilities", 3), _at_cut("proofs"), _at_cut("reconcile"),
        _at_cut("commit")]  # fmt: skip
crash_at_a_liabilities_cut = _at_cut("liabilities", 2)

CRASHES = [crash_after_the_expiry, crash_after_the_epoch, crash_after_the_collect,
           crash_after_the_export, crash_after_the_bank, crash_after_the_statement_closed,
           crash_after_the_statement,
           crash_after_the_proofs, crash_before_the_commit, crash_before_the_open,
           *CUTS]  # fmt: skip


@pytest.fixture
def copy(tmp_path: Path, eve: Eve) -> Iterator[Path]:
    work = tmp_path / "data"
    shutil.copytree(eve.dir, work)
    yield work


@pytest.mark.parametrize("crash", CRASHES, ids=lambda f: f.__name__.removeprefix("crash_"))
def test_a_crash_inside_the_end_of_day_resumes_it_exactly(
    crash: Callable[[Platform], None], copy: Path, eve: Eve, reference: Outcome,
    bars: list[Bar],  # noqa: F811
) -> None:  # fmt: skip
    first = _open(copy, bars)
    crash(first)
    with pytest.raises(SimulatedCrash):
        _run_close(first)
    _close(first)

    _resume_and_check(copy, eve, reference, bars)


def _child(data_dir: str, crash: str) -> None:
    """In a child process: the platform on `data_dir`, killed at the crash point `crash`."""
    global _KILL
    _KILL = True
    p = _open(Path(data_dir), read_bars(MARKET))
    globals()[crash](p)
    _run_close(p)
    raise AssertionError(f"{crash} was not reached")


@pytest.mark.parametrize(
    "crash", ["crash_after_the_epoch", "crash_after_the_bank", "crash_at_a_liabilities_cut"]
)
def test_a_platform_process_killed_inside_the_end_of_day_resumes_it_exactly(
    crash: str, copy: Path, eve: Eve, reference: Outcome, bars: list[Bar],  # noqa: F811
) -> None:  # fmt: skip
    here = Path(__file__).parent
    code = (
        f"import sys; sys.path[:0] = [{str(here)!r}, {str(here.parent)!r}]\n"
        f"import test_flows_close_crash as t; t._child({str(copy)!r}, {crash!r})"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    _resume_and_check(copy, eve, reference, bars)


def _resume_and_check(copy: Path, eve: Eve, reference: Outcome, market: list[Bar]) -> None:
    again = _open(copy, market)
    # (the day's payout is burnt on chain and not yet paid by the bank: supply < bank cash)
    assert again.last_reconciliation and again.last_reconciliation["status"] == "ok"
    while again.market.today < DAY or again.market.step < CLOSE_TICKS - 1:
        again.tick()
    got = _outcome(again, eve)
    check_invariants(again)
    _close(again)

    assert got.facts["market"] == reference.facts["market"]
    # nothing on chain twice (no second epoch, interest or execution), nothing missing
    assert got.events == reference.events
    assert got.chain == reference.chain
    for key in reference.facts:
        assert got.facts[key] == reference.facts[key], key


def test_wallet_commands_between_the_parts_of_the_end_of_day_run_once_across_a_restart(
    copy: Path, eve: Eve, bars: list[Bar],  # noqa: F811
) -> None:  # fmt: skip
    """What the platform process's writer does between the close's parts (`tick`): it serves
    the queued wallet commands (a withdrawal at every cut, a deposit at one). Each commits
    with the day's last tick still the last one committed, so a restart inside the close
    (here at the cut after the reconciliation) closes the day again; every command ran once
    (a retry with its key answers the stored result); a withdrawal before the payouts' part
    left in the day's pain.001 and was paid, one after waits for the next day's file; in the
    proof of liabilities each user's value is the chain's when they were valued, and the
    investor who withdrew after being valued is valued again; custody and chain reconcile."""
    p = _open(copy, bars)
    p.close_part_budget_s = 0.0  # a part per user: a cut between any two valuations
    last = (p.s.market_day, p.market.step)
    done: list[tuple[str, CommandSpec, int]] = []
    order = list(p.s.enrolled)  # the order the close values the users in, one per part
    valued_on: list[dict[int, int]] = []

    def committed() -> tuple[str | None, int | None]:
        with p.engine.connect() as conn:
            loaded = record.read(conn)
        assert loaded is not None
        return loaded[0].market_day, loaded[0].tick_step

    def between() -> None:
        part = p.last_part
        if not part.startswith("close:") or part == "close:commit":
            return
        if part == "close:liabilities":  # a user valued on the chain as it is now
            valued_on.append(p.liabilities())
        if part == "close:proofs":
            epoch = p.latest_epoch()
            assert epoch is not None and epoch > eve.proof_epoch
            now = p.liabilities()
            for k, uid in enumerate(order):
                leaf = p.proofs.prove(epoch, str(uid))["leaf"]["balance_fen"]
                # the investor withdrew after being valued: valued again in the proofs' part
                assert leaf == (now[uid] if uid == INVESTOR_SENIOR else valued_on[k][uid]), uid
        n = len(done)
        spec = CommandSpec(INVESTOR_SENIOR, f"mid-close-{n}", "h", "/withdrawals")
        p.execute(spec, lambda: (200, p.withdraw(INVESTOR_SENIOR, 100 + n)))
        done.append((part, spec, 100 + n))
        if part == "close:epoch":
            dep = CommandSpec(INVESTOR_JUNIOR, "mid-close-deposit", "h", "/custody/deposits")
            p.execute(dep, lambda: (200, p.deposit(INVESTOR_JUNIOR, 5_000, "MIDCLOSE-01")))
        assert committed() == last  # the close is not committed: a restart closes again
        if part == "close:reconcile":
            _die("at the cut after the reconciliation, after a withdrawal")

    p.between_parts = between
    with pytest.raises(SimulatedCrash):
        p.tick()
    _close(p)
    parts = [part for part, _s, _a in done]
    assert parts == ["close:session", "close:epoch", *["close:collect"] * 3,
                     "close:payouts:export", "close:payouts:bank", "close:payouts:statement",
                     "close:payouts",
                     *["close:liabilities"] * 3, "close:proofs", "close:reconcile"]  # fmt: skip

    again = _open(copy, bars)
    assert again.day_open and (again.s.market_day, again.market.step) == last
    again.tick()  # the close again, then the next open
    assert again.market.today == DAY and again.day_open
    # each command once: its withdrawal line, its burn, its payout; a retry replays it
    lines = [x for x in again.history[INVESTOR_SENIOR] if x["kind"] == "withdrawal"]
    for _part, spec, amount in done:
        mine = [x for x in lines if x.get("cmd") == f"{command_ref(spec.owner_id, spec.key):032x}"]
        assert [x["amount_fen"] for x in mine] == [-amount]
        status, _body, replayed = again.execute(spec, lambda: (500, None))
        assert (status, replayed) == (200, True)
    deposits = [x for x in again.history[INVESTOR_JUNIOR] if x.get("reference") == "MIDCLOSE-01"]
    assert len(deposits) == 1
    with again.engine.connect() as conn:
        pays = {r.amount_fen: r.status for r in conn.execute(sa.select(payouts)).all()}
    before_payouts = {a for part, _s, a in done[: parts.index("close:payouts:export")]}
    for _part, _spec, amount in done:
        assert pays[amount] == ("settled" if amount in before_payouts else "requested")
    # one more proof of liabilities for the close, not two
    assert again.latest_epoch() == eve.proof_epoch + 1
    rep = again.reconcile()
    assert rep["status"] == "ok", rep["breaks"]
    # (the payouts requested after the day's file are burnt, not yet paid by the bank)
    waiting = sum(a for a, st in pays.items() if st == "requested")
    assert rep["chain"]["supply_fen"] + waiting == rep["chain"]["custody_cash_fen"]
    _close(again)


@pytest.mark.parametrize("crash", [False, True], ids=["through", "then_a_restart"])
@pytest.mark.parametrize("cut", ["payouts:bank", "payouts:statement"])
def test_a_deposit_between_the_parts_of_the_payouts_imports_each_statement_once(
    cut: str, crash: bool, copy: Path, eve: Eve, reference: Outcome,
    bars: list[Bar],  # noqa: F811
) -> None:  # fmt: skip
    """The payouts leave in parts (`_settle_payouts_parts`); a deposit between two imports
    the bank's statement itself: after the bank executed the day's file, its statement holds
    the payouts and the deposit (the close then has nothing left to close); after the bank
    closed the statement with the payouts, the deposit imports that one first, then its own
    (the close's import finds it done). Either way each payout is settled once, the deposit
    booked and minted once, no statement is left unimported, custody and chain reconcile —
    also when the process dies right after the deposit and closes the day again."""
    p = _open(copy, bars)
    deposited: list[str] = []

    def between() -> None:
        if p.last_part == f"close:{cut}" and not deposited:
            spec = CommandSpec(INVESTOR_JUNIOR, "mid-payouts", "h", "/custody/deposits")
            p.execute(spec, lambda: (200, p.deposit(INVESTOR_JUNIOR, 7_000, "MIDPAY-01")))
            deposited.append(p.last_part)
            if crash:
                _die(f"after a deposit at the cut after {cut}")

    p.between_parts = between
    if crash:
        with pytest.raises(SimulatedCrash):
            _run_close(p)
        _close(p)
        p = _open(copy, bars)
        assert p.bank.unimported is None  # imported (by the deposit, or at the start)
        _run_close(p)
    else:
        _run_close(p)
    assert deposited == [f"close:{cut}"]
    with p.engine.connect() as conn:
        pays = sorted((r.amount_fen, r.status) for r in conn.execute(sa.select(payouts)).all())
    assert pays == reference.facts["payouts"]  # the day's payouts settled, once
    assert p.bank.unimported is None and not p.bank.open_entries
    assert len(p.bank.executed_messages) == reference.facts["bank"][2]  # one file, once
    statements = _rows(p, STATEMENTS)
    assert len({s[0] for s in statements}) == len(statements)
    deposits = [x for x in p.history[INVESTOR_JUNIOR] if x.get("reference") == "MIDPAY-01"]
    assert [x["amount_fen"] for x in deposits] == [7_000]
    # the bank holds the reference's cash and the deposit; custody holds what the bank does
    assert p.bank.balance_fen == reference.facts["bank"][0] + 7_000
    assert p.custody.bank_cash_fen() == reference.facts["custody_cash_fen"] + 7_000
    assert p.wallet_fen(INVESTOR_JUNIOR) == reference.facts["wallets"][1] + 7_000
    rep = p.reconcile()
    assert rep["status"] == "ok", rep["breaks"]
    check_invariants(p)
    _close(p)
