"""Keeper: turns the monitor's states into the engine's entry points, and keeps the monitor
in step with the chain.

- WARNING → `warn`, at most once per account and trading day (journaled, so a restarted
  keeper does not warn again); TOPUP_DUE → `top_up`; LIQUIDATION_DUE → `start_liquidation`;
  an account in liquidation with no open orders → `end_liquidation` when it is back above
  the line or sold out, else the next round (`start_liquidation`) at the next session.
- Batched: the accounts a tick (or a follow-up) acts on go to the Liquidator's `keep` in one
  transaction (up to `KEEP_BATCH` per call); the chain skips an account that is no longer
  eligible with a `KeeperSkipped` event carrying the single entry point's revert string. If the
  batch reverts as a whole, the keeper falls back to one call per account.
- In parts (`on_tick_parts`, `follow_up_parts`; the platform process's writer serves queued
  commands between two): with `part_budget_s` set, a batch holds only the actions estimated to
  take about that much of the thread's CPU (per action kind, from the batches before), and the
  references are recorded in runs of about that long; without it, as one part. Run again after
  a restart, what the chain shows done is not done twice (the trading session's progress).
- NAV stop (issue 13): the keeper records each account's reference (assets and equity) on
  chain when it first has debt, again after a liquidation ended, and again when the account
  levered up since (a financed buy filled) while not below its reference equity
  (`mark_references`, `Liquidator.set_reference`; at the session open, and at the tick where
  an intraday financed buy settled); an account whose equity falls below
  reference equity − the Liquidator's `nav_stop_bps` of reference assets is LIQUIDATION_DUE
  whatever its ratio below `nav_stop_below_bps` (the Liquidator re-checks it and closes the
  account in full). A haircut step (the stressed set phasing in, the regime switching) is not a
  loss: around the operator's step (`across_haircut_step`, from `risk/regime.py`
  `apply_on_chain`) the keeper reads each referenced account's assets before and after and
  moves its reference equity by the difference (`Liquidator.shift_references`).
- Rate-limited: at most `max_actions_per_tick` calls per tick, worst ratios first; an account
  acted on is left alone for `cooldown_s` (chain time) unless its state got worse.
- The contract re-verifies every call. A revert because the price moved back ("above warning
  line", "above liquidation line", "no reserve", "liquidation orders open") is counted and
  skipped, never fatal.

`ChainSync` reads the engine's events and refreshes the touched accounts in the monitor from
the chain's own views (cash + pending, reserve, debt with interest, positions), so the monitor
is updated incrementally and agrees with what the engine will re-check. It first applies the
`RiskParams` setter events (tier lines, haircuts, ST status) to the monitor (`ParamsSync`), so
an operator's change is used from the next tick.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from crowdleverage.chain.codes import code_from_chain
from crowdleverage.chain.margin import ENGINE, LIQUIDATOR, ORDERBOOK, margin_events
from crowdleverage.chain.params import ParamsSync, effective_haircut_bps, read_tier
from crowdleverage.chain.structs import order_account, read_account, read_reference
from crowdleverage.domain.errors import ContractRevert, NotFound
from crowdleverage.domain.params import BPS, TIERS, stressed_lines
from crowdleverage.risk.monitor import AccountState, RiskMonitor, TickResult

log = logging.getLogger("crowdleverage.keeper")

MOVED_BACK = frozenset(
    {
        "margin: above warning line",
        "margin: above liquidation line",
        "margin: no reserve",
        "margin: liquidation orders open",
        "margin: still below liquidation line",
        "margin: in liquidation",  # set_reference: the account entered a liquidation meanwhile
        "margin: no debt or no equity",  # set_reference: repaid or under water meanwhile
    }
)


T = TypeVar("T")

# `Liquidator.keep` action codes and its batch bound.
KEEP_CODES = {"warn": 0, "top_up": 1, "start_liquidation": 2, "end_liquidation": 3}
KEEP_BATCH = 64
# with a part budget: an action of a kind not timed yet is estimated at this share of it (a
# liquidation's start, its orders for each position, ~120 ms of CPU on the demo: all of it)
FIRST_ACTION_SHARE = 0.25
FIRST_SHARE_OF = {"start_liquidation": 1.0}
# NAV stop: the reference follows an account whose debt grew by more than this (bps of the
# reference's debt) since it was recorded — a new financed buy, not interest (`_levered_up`)
RELEVER_BPS = 100
# ... if its equity now is at least the reference's less this (bps of reference assets: the
# interest and costs of the buy); further below, it keeps the old reference
RELEVER_SLACK_BPS = 50


@dataclass(frozen=True, slots=True)
class KeeperConfig:
    cooldown_s: int = 300
    max_actions_per_tick: int = 50


@dataclass
class KeeperStats:
    calls: Counter[str] = field(default_factory=Counter)  # action → successful calls
    moved_back: Counter[str] = field(default_factory=Counter)  # revert reason → count
    refused: Counter[str] = field(default_factory=Counter)  # other reverts
    deferred: int = 0  # left for a later tick by the rate limit


def _drain(parts: Generator[None, None, T]) -> T:
    """Run `parts` through; what it returns."""
    while True:
        try:
            next(parts)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


class Keeper:
    def __init__(
        self,
        chain: Any,
        monitor: RiskMonitor,
        *,
        config: KeeperConfig | None = None,
        journal: Path | None = None,
        actor: str = "keeper",
    ) -> None:
        self.chain = chain
        self.monitor = monitor
        self.config = config or KeeperConfig()
        self.actor = actor
        self.stats = KeeperStats()
        self._journal = journal
        self._warned: dict[str, list[str]] = {}  # trading day → accounts warned
        self._last: dict[str, tuple[int, int]] = {}  # account → (chain time, state)
        self._regime: tuple[bool, int] = (False, 0)  # (stressed, line bps) the monitor has
        # NAV stop: the chain's references (account → (assets, equity) fen), read once each
        self._refs: dict[str, tuple[int, int]] = {}
        self._nav_stop_bps: int | None = None
        self._nav_stop_below = 0  # the stop applies below this ratio (bps)
        self._ref_arrays: tuple[np.ndarray, np.ndarray] | None = None  # per monitor row
        self._ref_refused: set[str] = set()  # set_reference refused this session
        # None: one part (a `keep` batch of up to `KEEP_BATCH`); else the thread CPU a part
        # should take about (`_chunk`, `_due`)
        self.part_budget_s: float | None = None
        self._action_s: dict[str, float] = {}  # action → thread CPU per action in a batch
        self._part_t0 = 0.0  # the thread's CPU clock when the current part began
        if journal is not None and journal.exists():
            self._warned = json.loads(journal.read_text())

    # ── per tick ────────────────────────────────────────────────────────────────────────

    def sync_regime(self) -> bool:
        """The monitor's lines follow the Liquidator's: while the OrderBook's regime is
        stressed, each tier's lines rise by the Liquidator's `stressed_line_bps`; when the
        regime switches, every haircut is read again from RiskParams (its stressed values
        while stressed). Returns whether the monitor's lines or haircuts changed."""
        stressed = int(self.chain.call(ORDERBOOK, "regime")) == 1
        line_bps = int(self.chain.call(LIQUIDATOR, "stressed_line_bps")) if stressed else 0
        if (stressed, line_bps) == self._regime and not stressed:
            return False  # calm: the monitor's lines are the chain's (chain.params.ParamsSync)
        haircuts = stressed != self._regime[0] and self._haircuts()
        self._regime = (stressed, line_bps)
        # the tiers as RiskParams holds them now (an operator's TierSet included)
        tiers = {t: read_tier(self.chain, t) for t in TIERS}
        lines = {
            t: stressed_lines(tier, line_bps) if stressed else
            (tier.warning_ratio_bps, tier.liquidation_ratio_bps)
            for t, tier in tiers.items()
        }  # fmt: skip
        return self.monitor.set_lines(lines) or haircuts

    def _haircuts(self) -> bool:
        """The regime switched: every monitored security's haircut as RiskParams values it
        now (its stressed haircuts while stressed). Returns True (the monitor changed)."""
        day = int(self.chain.call("PriceOracle", "trading_day"))
        for code in self.monitor.codes:
            self.monitor.set_base_haircut(code, effective_haircut_bps(self.chain, code, day))
        return True

    # ── NAV stop ────────────────────────────────────────────────────────────────────────

    def nav_stop_bps(self) -> int:
        """The Liquidator's NAV stop (bps of reference assets; 0: none). A Liquidator deployed
        by a release before the stop has no such function: its calls revert, and it has no stop."""
        if self._nav_stop_bps is None:
            try:
                self._nav_stop_bps = int(self.chain.call(LIQUIDATOR, "nav_stop_bps"))
                self._nav_stop_below = int(self.chain.call(LIQUIDATOR, "nav_stop_below_bps"))
            except ContractRevert:
                log.info("nav stop absent", extra={"event": "nav_stop_absent"})
                self._nav_stop_bps, self._nav_stop_below = 0, 0
        return self._nav_stop_bps

    def reference(self, who: str) -> tuple[int, int]:
        """(assets, equity) fen of the account's NAV-stop reference on chain ((0, 0): none)."""
        if who not in self._refs:
            r = read_reference(self.chain, who)
            self._refs[who] = (r.assets, r.equity)
        return self._refs[who]

    def mark_references(self, *, intraday: bool = False) -> int:
        """See `_mark_references_parts` (whole)."""
        self._part_t0 = time.thread_time()
        return _drain(self._mark_references_parts(intraday=intraday))

    def _mark_references_parts(self, *, intraday: bool = False) -> Generator[None, None, int]:
        """Record the reference of every monitored account with debt, not in liquidation and
        without one (new debt, or a liquidation ended), and again for one that levered up
        since (`_levered_up`); returns how many were recorded. `intraday` (after each tick's
        fills settled, `follow_up`): only the accounts whose debt the monitor sees above their
        reference's by more than `RELEVER_BPS`, or with debt and none (a financed buy settled
        this tick), selected vectorised; an account the chain refused since the session
        opened is left to the next session. In parts: a yield before a reference once the
        part has taken `part_budget_s` (`_due`; run again, one recorded is not again)."""
        if self.nav_stop_bps() == 0:
            return 0
        n = self.monitor.n_accounts
        debt = self.monitor.debt_fen[:n]
        cand = (debt > 0) & ~self.monitor.liquidating[:n]
        if intraday:
            all_assets, all_equity = self._reference_arrays()
            grown = debt.astype(float) * BPS > (all_assets - all_equity) * (BPS + RELEVER_BPS)
            cand &= (all_assets == 0) | grown
        else:
            self._ref_refused.clear()
        done = 0
        for r in np.flatnonzero(cand):
            who = self.monitor.account_id(int(r))
            if intraday and who in self._ref_refused:
                continue
            ref_assets, ref_equity = self.reference(who)
            if ref_assets and not self._levered_up(who, int(debt[r]), ref_assets, ref_equity):
                continue
            if self._due():
                yield
                self._part_t0 = time.thread_time()
            if not self._call("set_reference", who, quiet=True):
                self._ref_refused.add(who)
                continue
            self._refs.pop(who)  # read back what the chain recorded
            self._ref_arrays = None
            done += 1
        return done

    def _reference_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Every monitored row's reference (assets, equity) fen as floats ((0, 0): none),
        read from the chain once per account."""
        n = self.monitor.n_accounts
        if self._ref_arrays is None or self._ref_arrays[0].size != n:
            ref = np.array([self.reference(self.monitor.account_id(r)) for r in range(n)],
                           dtype=float).reshape(n, 2)  # fmt: skip
            self._ref_arrays = (ref[:, 0], ref[:, 1])
        return self._ref_arrays

    @property
    def _shift_file(self) -> Path | None:
        """Where a reference shift in flight is recorded (beside the keeper's journal): the
        accounts and their assets before the haircut step, written before the step."""
        return None if self._journal is None else self._journal.with_suffix(".shift.json")

    def across_haircut_step(self, step: Callable[[], T]) -> T:
        """Run `step` (the operator's change of the regime or the stressed haircut scale, at
        unchanged prices) and move each NAV-stop reference's equity by what the step changed
        of its account's assets (`MarginEngine.keeper_view`, before and after), so that the
        stop counts only market losses; returns what `step` returned. A Liquidator without
        `shift_references` (an earlier release) keeps its references as they are.

        With a journal, the accounts and their assets before the step are written to the
        shift file first (atomically, fsynced), and the file is removed once every shift is
        on chain: a restart between the step and its shifts completes them
        (`resume_shift`)."""
        if self.nav_stop_bps() == 0:
            return step()
        self.resume_shift()
        n = self.monitor.n_accounts
        rows = np.flatnonzero(self.monitor.debt_fen[:n] > 0)
        who = [self.monitor.account_id(int(r)) for r in rows]
        who = [w for w in who if self.reference(w)[0] > 0]
        before = [int(self.chain.call(ENGINE, "keeper_view", w)[0]) for w in who]
        self._write_shift(who, before)
        out = step()
        self._shift(who, before, since_block=None)
        return out

    def resume_shift(self) -> int:
        """Complete the reference shift a restart interrupted (the shift file names the
        accounts and their assets before the step): the step's effect is read from the chain
        now — the step is done or not, and no price moved since (the session's open reports
        the day's first tick only after its regime step, and a restarted open reports again
        nothing its first run reported) — and the accounts the chain shows shifted since the
        file was written are left out. Returns the accounts shifted now."""
        path = self._shift_file
        if path is None or not path.exists():
            return 0
        rec = json.loads(path.read_text())
        log.info("reference shift resumed", extra={"event": "reference_shift_resumed",
                                                    "accounts": len(rec["who"])})  # fmt: skip
        return self._shift(list(rec["who"]), [int(b) for b in rec["before"]],
                           since_block=int(rec["block"]))  # fmt: skip

    def _write_shift(self, who: list[str], before: list[int]) -> None:
        path = self._shift_file
        if path is None:
            return
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump({"who": who, "before": before, "block": self.chain.block_number()}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _shift(self, who: list[str], before: list[int], *, since_block: int | None) -> int:
        """Shift each reference by its account's assets now less `before`; `since_block`: a
        resumed shift, whose accounts shifted after that block are done already."""
        if since_block is not None:
            done = {str(e.args["account"]).lower()
                    for e in self.chain.events(LIQUIDATOR, "ReferenceShifted")
                    if e.block > since_block}  # fmt: skip
            pairs = [(w, b) for w, b in zip(who, before, strict=True) if w.lower() not in done]
            who, before = [w for w, _ in pairs], [b for _, b in pairs]
        after = [int(self.chain.call(ENGINE, "keeper_view", w)[0]) for w in who]
        moves = [(w, a - b) for w, b, a in zip(who, before, after, strict=True) if a != b]
        shifted = 0
        absent = False
        for up in (False, True):
            part = [(w, abs(d)) for w, d in moves if (d > 0) is up]
            for i in range(0, len(part), KEEP_BATCH):
                chunk = part[i : i + KEEP_BATCH]
                try:
                    self.chain.send(LIQUIDATOR, "shift_references", [w for w, _ in chunk],
                                    [d for _, d in chunk], up, actor=self.actor)  # fmt: skip
                except ContractRevert as err:
                    if not err.reason.startswith("margin:"):  # no such function: absent
                        log.info("reference shift absent",
                                 extra={"event": "reference_shift_absent"})  # fmt: skip
                        absent = True
                        break
                    self._count_refusal(err.reason, quiet=False)  # e.g. out of bounds
                    log.warning("references not shifted", extra={
                        "event": "reference_shift_refused", "reason": err.reason})  # fmt: skip
                    continue
                shifted += len(chunk)
                for w, _ in chunk:
                    self._refs.pop(w, None)
            if absent:
                break
        if moves:
            self._ref_arrays = None
            log.info("references shifted", extra={"event": "references_shifted",
                                                   "accounts": shifted})  # fmt: skip
        path = self._shift_file
        if path is not None:
            path.unlink(missing_ok=True)
        return shifted

    def _levered_up(self, who: str, debt_fen: int, ref_assets: int, ref_equity: int) -> bool:
        """Whether the reference should follow the account: its debt grew by more than
        `RELEVER_BPS` over the reference's (a financed buy filled; interest alone takes months
        to get there) and its equity now is at least the reference's (less
        `RELEVER_SLACK_BPS` of its assets for interest and costs). Measured from the old,
        smaller base the stop would fire after a smaller fall of the larger book; an account
        below its reference equity keeps the old reference (re-marking would forgive the loss
        so far). The chain's view decides (the monitor's debt only selects candidates)."""
        ref_debt = ref_assets - ref_equity
        if debt_fen * BPS <= ref_debt * (BPS + RELEVER_BPS):
            return False
        view = self.chain.call(ENGINE, "keeper_view", who)
        assets, debt = int(view[0]), int(view[1])
        slack = ref_assets * RELEVER_SLACK_BPS // BPS
        return debt * BPS > ref_debt * (BPS + RELEVER_BPS) and assets - debt >= ref_equity - slack

    def _stopped(self, result: TickResult) -> np.ndarray:
        """Rows below their NAV stop (assets from the monitor's ratio and debt), vectorised
        over the references known (read from the chain once per account)."""
        n = self.monitor.n_accounts
        stop = self.nav_stop_bps()
        if stop == 0:
            return np.zeros(n, dtype=bool)
        ref_assets, ref_equity = self._reference_arrays()
        debt = self.monitor.debt_fen[:n].astype(float)
        with np.errstate(invalid="ignore"):
            assets = np.where(debt > 0, result.ratio_bps[:n] * debt / BPS, 0.0)
        out: np.ndarray = (
            (ref_assets > 0) & (debt > 0) & (assets * BPS < self._nav_stop_below * debt)
            & (assets * BPS + stop * ref_assets < (debt + ref_equity) * BPS)
        )  # fmt: skip
        return out

    def on_tick(self, result: TickResult, day: str) -> int:
        """Act on every account below a line or its NAV stop; returns the number of
        successful calls. The lines follow the chain's regime first (a change re-ticks the
        monitor)."""
        return _drain(self.on_tick_parts(result, day))

    def on_tick_parts(self, result: TickResult, day: str) -> Generator[None, None, int]:
        """`on_tick` in parts: it yields after each `keep` batch but the last (`_keep_parts`)."""
        self._part_t0 = time.thread_time()
        if self.sync_regime():
            result = self.monitor.tick()
        stopped = self._stopped(result)
        if stopped.any():  # below the NAV stop: liquidation due whatever the ratio
            states = result.state.copy()
            n = stopped.size
            due = stopped & (states[:n] != AccountState.LIQUIDATING)
            states[:n][due] = AccountState.LIQUIDATION_DUE
            result = TickResult(result.ratio_bps, states, result.changed)
        rows = np.flatnonzero(result.state != AccountState.HEALTHY)
        order = rows[np.argsort(result.ratio_bps[rows], kind="stable")]  # worst first
        now = self.chain.block_time()
        budget = self.config.max_actions_per_tick
        batch: list[tuple[str, str]] = []
        for r in order.tolist():
            state = AccountState(int(result.state[r]))
            who = self.monitor.account_id(r)
            last = self._last.get(who)
            if last and now - last[0] < self.config.cooldown_s and state <= last[1]:
                continue
            if budget == 0:
                self.stats.deferred += 1
                continue
            action = self._action(who, state, day)
            if action is None:
                continue
            budget -= 1
            batch.append((who, action))
            self._last[who] = (now, int(state))
        done = yield from self._keep_parts(batch)
        for who, action in batch:
            if action == "warn" and who in done:
                self._remember_warning(day, who)
        return len(done)

    def _action(self, who: str, state: AccountState, day: str) -> str | None:
        if state is AccountState.WARNING:
            return None if who in self._warned.get(day, []) else "warn"
        if state is AccountState.TOPUP_DUE:
            return "top_up"
        if state is AccountState.LIQUIDATION_DUE:
            return "start_liquidation"
        return None  # LIQUIDATING: follow_up() handles it when its orders are done

    def follow_up(self, accounts: Iterable[str], *, new_session: bool) -> int:
        """Accounts in liquidation with no open orders: end it when possible; at a new
        session, emit the next round (lots unlocked by T+1, seals reopened). First the NAV-stop
        references (`mark_references`): at a new session of every account with debt and none
        or levered up, after a tick (the session's `finish_step`, once its fills settled) of
        those whose financed buy settled in it."""
        return _drain(self.follow_up_parts(accounts, new_session=new_session))

    def follow_up_parts(
        self, accounts: Iterable[str], *, new_session: bool
    ) -> Generator[None, None, int]:
        """`follow_up` in parts: it yields within the references' recording once a part took
        `part_budget_s` and between two `keep` batches (`_keep_parts`), and returns what
        `follow_up` returns."""
        self._part_t0 = time.thread_time()
        # a financed buy settled this tick (not `new_session`): its reference follows at once
        yield from self._mark_references_parts(intraday=not new_session)
        idle = []
        for who in accounts:
            a = read_account(self.chain, who)
            if a.locked and not a.open_liq:
                idle.append(who)
        ended = yield from self._keep_parts([(who, "end_liquidation") for who in idle], quiet=True)
        for who in ended:  # sold out: the chain cleared the reference
            self._refs.pop(who, None)
            self._ref_arrays = None
        started: set[str] = set()
        if new_session:
            started = yield from self._keep_parts(
                [(w, "start_liquidation") for w in idle if w not in ended]
            )
        return len(ended) + len(started)

    def _due(self) -> bool:
        """The current part has taken `part_budget_s` of the thread's CPU (never without)."""
        budget = self.part_budget_s
        return budget is not None and time.thread_time() - self._part_t0 >= budget

    def _chunk(self, batch: list[tuple[str, str]]) -> int:
        """How many of `batch`'s first actions go in the next `keep` transaction: up to
        `KEEP_BATCH`, and with `part_budget_s` those estimated to fit in it (at least one;
        a budget of 0: one)."""
        budget = self.part_budget_s
        if budget is None:
            return min(len(batch), KEEP_BATCH)
        if budget <= 0:
            return 1  # (one action a part)
        n, cost = 0, 0.0
        for _, action in batch[:KEEP_BATCH]:
            cost += self._action_s.get(action, self._guess(action))
            if n and cost > budget:
                break
            n += 1
        return n

    def _timed(self, chunk: list[tuple[str, str]], spent: float) -> None:
        """The CPU per action estimates after `chunk` took `spent`: scaled so that they
        predict it (one kind alone: `spent` / its count)."""
        kinds = {a for _, a in chunk}
        predicted = sum(self._action_s.get(a, self._guess(a)) for _, a in chunk)
        if predicted <= 0:
            return
        for a in kinds:
            self._action_s[a] = self._action_s.get(a, self._guess(a)) * spent / predicted

    def _guess(self, action: str) -> float:
        """The CPU of an action of a kind not timed yet (a share of the budget)."""
        share = FIRST_SHARE_OF.get(action, FIRST_ACTION_SHARE)
        return (self.part_budget_s or 0.0) * share

    def _keep(self, batch: list[tuple[str, str]], *, quiet: bool = False) -> set[str]:
        """Run `batch` ((account, action) pairs) through `Liquidator.keep`; returns the
        accounts acted on. A skipped account is counted like the single call's revert."""
        return _drain(self._keep_parts(batch, quiet=quiet))

    def _keep_parts(
        self, batch: list[tuple[str, str]], *, quiet: bool = False
    ) -> Generator[None, None, set[str]]:
        """`_keep` in parts: a yield between two `keep` transactions (`_chunk` sizes them)
        once the part has taken `part_budget_s` (`_due`)."""
        done: set[str] = set()
        start = 0
        while start < len(batch):
            if start and self._due():
                yield
                self._part_t0 = time.thread_time()
            chunk = batch[start : start + self._chunk(batch[start:])]
            start += len(chunk)
            t0 = time.thread_time()
            try:
                done |= self._keep_chunk(chunk, quiet=quiet)
            finally:
                self._timed(chunk, time.thread_time() - t0)
        return done

    def _keep_chunk(self, chunk: list[tuple[str, str]], *, quiet: bool) -> set[str]:
        """One `keep` transaction (a single call for one action; one call each if the batch
        reverts as a whole); returns the accounts acted on."""
        done: set[str] = set()
        if len(chunk) == 1:
            who, action = chunk[0]
            if self._call(action, who, quiet=quiet):
                done.add(who)
            return done
        try:
            tx = self.chain.send(
                LIQUIDATOR, "keep", [w for w, _ in chunk],
                [KEEP_CODES[a] for _, a in chunk], actor=self.actor,
            )  # fmt: skip
        except ContractRevert:
            # one account broke the batch (e.g. a refused sell): one call each
            return {w for w, a in chunk if self._call(a, w, quiet=quiet)}
        skipped = {
            str(e.args["account"]).lower(): str(e.args["reason"])
            for e in tx.events
            if e.event == "KeeperSkipped"
        }
        for who, action in chunk:
            reason = skipped.get(who.lower())
            if reason is None:
                self.stats.calls[action] += 1
                done.add(who)
            else:
                self._count_refusal(reason, quiet=quiet)
        return done

    def _call(self, action: str, who: str, *, quiet: bool = False) -> bool:
        try:
            self.chain.send(LIQUIDATOR, action, who, actor=self.actor)
        except ContractRevert as err:
            self._count_refusal(err.reason, quiet=quiet)
            return False
        self.stats.calls[action] += 1
        return True

    def _count_refusal(self, reason: str, *, quiet: bool) -> None:
        if reason in MOVED_BACK:
            if not quiet:
                self.stats.moved_back[reason] += 1
        else:
            self.stats.refused[reason] += 1

    def _remember_warning(self, day: str, who: str) -> None:
        self._warned = {day: [*self._warned.get(day, []), who]}  # only today matters
        if self._journal is not None:
            tmp = self._journal.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._warned))
            os.replace(tmp, self._journal)

    def note_done(self, who: str, action: str, day: str, *, skipped: bool = False) -> None:
        """`action` on `who` is on chain from the tick a restart interrupted (found by the
        trading session; `skipped`: the chain skipped it): as if this keeper had tried it — the
        account cools down at the state the action is for, and a warning counts for the day —
        so the tick, run again, does not do it twice."""
        state = {"warn": AccountState.WARNING, "top_up": AccountState.TOPUP_DUE}.get(
            action, AccountState.LIQUIDATION_DUE
        )
        self._last[who] = (self.chain.block_time(), int(state))
        if action == "warn" and not skipped:
            self._remember_warning(day, who)


class ChainSync:
    """Engine events → monitor updates for the accounts they touch."""

    def __init__(self, chain: Any, monitor: RiskMonitor) -> None:
        self.chain = chain
        self.monitor = monitor
        self.cursor = 0
        self._codes: dict[str, set[str]] = {}
        self._owners: dict[int, str] = {}  # order id → its account (an order never changes it)
        self.params = ParamsSync(chain, monitor)

    def sync(self) -> set[str]:
        self.params.chain = self.chain  # the chain may have been reopened (a restart)
        self.params.sync()
        events = margin_events(self.chain, since=self.cursor)
        if not events:
            return set()
        self.cursor = events[-1].seq
        touched: set[str] = set()
        for e in events:
            who = e.args.get("account", e.args.get("who"))  # corporate actions: `who`
            if "order_id" in e.args:
                oid = int(e.args["order_id"])
                if who is not None:
                    self._owners[oid] = str(who)
                else:
                    who = self._owners.get(oid)
                    if who is None:
                        who = self._owners[oid] = order_account(self.chain, oid)
            if who is not None:
                touched.add(str(who))
        for who in touched:
            self.refresh(who)
        return touched

    def refresh_all(self) -> None:
        """Every monitored account from the chain (at day open: interest has accrued on every
        debt since it was last read; between events the monitor's debts are that stale)."""
        for r in range(self.monitor.n_accounts):
            self.refresh(self.monitor.account_id(r))

    def refresh(self, who: str) -> None:
        try:
            self.monitor.row(who)
        except NotFound:
            return  # not a monitored account
        a = read_account(self.chain, who)
        self.monitor.set_balances(
            who,
            cash_fen=a.cash_fen + a.pending_fen,  # free cash + cash pending in buys (as the engine)
            reserve_fen=a.reserve_fen,
            debt_fen=int(self.chain.call(ENGINE, "debt_of", who)),
        )
        self.monitor.set_liquidating(who, a.locked)
        held = {code_from_chain(int(c)) for c in self.chain.call(ENGINE, "codes_of", who)}
        for code in held | self._codes.get(who, set()):
            qty = int(self.chain.call(ENGINE, "positions", who, int(code))) if code in held else 0
            self.monitor.set_position(who, code, qty)
        self._codes[who] = held
