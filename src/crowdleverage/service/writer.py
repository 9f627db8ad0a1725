"""The platform process's loop: the single writer (DESIGN.md §11).

It owns the chain and `flows.Platform`, advances the trading session (one replay tick every
`pace_s` seconds, with the monitor, keeper, broker and end of day inside `Platform.tick`), and
executes the queued commands in order through the API's own endpoints in this process (so a
command answers exactly what the endpoint answers, and money commands keep the exactly-once
semantics of `flows.commands`). Withdrawals take a typed path instead (`api.direct`: the
endpoint's own checks and answers; a request it would refuse goes through the endpoint): the
run of them at the head of a batch executes as one `Platform.withdraw_batch` (one barrier for
their recovery points, the burns back to back, one commit). A tick runs in parts
(`flows.Platform.tick`); between two parts the writer runs the wallet commands (withdrawals,
deposits) at the head of the queue, so they wait for a part of a tick rather than all of it
(any other command waits for the tick's end, and no command runs before one queued ahead of
it). After every batch of commands it re-renders the read models of the viewers the batch
touched, in the same transaction that stores the commands' responses (a client that got its
response reads its own write; between a tick's parts such a view may show the tick half done
until the tick's end re-renders it); after every tick, and a little later after commands for
staff and market-wide views, it re-renders the rest, in slices of about `REFRESH_BUDGET_S`
between batches (after wallet commands alone, not the `WALLET_BLIND` views nor other holders'
views). A rendering equal to the one last committed is not written again; views nobody
has read for `VIEW_IDLE_S` are deleted (`evict`).

Every stretch in which the writer does not look at the queue is timed by its steps
(`Stretches`): one longer than `STALL_LOG_S` is logged as `writer_stall` (e.g. a tick's part
`tick:step:keeper`, its save, a view's render), a slow batch of commands as
`writer_slow_commands` (bench/api.py --server-log prints those of each paced run).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from crowdleverage.api import direct
from crowdleverage.api.security import Role, UserStore, issue_token
from crowdleverage.custody.db import GroupCommitFailed, group_commit, run_after_commit
from crowdleverage.domain.errors import NotFound
from crowdleverage.flows.platform import TICK_PART_BUDGET_S
from crowdleverage.service.asgi import AsgiCaller
from crowdleverage.service.queue import Queue, Row, now_ms

log = logging.getLogger("crowdleverage.service.writer")

__all__ = ["GroupCommitFailed", "PlatformWriter", "view_kind"]


BATCH = 16  # commands executed before their views are projected and their rows finished
GROUP_SLICE_S = 0.1  # a group commit takes no more commands after running this long
HOLDERS = (Role.INVESTOR, Role.BORROWER)
# staff and market-wide views after commands: at most this often ... (every view is rendered
# again after each market tick anyway; at 0.25 s and a quarter of the writer's time they held
# up the commands: bench/api.py's withdrawal paced at 50/s, p99 325-375 -> 234 ms)
WIDE_EVERY_S = 1.0
WIDE_SHARE = 0.1  # ... and at most this share of the writer's time (they can be slow)
# views a wallet command (a withdrawal or a deposit: cash between one user's wallet and the
# bank) does not change: market-wide figures (accounts, pool, risk, published terms) — but
# for the interest the debts accrue over the blocks it mines (a fen or so). After wallet
# commands alone they are not re-rendered (they are after every tick, after any other
# command, and at least every `BLIND_EVERY_S` while wallet commands run); nor are holders'
# views (the sender's are rendered with its command). The transparency page (~35 ms of CPU)
# and the risk summary (~15 ms) rendered after commands stalled the commands behind them
# (bench/api.py: 100-320 ms each on a loaded machine)
WALLET_BLIND = frozenset({"/api/v1/risk/summary", "/api/v1/public/transparency",
                          "/api/v1/status"})  # fmt: skip
BLIND_EVERY_S = 10.0
# views whose chain figures the platform keeps between blocks (`Platform.warm_views`,
# `flows.risk_figures`): before rendering them the writer reads the stale figures in slices of
# `WARM_BUDGET_S` between batches of commands, so that their render reads only what is left
# (each used to read every account again: 60-300 ms away from the queue); after
# `WARM_MAX_S` of slices they are rendered anyway (the render reads what is still stale)
# (the margin-account views read the engine fresh: `api.views.account_out`)
WARMED = frozenset({"/api/v1/risk/summary", "/api/v1/public/transparency"})
WARM_BUDGET_S = 0.02
WARM_MAX_S = 2.0
REFRESH_SLICE = 12  # stale views re-rendered between two batches of commands, at most ...
REFRESH_BUDGET_S = 0.05  # ... and for about this long (queued commands are not held up)
BEAT_EVERY_S = 0.5
VIEW_IDLE_S = 900  # a view nobody read for this long is deleted (and no longer rendered)
EVICT_EVERY_S = 60
# a stretch of the writer between two chances to run commands (a claim of the queue) longer
# than this is logged as a `writer_stall` naming its steps (commands queued meanwhile waited)
STALL_LOG_S = 0.1
STALL_STEP_S = 0.005  # steps shorter than this are summed as "other" in that log
SNAPSHOT_RETRY_S = 30.0  # an idle snapshot that failed is not tried again sooner
AFTER_MAX_S = 0.5  # the work after the groups' commits waits for idle at most this long
# wallet commands: they run between the parts of a market tick too (`Platform.tick`); every
# other command waits for the tick's end
_BETWEEN_TICK_PARTS = re.compile(r"^/api/v1/(?:users/\d+/withdrawals|custody/deposits)$")
_USER_IN_PATH = re.compile(r"/(?:users|investors|onboarding/users)/(\d+)")
_DIGITS = re.compile(r"/\d+")


def view_kind(key: str) -> str:
    """The route template of a view key (ids folded), e.g. /api/v1/users/{id}/wallet."""
    return _DIGITS.sub("/{id}", key.split("?", 1)[0].split("|", 1)[0])[:128]


def _typed(status: int, code: str, message: str) -> dict[str, Any]:
    body = json.dumps({"error": code, "message": message, "details": {}}).encode()
    return {"headers": [["content-type", "application/json"]], "body": body.decode()}


class Stretches:
    """The writer's steps since it last looked at the queue (`lap`: the step that just ended,
    named; `chance`: the writer looks at the queue now). A stretch longer than `STALL_LOG_S`
    is logged (`writer_stall`: its wall and writer-thread CPU milliseconds, the time Python's
    cyclic collector stopped the process in it, and its steps by name, e.g. `tick:step:keeper`,
    `tick:save`, `render:/api/v1/public/transparency`, `wide`, `beat`, `prune`, `evict`);
    `commands` (a claimed batch's execution) is logged apart when it takes as long."""

    def __init__(self) -> None:
        self._at = self._mark = time.monotonic()
        self._cpu = time.thread_time()
        self._steps: dict[str, list[float]] = {}  # name -> [wall s, CPU s, count]
        self._gc_s = 0.0
        self._gc_start: float | None = None
        self.stalls = 0  # stretches logged

    def gc_callback(self, phase: str, info: dict[str, Any]) -> None:
        """For `gc.callbacks`: the time collections take (any thread's: they stop all)."""
        if phase == "start":
            self._gc_start = time.monotonic()
        elif self._gc_start is not None:
            self._gc_s += time.monotonic() - self._gc_start
            self._gc_start = None

    def lap(self, name: str, within: tuple[tuple[str, float], ...] = ()) -> None:
        """The step since the last lap was `name`, but for the `within` steps it ended with
        ((name, seconds) measured by their own code; their CPU counts as `name`'s)."""
        now, cpu = time.monotonic(), time.thread_time()
        wall, used = now - self._mark, cpu - self._cpu
        self._mark, self._cpu = now, cpu
        for part, part_s in within:
            part_s = min(max(part_s, 0.0), wall)
            self._add(part, part_s, 0.0)
            wall -= part_s
        self._add(name, wall, used)

    def _add(self, name: str, wall: float, cpu: float) -> None:
        step = self._steps.setdefault(name, [0.0, 0.0, 0.0])
        step[0] += wall
        step[1] += cpu
        step[2] += 1

    def chance(self, where: str) -> None:
        """The writer looks at the queue (`where`: "loop", "tick"): the stretch since the
        last chance ends here; logged when it was long."""
        self._end("writer_stall", "writer away from the command queue", {"at": where})

    def commands(self, n: int) -> None:
        """A claimed batch of `n` commands ran since the chance that claimed it: logged
        (`writer_slow_commands`, with its steps) when it took long; the next stretch starts."""
        self._end("writer_slow_commands", "a batch of commands took long", {"n": n})

    def _end(self, event: str, message: str, extra: dict[str, Any]) -> None:
        self.lap("other")
        wall = self._mark - self._at
        if wall > STALL_LOG_S:
            self.stalls += event == "writer_stall"
            steps = [{"step": k, "ms": round(v[0] * 1e3, 1), "cpu_ms": round(v[1] * 1e3, 1),
                      "n": int(v[2])}
                     for k, v in sorted(self._steps.items(), key=lambda kv: -kv[1][0])
                     if v[0] >= STALL_STEP_S]  # fmt: skip
            cpu = sum(v[1] for v in self._steps.values())
            log.warning(message, extra={"event": event, "ms": round(wall * 1e3, 1),
                                        "cpu_ms": round(cpu * 1e3, 1),
                                        "gc_ms": round(self._gc_s * 1e3, 1), **extra,
                                        "steps": steps})  # fmt: skip
        self.reset()

    def reset(self) -> None:
        """A new stretch starts now."""
        self._at = self._mark = time.monotonic()
        self._cpu = time.thread_time()
        self._steps.clear()
        self._gc_s = 0.0


class PlatformWriter:
    def __init__(
        self,
        app: Any,
        queue: Queue,
        *,
        tick: Callable[[], None] | None = None,
        pace_s: float = 1.5,
    ) -> None:
        self.app = app
        self.api = app.state.api
        self.platform = self.api.platform
        self.queue = queue
        self.caller = AsgiCaller(app)
        self.users = UserStore(self.api.engine)
        self.tick_fn = tick
        self.pace_s = pace_s
        self.seq = 0
        self.dirty: dict[tuple[int, str], str] = {}  # views to re-render, oldest first
        # a digest of each view as last committed: a re-render that changed nothing is not
        # written again (no write, no new seq, the API workers' caches stay valid)
        self._written: dict[tuple[int, str], bytes] = {}
        self._unsaved: dict[tuple[int, str], bytes] = {}
        self.wide_due = False
        self._wide_all = False  # a command other than a wallet command ran since the last wide
        self._last_full = 0.0  # when every view was last marked stale (a tick, a full wide)
        self._last_wide = 0.0
        self._wide_gap = WIDE_EVERY_S
        self._cost: dict[tuple[int, str], float] = {}  # seconds a view's last render took
        self._tokens: dict[int, tuple[float, str]] = {}
        self._roles: dict[int, Role | None] = {}
        self.started_at_ms = now_ms()
        self.done = 0
        self.commits = 0  # commits of the command batches (group commits and barriers)
        self.ready = False
        self.stop = threading.Event()
        self.stretches = Stretches()  # the stall log
        self._snapshot_retry_at = 0.0  # `_snapshot`: after a failed one
        # the work after the groups' commits (`on_commit`: the audit log's signed head file),
        # the latest per key, run when idle or AFTER_MAX_S after the oldest (`_run_after`)
        self._after: dict[str, Callable[[], None]] = {}
        self._after_since: float | None = None
        self._warm_since: float | None = None  # `_warming`: since when WARMED views wait
        # set while the loop waits with nothing to do (the mail thread sends then: `run`)
        self.idle = threading.Event()
        # the queue's data_version when a claim (per filter) last found nothing to run
        self._idle_version: dict[Callable[[str, dict[str, Any]], bool] | None, int | None] = {}
        if tick is not None:
            self.platform.between_parts = self._between_tick_parts
            # the keeper's and the broker's batches cut to about this much CPU each
            self.platform.tick_part_budget_s = TICK_PART_BUDGET_S
        # the chain's state snapshots: taken here while idle, not inside a command's or a
        # tick's transaction (`_snapshot`)
        defer = getattr(self.platform.chain, "defer_snapshots", None)
        if callable(defer):
            defer()

    # ------------------------------------------------------------------ lifecycle

    def recover(self) -> None:
        """Rows a killed writer had claimed: a keyed or read row runs again (a money command
        resumes under its key, `flows.commands`); a write without a client key might have
        happened, so it is not repeated: it answers 503 and the client checks."""
        self.seq = max(self.seq, self.queue.max_seq())
        for row in self.queue.interrupted():
            if row.kind == "read" or row.client_key:
                self.queue.requeue(row.id)
            else:
                msg = ("the platform restarted while running this request; it may or may not"
                       " have taken effect: check before sending it again")  # fmt: skip
                self.queue.finish(row.id, "done", 503, _typed(503, "command_interrupted", msg))
        for viewer, path, kind in self.queue.doc_keys():
            self.dirty[(viewer, path)] = kind  # rendered before a restart: render again
        self.ready = True
        self._beat()

    def run(self) -> None:
        """Until `stop`: ticks at the pace, commands in order, views kept fresh."""
        next_tick = time.monotonic() + self.pace_s
        last_beat = 0.0
        last_prune = last_evict = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            try:
                if self.tick_fn is not None and now >= next_tick:
                    next_tick = now + self.pace_s
                    rows = self._claim(BATCH, where="loop")  # queued before the tick: first
                    if rows:
                        self._execute(rows)
                    self.tick_fn()
                    self._tick_done()
                    self._all_dirty()
                    self.stretches.lap("all_dirty")
                worked = self.step()
                if now - last_beat >= BEAT_EVERY_S:
                    last_beat = now
                    self._beat()
                    self.stretches.lap("beat")
                if now - last_prune >= 30:
                    last_prune = now
                    self.queue.prune(now_ms() - 60_000)
                    self.stretches.lap("prune")
                if now - last_evict >= EVICT_EVERY_S:
                    last_evict = now
                    self.evict()
                    self.stretches.lap("evict")
            except GroupCommitFailed:
                raise
            except Exception:  # the writer stays up; the row's client retries
                log.exception("writer loop failed; continuing")
                worked = False
                self.stop.wait(0.2)
            if self._after_since is not None and (
                not worked or time.monotonic() - self._after_since >= AFTER_MAX_S
            ):
                self._run_after()
            if not worked and self._snapshot():
                continue
            if not worked:
                self.idle.set()
                self.stop.wait(0.003)
                self.idle.clear()
                self.stretches.lap("idle")

    def _snapshot(self) -> bool:
        """A step of the chain's state snapshot when one is due (`EmbeddedChain.snapshot_due`):
        one account's storage folded into its trie (`prepare_snapshot`), or once none is
        left the snapshot itself; with nothing queued, a command waits for such a step only if
        it arrives meanwhile (a whole snapshot at once: 100-250 ms on a loaded 2-core
        machine). One that fails (e.g. a full disk) is logged and not tried again while idle
        for `SNAPSHOT_RETRY_S` (the journal still holds every transaction; the send reaching
        `snapshot_every` tries again)."""
        chain = self.platform.chain
        if time.monotonic() < self._snapshot_retry_at or not getattr(chain, "snapshot_due", False):
            return False
        step = "snapshot"
        try:
            with self.platform.lock:
                prepare = getattr(chain, "prepare_snapshot", None)
                if callable(prepare) and prepare():
                    step = "snapshot:storage"
                else:
                    chain.snapshot()
        except Exception:
            log.exception("chain snapshot failed", extra={"event": "snapshot_failed"})
            self._snapshot_retry_at = time.monotonic() + SNAPSHOT_RETRY_S
        finally:
            self.stretches.lap(step)
        return True

    def _tick_done(self) -> None:
        """The stall log's laps of a tick's last part, its save and the driver's work after
        it (relay, report)."""
        p = self.platform
        after = float(getattr(getattr(self.tick_fn, "__self__", None), "after_s", 0.0))
        within = (("tick:save", float(p.tick_save_s)), ("tick:relay", after))
        self.stretches.lap(f"tick:{p.last_part or 'none'}", within)

    def step(self) -> bool:
        """One batch of commands, then a slice of stale views; False when idle."""
        rows = self._claim(BATCH, where="loop")
        if rows:
            self._execute(rows)
        if self.wide_due and time.monotonic() - self._last_wide >= self._wide_gap:
            self._wide_dirty()
            self.stretches.lap("wide")
        if self.dirty:
            docs = self._render_dirty(REFRESH_SLICE, REFRESH_BUDGET_S)
            self._put_docs(docs)
            self.stretches.lap("put_docs")
        return bool(rows) or bool(self.dirty)

    def _between_tick_parts(self) -> None:
        """Between two parts of a market tick: the wallet commands at the head of the queue
        (one batch), so that they wait for a part of a tick rather than all of it. Their
        views are rendered with them (read your writes); the rest waits for the tick's end."""
        self.stretches.lap(f"tick:{self.platform.last_part}")
        if self.stop.is_set():
            return
        try:
            rows = self._claim(BATCH, only=_between_tick_parts, where="tick")
            if rows:
                self._execute(rows)
        except GroupCommitFailed:
            raise  # the process stops (the tick with it: a restart resumes it)
        except Exception:  # not the tick's failure: it goes on, the commands wait for its end
            log.exception("commands between a tick's parts failed; the tick goes on")

    def _claim(
        self,
        limit: int,
        only: Callable[[str, dict[str, Any]], bool] | None = None,
        where: str = "loop",
    ) -> list[Row]:
        """`Queue.claim`, skipped while nothing was committed to the queue's database since
        it last found nothing to run (SQLite's `PRAGMA data_version`, read before the claim:
        a row queued after that read changes it): the idle loop costs a pragma, not a query.
        A chance to run commands: the stall log's stretch ends here."""
        self.stretches.chance(where)
        version = self.queue.data_version()
        if version is not None and version == self._idle_version.get(only):
            return []
        rows = self.queue.claim(limit, only=only)
        self._idle_version[only] = None if rows else version
        return rows

    def evict(self) -> None:
        """Forget the views nobody read for `VIEW_IDLE_S`."""
        gone = self.queue.evict(now_ms() - VIEW_IDLE_S * 1000)
        for key in gone:
            self.dirty.pop(key, None)
            self._written.pop(key, None)
            self._cost.pop(key, None)
        if gone:
            log.info("idle views evicted", extra={"event": "views_evicted", "n": len(gone)})

    def flush(self) -> None:
        """Re-render every stale view (at a clean stop: the read models match the record),
        and run the work left after the last commits (the audit head)."""
        while self.dirty:
            self._put_docs(self._render_dirty(64))
        self._run_after()
        self._beat()

    def _run_after(self) -> None:
        """The work after the groups' commits, once each: the audit log's head file (its
        signature and an atomic file replace: a few hundred µs of file system calls) moves
        to the last entry once for all the groups since it last ran, while the writer has
        nothing to do or AFTER_MAX_S after the first of them. It may lag the log by that
        much: a crash then leaves it behind, which the audit's verification accepts (a head
        ahead of the log is what it refuses)."""
        after, self._after, self._after_since = self._after, {}, None
        if after:
            run_after_commit(after)
            self.stretches.lap("after_groups")

    def _put_docs(self, docs: list[dict[str, Any]]) -> None:
        self._committing(lambda: self.queue.put_docs(docs))

    def _committing(self, commit: Callable[[], None]) -> None:
        """Run `commit`; the digests of the views it wrote count as written only if it did."""
        try:
            commit()
        except BaseException:
            self._unsaved.clear()
            raise
        self._written.update(self._unsaved)
        self._unsaved.clear()

    def close(self) -> None:
        self.caller.close()

    # ------------------------------------------------------------------ commands

    def _execute(self, rows: list[Row]) -> None:
        """A batch of claimed commands as one group commit on the platform's database
        (`custody.db.group_commit`): their record, their commands' state, ledger and audit
        entries commit in one transaction — one fsync for the batch — and only then are their
        responses and the views they changed stored (one transaction in the queue's
        database), so the API workers answer only what is durable. The group commits early
        wherever something must be durable first (a recovery point, a chain transaction); it
        takes no more commands after `GROUP_SLICE_S` (the rest of the batch goes on in the
        next group). The work a group leaves for after its commit (the audit log's signed
        head) runs after the answers are stored: a crash in between leaves the head behind
        the log, as a crash after any commit may (`audit.log`). A failed group commit stops
        the process: the platform's memory may hold what the database does not; a restart
        rebuilds it from the record and the chain, and the claimed rows run again under their
        keys."""
        n = len(rows)
        self.stretches.lap("claim")
        try:
            self._execute_groups(rows)
        finally:
            self.stretches.commands(n)  # the stall log: the writer's next stretch starts now

    def _execute_groups(self, rows: list[Row]) -> None:
        while rows:  # a group runs for about GROUP_SLICE_S: its answers do not wait longer
            try:
                with group_commit(self.platform.engine) as group:
                    group.defer_after = True  # the audit head: after the answers
                    finished, docs, rows = self._execute_in(rows)
                    self.stretches.lap("group")
            except Exception as exc:
                log.exception("group commit failed; the platform process stops",
                              extra={"event": "group_commit_failed"})  # fmt: skip
                raise GroupCommitFailed(str(exc)) from exc
            self.stretches.lap("group_commit")
            self.commits += group.commits
            self._finish(finished, docs)
            self.stretches.lap("finish")
            after = group.take_after()  # run later, the latest per key (`_run_after`)
            for key, fn in after.items():
                self._after.pop(key, None)
                self._after[key] = fn
            if after and self._after_since is None:
                self._after_since = time.monotonic()

    def _finish(
        self, finished: list[tuple[Row, str, int, dict[str, Any]]], docs: list[dict[str, Any]]
    ) -> None:
        """A group's responses and the views they changed: one transaction of the queue."""
        done = [(r.id, st, code, res) for r, st, code, res in finished]
        self._committing(lambda: self.queue.finish_many(done, docs))
        self.done += len(finished)

    def _execute_in(
        self, rows: list[Row]
    ) -> tuple[list[tuple[Row, str, int, dict[str, Any]]], list[dict[str, Any]], list[Row]]:
        """Run rows until `GROUP_SLICE_S` has passed: (finished, their views, rows left)."""
        finished: list[tuple[Row, str, int, dict[str, Any]]] = []
        docs: list[dict[str, Any]] = []
        affected: set[int] = set()
        t0 = time.monotonic()
        left: list[Row] = []
        answers: dict[int, tuple[int, list[tuple[str, str]], bytes]] = {}
        for i, row in enumerate(rows):
            # a row of a withdrawal batch already run in this group is finished with it (left
            # for the next group it would run again, answered from its key as a replay)
            if i and row.id not in answers and time.monotonic() - t0 >= GROUP_SLICE_S:
                left = rows[i:]
                break
            p = row.payload
            if row.id in answers:
                status, headers, body = answers.pop(row.id)
            else:
                batch = self._withdrawals(rows[i:])
                if batch:
                    answers.update(batch)
                    status, headers, body = answers.pop(row.id)
                    self.stretches.lap("withdrawals")
                else:
                    status, headers, body = self._call(p)
                    self.stretches.lap(f"{row.kind}:{view_kind(str(p.get('path', '')))}")
            if row.kind == "read":
                if p.get("cache") and status < 500 and row.owner_id >= 0:
                    doc = self._doc(row.owner_id, p["view"], status, headers, body, force=True)
                    if doc is not None:
                        docs.append({**doc, "read_at_ms": doc["rendered_at_ms"]})
                finished.append((row, "done", status, _result(headers, body)))
                continue
            if status >= 500:
                if row.client_key and row.attempts < 3:
                    self.queue.requeue(row.id)  # resumes under its key
                    continue
                if status == 500:
                    msg = ("the platform could not complete this command; send it again with"
                           " the same Idempotency-Key to complete it")  # fmt: skip
                    finished.append((row, "failed", 503, _typed(503, "command_failed", msg)))
                else:
                    finished.append((row, "failed", status, _result(headers, body)))
                continue
            finished.append((row, "done", status, _result(headers, body)))
            affected |= self._affected(row)
            if not _between_tick_parts(row.kind, p):
                self._wide_all = True  # not a wallet command: market-wide views too
        if affected:
            self.wide_due = True
            fresh = [k for k in list(self.dirty) + self._keys_of(affected) if k[0] in affected]
            docs += self._render(list(dict.fromkeys(fresh)))
        return finished, docs, left

    def _withdrawals(self, rows: list[Row]) -> dict[int, tuple[int, list[tuple[str, str]], bytes]]:
        """The withdrawals at the head of `rows` that take the typed path (`api.direct`), run
        as one batch (`Platform.withdraw_batch`): their answers by row id. Empty when the
        first row is not one (it goes through the application)."""
        prepared: list[tuple[Row, direct.Prepared]] = []
        seen = direct.Seen()
        for row in rows:
            p = row.payload
            if row.kind != "write" or not direct.WITHDRAWAL_PATH.match(str(p.get("path", ""))):
                break
            try:
                one = direct.prepare(self.api, p["method"], p["path"],
                                     [(k, v) for k, v in p["headers"]],
                                     bytes.fromhex(p.get("body_hex", "")), seen)  # fmt: skip
            except Exception:
                log.exception("a withdrawal could not be prepared; through the application")
                one = None
            if one is None:
                break
            prepared.append((row, one))
        if not prepared:
            return {}
        try:
            answers = direct.run(self.api, [one for _, one in prepared])
        except Exception:
            log.exception("a batch of withdrawals failed in the platform process")
            return {row.id: (500, [], b"") for row, _ in prepared}
        return {row.id: a for (row, _), a in zip(prepared, answers, strict=True)}

    def _call(self, p: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [(k, v) for k, v in p["headers"]]
        body = bytes.fromhex(p.get("body_hex", ""))
        try:
            return self.caller.call(p["method"], p["path"], p.get("query", ""), headers, body,
                                    p.get("client", "127.0.0.1"))  # fmt: skip
        except Exception:
            log.exception("command failed in the platform process")
            return 500, [], b""

    def _affected(self, row: Row) -> set[int]:
        """The viewers whose views a write can change: the sender and the users it names."""
        out = {row.owner_id}
        out |= {int(m) for m in _USER_IN_PATH.findall(row.payload["path"])}
        try:
            body = json.loads(bytes.fromhex(row.payload.get("body_hex", "")) or b"null")
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("user_id"), int):
            out.add(body["user_id"])
        return out

    # ------------------------------------------------------------------ read models

    def _keys_of(self, viewers: set[int]) -> list[tuple[int, str]]:
        return [(v, path) for v, path, _ in self.queue.doc_keys(viewers)]

    def _all_dirty(self) -> None:
        self._last_full = time.monotonic()
        for viewer, path, kind in self.queue.doc_keys():
            self.dirty.setdefault((viewer, path), kind)

    def _wide_dirty(self) -> None:
        """Staff and anonymous viewers' views, and every view without an id in its path;
        after wallet commands alone, the staff's views but the `WALLET_BLIND` ones."""
        now = time.monotonic()
        wallet_only = not self._wide_all and now - self._last_full < BLIND_EVERY_S
        self.wide_due = self._wide_all = False
        self._last_wide = now
        if not wallet_only:
            self._last_full = now
        cost = 0.0
        for viewer, path, kind in self.queue.doc_keys():
            role = self._role(viewer)
            if wallet_only:
                wide = role is not None and role not in HOLDERS and kind not in WALLET_BLIND
            else:
                wide = "{id}" not in kind or role not in HOLDERS
            if wide:
                self.dirty.setdefault((viewer, path), kind)
                cost += self._cost.get((viewer, path), 0.0)
        self._wide_gap = max(WIDE_EVERY_S, cost / WIDE_SHARE)

    def _render_dirty(self, n: int, budget_s: float | None = None) -> list[dict[str, Any]]:
        keys = list(self.dirty)
        if budget_s is not None and self._warming():
            keys = [k for k in keys if self.dirty[k] not in WARMED]
        return self._render(keys[:n], budget_s)

    def _warming(self) -> bool:
        """With a stale `WARMED` view: one slice of `Platform.warm_views`; True while the
        figures are not all fresh (those views wait for the next step), for at most
        `WARM_MAX_S`."""
        if not any(kind in WARMED for kind in self.dirty.values()):
            self._warm_since = None
            return False
        warm = getattr(self.platform, "warm_views", None)
        if warm is None:
            return False
        now = time.monotonic()
        if self._warm_since is None:
            self._warm_since = now
        elif now - self._warm_since >= WARM_MAX_S:
            self._warm_since = None
            return False
        done = bool(warm(WARM_BUDGET_S))
        self.stretches.lap("warm")
        if done:
            self._warm_since = None
        return not done

    def _render(
        self, keys: list[tuple[int, str]], budget_s: float | None = None
    ) -> list[dict[str, Any]]:
        """Render `keys` (those left when `budget_s` runs out stay dirty)."""
        out = []
        t_end = None if budget_s is None else time.monotonic() + budget_s
        for i, (viewer, key) in enumerate(keys):
            # a view is not started when its last render would overrun the budget (but the
            # first: every view gets rendered)
            if (
                t_end is not None
                and i
                and time.monotonic() + self._cost.get((viewer, key), 0.0) >= t_end
            ):
                break
            t0 = time.monotonic()
            self.dirty.pop((viewer, key), None)
            path, _, rest = key.partition("?")
            query, _, variant = rest.partition("|") if rest else ("", "", "")
            if "|" in path:
                path, _, variant = path.partition("|")
            headers = [("accept", "application/json")]
            token = self._token(viewer)
            if viewer and token is None:
                continue  # the user is gone: the view goes stale and is not served
            if token is not None:
                headers.append(("authorization", f"Bearer {token}"))
            if variant.startswith("lang="):
                headers.append(("cookie", f"lang={variant[5:]}"))
            p = {"method": "GET", "path": path, "query": query, "headers": headers}
            status, h, body = self._call(p)
            self._cost[(viewer, key)] = time.monotonic() - t0
            self.stretches.lap(f"render:{view_kind(key)}")
            if status < 500:
                doc = self._doc(viewer, key, status, h, body)
                if doc is not None:
                    out.append(doc)
        return out

    def _doc(
        self,
        viewer: int,
        key: str,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        force: bool = False,
    ) -> dict[str, Any] | None:
        """The row of a rendered view; None when it is what was last committed for it (not
        `force`: a first render is always written)."""
        keep = [[k, v] for k, v in headers if k.lower() not in ("set-cookie", "x-request-id")]
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{status}\n{json.dumps(keep)}\n".encode())
        h.update(body)
        digest = h.digest()
        if not force and self._written.get((viewer, key)) == digest:
            return None
        self._unsaved[(viewer, key)] = digest
        self.seq += 1
        return {"viewer_id": viewer, "path": key, "kind": view_kind(key), "status_code": status,
                "headers": json.dumps(keep), "body": body, "seq": self.seq,
                "rendered_at_ms": now_ms()}  # fmt: skip

    def _role(self, viewer: int) -> Role | None:
        if viewer not in self._roles:
            try:
                self._roles[viewer] = self.users.get(viewer).role if viewer else None
            except NotFound:
                self._roles[viewer] = None
        return self._roles[viewer]

    def _token(self, viewer: int) -> str | None:
        if not viewer:
            return None
        cached = self._tokens.get(viewer)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            user = self.users.get(viewer)
        except NotFound:
            return None
        token = issue_token(user, self.api.secret, ttl_s=600)
        self._tokens[viewer] = (time.monotonic() + 300, token)
        return token

    def _beat(self) -> None:
        p = self.platform
        info = {
            "projection_seq": self.seq, "stale_views": len(self.dirty), "commands_done": self.done,
            "command_commits": self.commits,
            "market_day": p.market.today.isoformat(), "replay_done": bool(p.replay_done),
            "paused": p.paused_reason,
        }  # fmt: skip
        self.queue.beat(os.getpid(), self.started_at_ms, self.ready, info)


def _between_tick_parts(kind: str, payload: dict[str, Any]) -> bool:
    return (kind == "write" and payload.get("method") == "POST"
            and _BETWEEN_TICK_PARTS.match(str(payload.get("path", ""))) is not None)  # fmt: skip


def _result(headers: list[tuple[str, str]], body: bytes) -> dict[str, Any]:
    try:
        return {"headers": [list(h) for h in headers], "body": body.decode()}
    except UnicodeDecodeError:
        return {"headers": [list(h) for h in headers], "body_hex": body.hex()}
