"""What keeps the platform process's writer away from the command queue (issue 14: a money
command's p99 < 250 ms while the demo replays).

- the stall log (`writer.Stretches`): a stretch between two chances to run commands longer
  than `STALL_LOG_S` is logged as `writer_stall` naming its steps; a slow batch of commands
  as `writer_slow_commands`;
- after wallet commands alone the writer does not re-render the market-wide views
  (`WALLET_BLIND`) nor other holders' views: a withdrawal or a deposit leaves those views'
  bodies as they were (checked here through the application, not assumed);
- SQLite's write lock is waited for in short sleeps (`custody.db.begin_immediate`), the busy
  timeout still bounds the wait and stays set for every other statement;
- the notification worker's mails wait for the writer's idle flag (`before_each`).

In process: the demo world on the embedded chain and SQLite, the writer fed through its queue."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from service_world import WriterWorld

from crowdleverage.api.security import issue_token
from crowdleverage.custody import db as custody_db
from crowdleverage.custody.db import make_engine, write_transaction
from crowdleverage.service import writer as writer_module
from crowdleverage.service.queue import now_ms, request_hash
from crowdleverage.service.writer import WALLET_BLIND, Stretches


class World(WriterWorld):
    def uid(self, name: str) -> int:
        return int(self.st.users.find(name).id)

    def headers(self, who: str | None) -> list[tuple[str, str]]:
        h = [("accept", "application/json")]
        if who:
            token = issue_token(self.st.users.find(who), self.st.secret, ttl_s=600)
            h.append(("authorization", f"Bearer {token}"))
        return h

    def get(self, who: str | None, path: str) -> dict[str, Any]:
        status, _, body = self.writer._call({"method": "GET", "path": path, "query": "",
                                             "headers": self.headers(who)})  # fmt: skip
        assert status == 200, body
        out: dict[str, Any] = json.loads(body)
        out.pop("at_s", None)  # the time of the rendering
        return out

    def command(self, who: str, path: str, body: dict[str, Any]) -> int:
        """Queue a POST as an API worker does and run the queue; its status."""
        self.n += 1
        data = json.dumps(body).encode()
        h = [*self.headers(who), ("content-type", "application/json"),
             ("idempotency-key", f"stalls-{self.n}")]  # fmt: skip
        payload = {"method": "POST", "path": path, "query": "", "headers": [list(x) for x in h],
                   "body_hex": data.hex(), "client": "127.0.0.1"}  # fmt: skip
        row_id, _ = self.queue.enqueue(
            owner_id=self.uid(who), key=f"stalls-{self.n}", kind="write", payload=payload,
            req_hash=request_hash("POST", path, "", data),
        )  # fmt: skip
        while self.queue.counts().get("queued"):
            self.writer.step()
        row = self.queue.results([row_id])[row_id]
        assert row.status_code is not None
        return int(row.status_code)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("stalls"))
    yield w
    w.writer.close()
    w.p.close()


# ------------------------------------------------------------------------------ stall log


def test_a_long_stretch_is_logged_with_its_steps(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Stretches()
    with caplog.at_level(logging.WARNING, logger="crowdleverage.service.writer"):
        monkeypatch.setattr(writer_module, "STALL_LOG_S", 3600.0)
        s.lap("tick:step:keeper")
        s.chance("tick")  # short: not logged
        assert not [r for r in caplog.records if getattr(r, "event", "") == "writer_stall"]
        monkeypatch.setattr(writer_module, "STALL_LOG_S", -1.0)
        monkeypatch.setattr(writer_module, "STALL_STEP_S", -1.0)
        s.lap("tick:step:keeper", (("tick:save", 0.0),))
        s.lap("render:/api/v1/public/transparency")
        s.lap("render:/api/v1/public/transparency")
        s.chance("loop")
        s.lap("withdrawals")
        s.commands(3)
    stalls = [r for r in caplog.records if getattr(r, "event", "") == "writer_stall"]
    assert len(stalls) == 1 and stalls[0].at == "loop"  # type: ignore[attr-defined]
    steps = {st["step"]: st for st in stalls[0].steps}  # type: ignore[attr-defined]
    assert {"tick:step:keeper", "tick:save", "render:/api/v1/public/transparency"} <= set(steps)
    assert steps["render:/api/v1/public/transparency"]["n"] == 2
    [slow] = [r for r in caplog.records if getattr(r, "event", "") == "writer_slow_commands"]
    assert slow.n == 3 and "withdrawals" in {st["step"] for st in slow.steps}  # type: ignore[attr-defined]


# --------------------------------------------------------------- views after wallet commands


def _debts(view: Any, path: str = "") -> dict[str, Any]:
    """The debt figures of a view by where they are (they accrue interest per block)."""
    out: dict[str, Any] = {}
    items = view.items() if isinstance(view, dict) else enumerate(view or ())
    for k, v in items:
        where = f"{path}/{k}"
        if isinstance(v, (dict, list)):
            out |= _debts(v, where)
        elif isinstance(k, str) and ("debt" in k or k == "ratio_bps"):
            out[where] = v
    return out


def _without_debts(view: Any) -> Any:
    if isinstance(view, dict):
        return {k: _without_debts(v) for k, v in view.items()
                if not ("debt" in k or k == "ratio_bps")}  # fmt: skip
    if isinstance(view, list):
        return [_without_debts(v) for v in view]
    return view


def test_wallet_commands_leave_the_market_wide_views_unchanged(world: World) -> None:
    """The premise of `WALLET_BLIND`: a withdrawal and a deposit change neither the risk
    summary, nor the transparency page, nor the status, nor another holder's accounts — but
    for the interest the debts accrue over the blocks they mine (a few fen); a margin
    account's deposit (no wallet command) does change the risk summary."""
    views = [("operator", "/api/v1/risk/summary"), (None, "/api/v1/public/transparency"),
             (None, "/api/v1/status"), ("borrower1", "/api/v1/margin-accounts")]  # fmt: skip
    assert {path for _, path in views[:3]} == set(WALLET_BLIND)
    before = [world.get(who, path) for who, path in views]
    inv = world.uid("investor1")
    assert world.command("investor1", f"/api/v1/users/{inv}/withdrawals", {"amount_fen": 1}) == 200
    deposit = {"user_id": inv, "amount_fen": 5, "bank_reference": "STALLS-DEP-1"}
    assert world.command("custodian", "/api/v1/custody/deposits", deposit) == 201
    after = [world.get(who, path) for who, path in views]
    assert [_without_debts(v) for v in after] == [_without_debts(v) for v in before]
    for b, a in zip(before, after, strict=True):
        debts_b, debts_a = _debts(b), _debts(a)
        assert debts_b.keys() == debts_a.keys()
        for where, v in debts_b.items():
            if "ratio_bps" not in where:
                assert v <= debts_a[where] <= v + 20, where  # interest over a few blocks
    # a margin account's deposit is no wallet command: the risk summary shows it
    acc = world.get("borrower1", "/api/v1/margin-accounts")["items"][0]
    path = f"/api/v1/margin-accounts/{acc['id']}/deposits"
    assert world.command("borrower1", path, {"amount_fen": 100_00}) == 200
    assert world.get("operator", "/api/v1/risk/summary") != before[0]


def test_after_wallet_commands_alone_only_staff_views_are_refreshed(world: World) -> None:
    """`_wide_dirty` after wallet commands alone marks the staff's views but the
    `WALLET_BLIND` ones; after any other command, every market-wide view."""
    w = world.writer
    keys = {
        (world.uid("operator"), "/api/v1/risk/summary"): "/api/v1/risk/summary",
        (world.uid("custodian"), "/api/v1/custody/payouts"): "/api/v1/custody/payouts",
        (0, "/api/v1/public/transparency"): "/api/v1/public/transparency",
        (world.uid("borrower1"), "/api/v1/margin-accounts"): "/api/v1/margin-accounts",
    }
    docs = [{"viewer_id": v, "path": p, "kind": kind, "status_code": 200, "headers": "[]",
             "body": b"{}", "seq": 10**6 + i, "rendered_at_ms": now_ms()}
            for i, ((v, p), kind) in enumerate(keys.items())]  # fmt: skip
    world.queue.put_docs(docs)
    w.dirty.clear()
    w._all_dirty()  # a tick: every view
    w.dirty.clear()
    w._wide_all = False  # wallet commands alone
    w._wide_dirty()
    assert set(w.dirty) & set(keys) == {(world.uid("custodian"), "/api/v1/custody/payouts")}
    w.dirty.clear()
    w._last_full -= writer_module.BLIND_EVERY_S  # ... for a while: every market-wide view
    w._wide_dirty()
    assert set(keys) <= set(w.dirty)
    w.dirty.clear()
    w._wide_all = True  # some other command too
    w._wide_dirty()
    assert set(keys) <= set(w.dirty)
    w.dirty.clear()


def test_warmed_views_wait_for_the_platforms_figures(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before rendering a `WARMED` view (its chain figures kept by `flows.risk_figures`) the
    writer reads the stale figures in slices, one `Platform.warm_views` per step, and renders
    the other stale views meanwhile; the warmed ones once no figure is stale, or after
    `WARM_MAX_S` of slices."""
    w = world.writer
    risk = (world.uid("operator"), "/api/v1/risk/summary")
    payouts = (world.uid("custodian"), "/api/v1/custody/payouts")
    assert risk[1] in writer_module.WARMED and payouts[1] not in writer_module.WARMED
    w.dirty.clear()
    w.dirty.update({risk: risk[1], payouts: payouts[1]})
    slices: list[float] = []

    def warm(budget_s: float) -> bool:
        slices.append(budget_s)
        return len(slices) >= 3  # fresh at the third slice

    monkeypatch.setattr(w.platform, "warm_views", warm)
    w._render_dirty(writer_module.REFRESH_SLICE, 1.0)
    assert set(w.dirty) == {risk}  # the other view did not wait
    w._render_dirty(writer_module.REFRESH_SLICE, 1.0)
    assert set(w.dirty) == {risk}
    w._render_dirty(writer_module.REFRESH_SLICE, 1.0)
    assert not w.dirty and slices == [writer_module.WARM_BUDGET_S] * 3
    w._render_dirty(writer_module.REFRESH_SLICE, 1.0)
    assert len(slices) == 3  # nothing warmed stale: no slice

    monkeypatch.setattr(w.platform, "warm_views", lambda budget_s: False)  # never fresh
    w.dirty[risk] = risk[1]
    w._render_dirty(writer_module.REFRESH_SLICE, 1.0)
    assert risk in w.dirty
    assert w._warm_since is not None
    w._warm_since -= writer_module.WARM_MAX_S
    w._render_dirty(writer_module.REFRESH_SLICE, 1.0)
    assert not w.dirty  # rendered anyway (the render reads what is still stale)


# --------------------------------------------------------------------- SQLite's write lock


def test_a_writer_waits_for_the_lock_and_the_busy_timeout_still_bounds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with write_transaction(engine) as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            held.set()
            release.wait(30)

    th = threading.Thread(target=holder)
    th.start()
    held.wait(30)
    monkeypatch.setattr(custody_db, "BUSY_TIMEOUT_S", 0.05)
    with pytest.raises(sa.exc.OperationalError, match="locked"), write_transaction(engine):
        pass
    monkeypatch.setattr(custody_db, "BUSY_TIMEOUT_S", 30.0)
    timer = threading.Timer(0.05, release.set)  # the holder commits while we wait
    timer.start()
    with write_transaction(engine) as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (2)"))
        timeout = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
    th.join(30)
    timer.join(30)
    assert timeout == 30_000  # restored after the begin
    with engine.connect() as conn:
        assert sorted(r[0] for r in conn.execute(sa.text("SELECT x FROM t"))) == [1, 2]
    engine.dispose()


def test_begin_immediate_raises_what_is_not_a_lock(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute("BEGIN")
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
        custody_db.begin_immediate(conn)  # a transaction is open: no retrying that
    conn.close()


# ------------------------------------------------------------------- the chain's snapshots


def test_the_chains_snapshot_waits_for_the_idle_writer(world: World) -> None:
    """The writer takes the chain's state snapshots while idle (`EmbeddedChain.defer_snapshots`:
    due after `idle_every` transactions, `writer._snapshot`); a transaction reaching
    `snapshot_every` with no idle moment before still takes one in the send."""
    raw = world.p.chain._chain  # type: ignore[attr-defined]
    every, idle_every = raw._snapshot_every, raw._snapshot_idle_every
    inv = world.uid("investor1")
    path = f"/api/v1/users/{inv}/withdrawals"
    try:
        raw.snapshot()
        raw._snapshot_every, raw._snapshot_idle_every = 100, 2
        assert not raw.snapshot_due and not world.writer._snapshot()
        for _ in range(3):
            assert world.command("investor1", path, {"amount_fen": 1}) == 200
        assert raw._since_snapshot >= 2 and raw.snapshot_due  # not taken in a send
        snapshot = raw.dir / "state.snapshot"
        before = snapshot.stat().st_mtime_ns
        steps = 0
        while raw.snapshot_due:  # an account's storage a step, then the snapshot
            assert world.writer._snapshot()
            steps += 1
        assert steps > 1 and raw._since_snapshot == 0
        assert not raw.prepare_snapshot(min_slots=1)
        assert snapshot.stat().st_mtime_ns != before
        raw._snapshot_every = 2
        raw._snapshot_idle_every = None  # never idle: the send takes it at `snapshot_every`
        for _ in range(3):
            assert world.command("investor1", path, {"amount_fen": 1}) == 200
        assert raw._since_snapshot < 3
    finally:
        raw._snapshot_every, raw._snapshot_idle_every = every, idle_every


def test_a_failed_idle_snapshot_is_logged_and_not_retried_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A snapshot the idle writer takes that fails (a full disk) does not stop the writer: it
    is logged, and the next idle moments do not try again before `SNAPSHOT_RETRY_S`."""
    raw = world.p.chain._chain  # type: ignore[attr-defined]
    idle_every = raw._snapshot_idle_every
    calls = []

    def full_disk() -> None:
        calls.append(1)
        raise OSError(28, "No space left on device")

    try:
        raw._snapshot_idle_every = 1
        inv = world.uid("investor1")
        assert world.command("investor1", f"/api/v1/users/{inv}/withdrawals",
                             {"amount_fen": 1}) == 200  # fmt: skip
        assert raw.snapshot_due
        monkeypatch.setattr(raw, "snapshot", full_disk)
        with caplog.at_level(logging.ERROR, logger="crowdleverage.service.writer"):
            while not calls:  # the storage steps, then the snapshot that fails
                assert world.writer._snapshot()
            assert not world.writer._snapshot()  # not again at once
        assert len(calls) == 1 and raw.snapshot_due
        assert [r for r in caplog.records if getattr(r, "event", "") == "snapshot_failed"]
    finally:
        raw._snapshot_idle_every = idle_every
        world.writer._snapshot_retry_at = 0.0


def test_the_audit_head_moves_after_the_groups_once_the_writer_is_idle(world: World) -> None:
    """The audit log's signed head file is written after the groups' commits, once for
    several, when the writer runs out of work (or `AFTER_MAX_S` after the first): until then
    it lags the log, which verifies (a head behind the log is what a crash leaves); after,
    it names the last entry."""
    log = world.st.audit.log
    inv = world.uid("investor1")
    path = f"/api/v1/users/{inv}/withdrawals"
    before = log.entries()[-1].seq
    for _ in range(2):  # two commands, each its own group: two pending head writes, one kept
        assert world.command("investor1", path, {"amount_fen": 1}) == 200
    last = log.entries()[-1]
    assert last.action == "withdrawal" and last.seq == before + 2
    head = log._read_head()
    assert head is None or int(head["seq"]) < last.seq  # not written yet: the writer had work
    assert list(world.writer._after) == ["audit_head"]
    report = log.verify()
    assert report.ok, report.problems
    world.writer._run_after()  # what the idle loop does
    head = log._read_head()
    assert head is not None and int(head["seq"]) == last.seq
    assert head["entry_hash"] == last.entry_hash
    assert world.writer._after == {} and world.writer._after_since is None
    final = log.verify()
    assert final.ok and final.head_seq == last.seq, final.problems
