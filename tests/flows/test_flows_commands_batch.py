"""Batched withdrawals (issue 14, `Platform.withdraw_batch`): the withdrawals of one claimed
batch share one recovery-point barrier, then their burns run back to back, then one commit.

Killed at every step — before any burn, after some burns and not others, after every burn
but before the payouts, before the batch's commit, after it — the platform restarts from its
data dir and the client retries every command of the batch with its key: each one moved
money exactly once (wallets, custody ledger, payouts, statement lines, the chain's burns), and
chain and custody reconcile. The balance check of a batch counts the burns recorded before it
in the same batch (no overdraft).

The embedded chain and SQLite are real; "kill" is an exception no handler catches
(BaseException) followed by a new `Platform` on the same data dir and database."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
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
    open_platform,
)

from crowdleverage.custody.db import group_commit
from crowdleverage.custody.service import payouts
from crowdleverage.domain.errors import RuleViolation
from crowdleverage.flows.commands import CommandSpec, CommandStore
from crowdleverage.flows.platform import Platform, Withdrawal
from crowdleverage.market.bars import read_bars


class Kill(BaseException):
    """The process dies here: no handler runs."""


@dataclass
class Holder:
    p: Platform
    data_dir: Path
    engine: sa.Engine

    def restart(self) -> None:
        self.p.close()
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
    data_dir = tmp_path_factory.mktemp("batch")
    with custody_engine(request, data_dir) as engine:
        p = _open(data_dir, engine)
        fund_pool(p, 50_000_000, 20_000_000)
        p.deposit(BORROWER, 5_000_000, "BORROWER-0001")
        p.deposit(INVESTOR_SENIOR, 1_000_000, "SENIOR-0002")
        h = Holder(p, data_dir, engine)
        yield h
        h.p.close()


USERS = (INVESTOR_SENIOR, BORROWER)
_audited: list[str] = []


def _batch(name: str) -> list[Withdrawal]:
    """Three withdrawals: two of the investor's (7 and 5 fen) around one of the borrower's."""
    spec = lambda uid, i: CommandSpec(uid, f"{name}-{i}", f"hash-{name}-{i}", "/test/w")  # noqa: E731
    return [Withdrawal(spec(INVESTOR_SENIOR, 0), INVESTOR_SENIOR, 7),
            Withdrawal(spec(BORROWER, 1), BORROWER, 3),
            Withdrawal(spec(INVESTOR_SENIOR, 2), INVESTOR_SENIOR, 5)]  # fmt: skip


def _after(done: list[Withdrawal]) -> None:
    _audited.extend(w.spec.key for w in done)


def _facts(p: Platform) -> dict[str, int]:
    with p.engine.connect() as conn:
        n_payouts = conn.execute(sa.select(sa.func.count()).select_from(payouts)).scalar_one()
    out = {"payouts": int(n_payouts), "burns": len(p.chain.events("CashToken", "Burned"))}
    for uid in USERS:
        out[f"wallet{uid}"] = p.wallet_fen(uid)
        out[f"custody{uid}"] = p.custody.investor_balances().get(f"U{uid:06d}", 0)
        out[f"lines{uid}"] = len([x for x in p.history.get(uid, []) if x["kind"] == "withdrawal"])
    return out


def _run(h: Holder, name: str, *, group: bool = True) -> list[Any]:
    if not group:
        return h.p.withdraw_batch(_batch(name), _after)
    with group_commit(h.engine):
        return h.p.withdraw_batch(_batch(name), _after)


# where the kill lands, counted in burns of the batch sent before it
POINTS = ["before_burns", "after_one_burn", "after_two_burns", "after_burns",
          "before_commit", "after_commit"]  # fmt: skip


@pytest.mark.parametrize("point", POINTS)
def test_a_batch_killed_anywhere_moves_each_withdrawal_once(world: Holder, point: str) -> None:
    _kill_batch(world, point)


# the same on PostgreSQL where the recovery differs most: some burns sent and some not, and
# every burn sent with no payout reserved
@pytest.mark.parametrize("world", ["postgresql"], indirect=True)
@pytest.mark.parametrize("point", ["after_one_burn", "after_burns"])
def test_a_batch_killed_on_postgresql(world: Holder, point: str) -> None:
    _kill_batch(world, point)


def _kill_batch(world: Holder, point: str) -> None:
    name = f"batch-{point}"
    before = _facts(world.p)
    p = world.p
    sends = itertools.count()
    with pytest.MonkeyPatch.context() as mp:
        original_send = p.chain.send

        def send(contract: str, fn: str, *args: Any, **kwargs: Any) -> Any:
            if fn == "burn":
                n = next(sends)
                if (point, n) in (("before_burns", 0), ("after_one_burn", 1),
                                  ("after_two_burns", 2)):  # fmt: skip
                    raise Kill(point)
            return original_send(contract, fn, *args, **kwargs)

        mp.setattr(p.chain, "send", send)
        if point == "after_burns":  # every burn sent, no payout reserved yet

            def payout(*args: Any, **kwargs: Any) -> Any:
                raise Kill(point)

            mp.setattr(p.custody, "request_payouts", payout)
        if point == "before_commit":

            def finish(*args: Any, **kwargs: Any) -> None:
                raise Kill(point)

            mp.setattr(CommandStore, "finish", staticmethod(finish))
        if point == "after_commit":
            first = _run(world, name)  # done and committed; the responses never arrive
            assert [r[0] for r in first] == [200, 200, 200]
        else:
            with pytest.raises(Kill):
                _run(world, name)
    if point == "after_one_burn":  # the killed process had burned the first one only
        assert next(sends) == 2
    world.restart()
    again = _run(world, name)
    assert [r[0] for r in again] == [200, 200, 200], again
    assert all(r[2] is (point == "after_commit") for r in again), again
    assert _run(world, name) == [(s, b, True) for s, b, _ in again]  # any retry: a replay
    moved = {k: v - before[k] for k, v in _facts(world.p).items()}
    expected = {f"wallet{INVESTOR_SENIOR}": -12, f"wallet{BORROWER}": -3, "payouts": 3,
                f"lines{INVESTOR_SENIOR}": 2, f"lines{BORROWER}": 1,
                f"custody{INVESTOR_SENIOR}": 0, f"custody{BORROWER}": 0}  # fmt: skip
    expected["burns"] = 3  # one burn each on chain, whatever the kill cut short
    assert {k: moved[k] for k in expected} == expected, moved
    rep = world.p.reconcile()
    assert rep["status"] == "ok", rep["breaks"]


def test_responses_are_the_wallets_one_command_at_a_time(world: Holder) -> None:
    """Each response's wallet is what it would be had the batch run one command at a time."""
    p = world.p
    w0, b0 = p.wallet_fen(INVESTOR_SENIOR), p.wallet_fen(BORROWER)
    out = _run(world, "responses")
    bodies = [r[1] for r in out]
    assert bodies == [
        {"user_id": INVESTOR_SENIOR, "wallet_fen": w0 - 7},
        {"user_id": BORROWER, "wallet_fen": b0 - 3},
        {"user_id": INVESTOR_SENIOR, "wallet_fen": w0 - 12},
    ]
    assert _audited[-3:] == ["responses-0", "responses-1", "responses-2"]


def test_the_balance_check_counts_the_batchs_earlier_burns(world: Holder) -> None:
    """A wallet of W: withdrawals of W - 2, 2 and 1 in one batch: the third is refused (it
    would overdraw once the first two burn), the first two pass, the wallet ends at 0, and
    the refusal is stored as that command's result."""
    p = world.p
    w = p.wallet_fen(INVESTOR_SENIOR)
    spec = lambda i: CommandSpec(INVESTOR_SENIOR, f"overdraw-{i}", f"h-{i}", "/test/w")  # noqa: E731
    items = [Withdrawal(spec(0), INVESTOR_SENIOR, w - 2), Withdrawal(spec(1), INVESTOR_SENIOR, 2),
             Withdrawal(spec(2), INVESTOR_SENIOR, 1)]  # fmt: skip
    with group_commit(world.engine):
        out = p.withdraw_batch(items)
    assert out[0] == (200, {"user_id": INVESTOR_SENIOR, "wallet_fen": 2}, False)
    assert out[1] == (200, {"user_id": INVESTOR_SENIOR, "wallet_fen": 0}, False)
    assert isinstance(out[2], RuleViolation)
    assert p.wallet_fen(INVESTOR_SENIOR) == 0
    again = p.withdraw_batch(items)  # the refusal is the third command's stored result
    assert again[2][:1] == (422,) and again[2][2] is True  # type: ignore[index]
    assert p.reconcile()["status"] == "ok"
    p.deposit(INVESTOR_SENIOR, w, "REFILL-0001")  # the next tests' wallet


def test_a_batch_matches_the_one_by_one_path(world: Holder) -> None:
    """The same withdrawal through `execute` + `withdraw` and through a batch of one: the
    same response, line, payout and burn."""
    p = world.p
    w = p.wallet_fen(INVESTOR_SENIOR)
    spec = CommandSpec(INVESTOR_SENIOR, "single-1", "h-single", "/test/w")
    one = p.execute(spec, lambda: (200, p.withdraw(INVESTOR_SENIOR, 4)))
    batch = p.withdraw_batch([Withdrawal(CommandSpec(INVESTOR_SENIOR, "single-2", "h-single",
                                                     "/test/w"), INVESTOR_SENIOR, 4)])  # fmt: skip
    assert one == (200, {"user_id": INVESTOR_SENIOR, "wallet_fen": w - 4}, False)
    assert batch == [(200, {"user_id": INVESTOR_SENIOR, "wallet_fen": w - 8}, False)]
    lines = [x for x in p.history[INVESTOR_SENIOR] if x["kind"] == "withdrawal"][-2:]
    assert [x["amount_fen"] for x in lines] == [-4, -4]
    assert p.reconcile()["status"] == "ok"


def test_a_batch_that_failed_mid_way_resumes_in_the_same_process(world: Holder) -> None:
    """An unexpected error at the second burn (the process lives on, as the writer does: the
    group commits what it has): every command of the batch is left running with its op
    recorded, the first burned on chain. The retry of the batch in the same process sends the
    missing burns only and answers each command as one at a time would have."""
    p = world.p
    w0, b0 = p.wallet_fen(INVESTOR_SENIOR), p.wallet_fen(BORROWER)
    before = _facts(p)
    sends = itertools.count()
    with pytest.MonkeyPatch.context() as mp:
        original_send = p.chain.send

        def send(contract: str, fn: str, *args: Any, **kwargs: Any) -> Any:
            if fn == "burn" and next(sends) == 1:
                raise RuntimeError("the node went away")
            return original_send(contract, fn, *args, **kwargs)

        mp.setattr(p.chain, "send", send)
        failed = _run(world, "midway")
    assert all(isinstance(r, RuntimeError) for r in failed), failed
    assert p.wallet_fen(INVESTOR_SENIOR) == w0 - 7  # the first burn happened, once
    again = _run(world, "midway")
    assert again == [(200, {"user_id": INVESTOR_SENIOR, "wallet_fen": w0 - 7}, False),
                     (200, {"user_id": BORROWER, "wallet_fen": b0 - 3}, False),
                     (200, {"user_id": INVESTOR_SENIOR, "wallet_fen": w0 - 12}, False)]  # fmt: skip
    moved = {k: v - before[k] for k, v in _facts(p).items()}
    assert moved["burns"] == 3 and moved["payouts"] == 3, moved
    assert moved[f"wallet{INVESTOR_SENIOR}"] == -12 and moved[f"wallet{BORROWER}"] == -3
    assert p.reconcile()["status"] == "ok"
