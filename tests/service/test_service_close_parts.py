"""Which queued commands the platform process's writer runs between the parts of a tick — an
end of day's parts too (`flows.Platform._end_of_day_parts`): the wallet commands at the head
of the queue (withdrawals, deposits), which move only their user's wallet and the custody
ledger (the close values a user again whose statement changed after being valued). Every
other command — an order (after the day's last tick it is requested on chain and placed at the
next open, as before the close ran in parts), a subscription, a redemption, a margin move, the
operator's end of day — waits for the tick's end, and so does every command queued behind
it (a command never runs before one queued ahead of it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crowdleverage.custody.db import make_engine
from crowdleverage.service import writer
from crowdleverage.service.queue import Queue

API = "/api/v1"
BETWEEN = [f"{API}/users/7/withdrawals", f"{API}/custody/deposits"]
AFTER_THE_TICK = [
    f"{API}/margin-accounts/3/orders", f"{API}/margin-accounts/3/deposits",
    f"{API}/margin-accounts/3/withdrawals", f"{API}/margin-accounts/3/repayments",
    f"{API}/investors/7/subscriptions", f"{API}/investors/7/redemptions",
    f"{API}/operator/end-of-day",
]  # fmt: skip


def _write(path: str) -> dict[str, Any]:
    return {"method": "POST", "path": path, "headers": [], "body": "{}"}


@pytest.mark.parametrize("path", BETWEEN)
def test_wallet_commands_run_between_the_parts_of_a_tick(path: str) -> None:
    assert writer._between_tick_parts("write", _write(path))


@pytest.mark.parametrize("path", AFTER_THE_TICK)
def test_other_commands_wait_for_the_end_of_the_tick(path: str) -> None:
    assert not writer._between_tick_parts("write", _write(path))
    assert not writer._between_tick_parts("read", {"method": "GET", "path": path})


def test_a_withdrawal_queued_behind_an_order_waits_for_the_end_of_the_tick(tmp_path: Path) -> None:
    q = Queue(make_engine(f"sqlite:///{tmp_path / 'queue.db'}"))
    q.create_schema()

    def put(owner: int, key: str, path: str) -> int:
        row, _replayed = q.enqueue(owner_id=owner, key=key, kind="write", payload=_write(path),
                                   req_hash=key)  # fmt: skip
        return row

    first = put(7, "w1", BETWEEN[0])
    order = put(3, "o1", AFTER_THE_TICK[0])
    behind = put(7, "w2", BETWEEN[0])
    # between two parts: the withdrawal ahead of the order, not the one behind it
    assert [r.id for r in q.claim(16, only=writer._between_tick_parts)] == [first]
    assert q.claim(16, only=writer._between_tick_parts) == []
    # at the tick's end: the order, then the withdrawal, in order
    assert [r.id for r in q.claim(16)] == [order, behind]
