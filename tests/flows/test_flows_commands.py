"""Exactly-once commands under faults (issue 14): a withdrawal, a deposit, a subscription, a
buy and a repay are each killed at every step — before the chain call, after it, after the
ledger write, before the command's commit, after it (the response lost) — the platform is
restarted from its data dir (the killed process's memory is gone), and the client retries with
the same key. The wallet, the statement, the custody ledger and the chain moved exactly once.

The embedded chain and SQLite are real; "kill" is an exception no handler catches
(BaseException) followed by a new `Platform` on the same data dir and database."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flows_world import (
    BORROWER,
    INVESTOR_SENIOR,
    MARKET,
    custody_engine,
    fund_pool,
    lever_up,
    open_platform,
)

from crowdleverage.chain.margin import ORDERBOOK
from crowdleverage.custody.db import group_commit
from crowdleverage.custody.service import payouts
from crowdleverage.flows.chain_financing import ENGINE, POOL
from crowdleverage.flows.commands import CommandSpec, CommandStore
from crowdleverage.flows.model import Tranche
from crowdleverage.flows.platform import Platform
from crowdleverage.market.bars import read_bars


class Kill(BaseException):
    """The process dies here: no handler runs."""


@dataclass
class Holder:
    p: Platform
    data_dir: Path
    engine: sa.Engine
    account_id: int
    code: str
    code2: str  # the buys inside group commits: the first code's concentration limit

    def restart(self) -> None:
        self.p.close()  # what a killed process leaves: nothing saved in between
        self.p = _open(self.data_dir, self.engine)


_bars: list[Any] = []


def _open(data_dir: Path, engine: sa.Engine) -> Platform:
    if not _bars:
        _bars.extend(read_bars(MARKET))
    return open_platform(data_dir, engine, _bars)


@pytest.fixture(scope="module", params=["sqlite"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Holder]:
    data_dir = tmp_path_factory.mktemp("commands")
    with custody_engine(request, data_dir) as engine:
        p = _open(data_dir, engine)
        fund_pool(p, 50_000_000, 20_000_000)
        p.deposit(BORROWER, 5_000_000, "BORROWER-0001")
        p.deposit(INVESTOR_SENIOR, 1_000_000, "SENIOR-0002")
        acc = p.open_margin_account(BORROWER, 2, 2)
        p.fund_account(acc.id, 4_000_000, reserve=False)
        lever_up(p, acc.id, 4_000_000, n=3)  # 3 × 38% of the equity: some of it borrowed
        p.fund_account(acc.id, 500_000, reserve=False)  # cash for the buys and repays below
        code, code2 = [c for c in p.codes if not p.quote(c).halted][:2]
        assert p.fin.account(BORROWER).debt_fen > 0
        h = Holder(p, data_dir, engine, acc.id, code, code2)
        yield h
        h.p.close()


_keys = itertools.count(1)


def _run(h: Holder, key: str, name: str, fn: Callable[[Platform], Any]) -> tuple[int, Any, bool]:
    spec = CommandSpec(BORROWER if name in ("buy", "repay") else INVESTOR_SENIOR, key,
                       f"hash-{name}", f"/test/{name}")  # fmt: skip
    return h.p.execute(spec, lambda: (200, {"result": repr(fn(h.p))[:60]}))


def _facts(h: Holder, name: str) -> dict[str, int]:
    """What one command of `name` moves, read from the chain, the ledger and the record."""
    p = h.p
    uid = BORROWER if name in ("buy", "repay") else INVESTOR_SENIOR
    who = p.fin.address(uid)
    with p.engine.connect() as conn:
        n_payouts = conn.execute(sa.select(sa.func.count()).select_from(payouts)).scalar_one()
    view = p.fin.account(BORROWER)
    return {
        "wallet": p.wallet_fen(uid),
        "custody": p.custody.investor_balances().get(f"U{uid:06d}", 0),
        "lines": len(p.history.get(uid, [])),
        "payouts": int(n_payouts),
        "queued": int(p.chain.call(POOL, "queued", 3, who)),
        "orders": len(p.orders_of(h.account_id)),
        "requested": len(p.chain.events(ORDERBOOK, "OrderRequested")),
        "principal": view.principal_fen,
        "repaid": len(p.chain.events(ENGINE, "Repaid")),
        "cash": view.cash_fen,
        "pending": view.pending_fen,
    }


def _deposit(reference: str) -> Callable[[Platform], Any]:
    return lambda p: p.deposit(INVESTOR_SENIOR, 11, reference)


USE_CASES: dict[str, tuple[Callable[[Holder], Callable[[Platform], Any]], dict[str, int]]] = {
    "withdraw": (lambda h: lambda p: p.withdraw(INVESTOR_SENIOR, 7),
                 {"wallet": -7, "custody": 0, "lines": 1, "payouts": 1}),
    "deposit": (lambda h: _deposit(f"DEP-{next(_keys):06d}"),
                {"wallet": 11, "custody": 11, "lines": 1}),
    "subscribe": (lambda h: lambda p: p.subscribe(INVESTOR_SENIOR, Tranche.SENIOR, 13),
                  {"wallet": -13, "custody": -13, "lines": 1, "queued": 13}),
    "buy": (lambda h: lambda p: p.buy(h.account_id, h.code, 100, p.quote(h.code).limit_down_fen),
            {"orders": 1, "requested": 1}),
    "repay": (lambda h: lambda p: p.repay(h.account_id, 17),
              {"cash": -17, "repaid": 1, "lines": 1}),
}  # fmt: skip

# where the kill lands: (object to patch, attribute, before or after the original call)
POINTS = ["before_chain", "after_chain", "after_ledger", "before_commit", "after_commit"]


def _inject(h: Holder, name: str, point: str, mp: pytest.MonkeyPatch) -> None:
    p = h.p
    if point in ("before_chain", "after_chain"):
        target: tuple[Any, str] = (p.chain, "send")
        wanted = {"withdraw": "burn", "deposit": "mint", "subscribe": "subscribe",
                  "buy": "request_buy", "repay": "repay"}[name]  # fmt: skip
    elif point == "after_ledger":
        target, wanted = (p.mirror, "sync"), ""  # every use case posts to the ledger here
        if name in ("withdraw", "deposit"):
            target = (p.ledger, "create_transfers")
    else:
        target, wanted = (CommandStore, "finish"), ""
    obj, attr = target
    original = getattr(obj, attr)

    def killed(*args: Any, **kwargs: Any) -> Any:
        hit = not wanted or (len(args) > 1 and args[1] == wanted)
        if hit and point in ("before_chain", "before_commit"):
            raise Kill(point)
        out = original(*args, **kwargs)
        if hit and point in ("after_chain", "after_ledger"):
            raise Kill(point)
        return out

    mp.setattr(obj, attr, staticmethod(killed) if obj is CommandStore else killed)


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("name", list(USE_CASES))
def test_a_killed_command_retried_with_its_key_moves_money_once(
    world: Holder, name: str, point: str
) -> None:
    _kill_and_retry(world, name, point)


# the same on PostgreSQL, for the steps whose recovery differs (ledger reference, chain witness)
@pytest.mark.parametrize("world", ["postgresql"], indirect=True)
@pytest.mark.parametrize(("name", "point"), [("withdraw", "after_chain"),
                                             ("deposit", "after_ledger"),
                                             ("subscribe", "after_chain"),
                                             ("repay", "before_commit")])  # fmt: skip
def test_killed_commands_on_postgresql(world: Holder, name: str, point: str) -> None:
    _kill_and_retry(world, name, point)


def _kill_and_retry(world: Holder, name: str, point: str, *, grouped: bool = False) -> None:
    make, expected = USE_CASES[name]
    fn = make(world)
    if grouped and name == "buy":
        code = world.code2
        fn = lambda p: p.buy(world.account_id, code, 100, p.quote(code).limit_down_fen)  # noqa: E731
    key = f"kill-{name}-{point}" + ("-grouped" if grouped else "")
    first_key = f"{key}-first"  # grouped: a withdrawal of 3 fen before it in the batch
    first_fn: Callable[[Platform], Any] = lambda p: p.withdraw(INVESTOR_SENIOR, 3)  # noqa: E731
    if grouped and name in ("buy", "repay"):  # the module world's account cash: the buys
        world.p.deposit(BORROWER, 200_000, f"TOPUP-{name}-{point}")  # reserve 1e5 fen each
        world.p.fund_account(world.account_id, 200_000, reserve=False)
    before = _facts(world, name)
    sender_before = world.p.wallet_fen(INVESTOR_SENIOR)
    with pytest.MonkeyPatch.context() as mp:
        group = group_commit(world.engine) if grouped else contextlib.nullcontext()
        if point == "after_commit":
            with group:  # done and committed; the response never arrives
                if grouped:
                    _run(world, first_key, "withdraw", first_fn)
                _inject(world, name, point, mp)
                _run(world, key, name, fn)
        else:
            with pytest.raises(Kill), group:
                if grouped:
                    _run(world, first_key, "withdraw", first_fn)
                _inject(world, name, point, mp)
                _run(world, key, name, fn)
    world.restart()
    status, body, replayed = _run(world, key, name, fn)
    assert status == 200 and replayed is (point == "after_commit")
    again = _run(world, key, name, fn)  # and any further retry is a replay
    assert again == (status, body, True)
    if grouped:  # the first command of the batch, retried: done once, whatever was lost
        status, _, _ = _run(world, first_key, "withdraw", first_fn)
        assert status == 200
        assert _run(world, first_key, "withdraw", first_fn)[2] is True
    after = _facts(world, name)
    if grouped:  # take out what the first withdrawal (3 fen, once) moved
        first = {"payouts": 1}
        if name in ("buy", "repay"):  # the facts are the borrower's: the sender's wallet here
            assert world.p.wallet_fen(INVESTOR_SENIOR) - sender_before == -3
        else:
            first |= {"wallet": -3, "lines": 1}
        after = {k: v - first.get(k, 0) for k, v in after.items()}
    moved = {k: after[k] - before[k] for k in before}
    if name == "buy":  # one order: its financing drawn once, its cost reserved once
        order = world.p.orders_of(world.account_id)[0]
        assert moved["principal"] == order.financing_fen >= 0
        assert moved["pending"] == moved["principal"] - moved["cash"] > 0
        expected = {**expected, "principal": moved["principal"], "cash": moved["cash"],
                    "pending": moved["pending"]}  # fmt: skip
    if name == "repay":  # 17 fen once: accrued interest first, the rest off the principal
        assert -17 <= moved["principal"] <= 0
        expected = {**expected, "principal": moved["principal"]}
    assert {k: moved[k] for k in expected} == expected, moved
    assert all(v == 0 for k, v in moved.items() if k not in expected), str(moved)
    rep = world.p.reconcile()
    assert rep["status"] == "ok", rep["breaks"]


# The platform process runs a batch of queued commands as one group commit
# (`custody.db.group_commit`): the same kills, with the command inside a group after another
# command of the batch (a withdrawal) finished in it. Whatever the group had not committed is
# lost with the process; both commands, retried with their keys, moved money exactly once.
@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("name", list(USE_CASES))
def test_a_command_killed_in_a_group_commit_moves_money_once(
    world: Holder, name: str, point: str
) -> None:
    _kill_and_retry(world, name, point, grouped=True)


@pytest.mark.parametrize("world", ["postgresql"], indirect=True)
@pytest.mark.parametrize(("name", "point"), [("withdraw", "after_chain"),
                                             ("deposit", "after_ledger"),
                                             ("buy", "before_commit")])  # fmt: skip
def test_commands_killed_in_a_group_commit_on_postgresql(
    world: Holder, name: str, point: str
) -> None:
    _kill_and_retry(world, name, point, grouped=True)
