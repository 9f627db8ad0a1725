"""`TradingSession`: one trading day of the platform — oracle feeder → risk monitor → keeper →
broker → exchange, the close and the pool's epoch — used by the platform process
(`flows.Platform` through `ChainFinancing`), `crowdlev replay` and `crowdlev run`
(`risk.replay.Replay`). There is no second copy of this loop.

The day:

* `open(day)`: halts into the monitor; the oracle's day (previous closes, bands) and the
  exchange's session; the market regime and the Liquidator's liquidity published at the last
  close go on chain; corporate actions of the day applied (before any order or tick); orders
  received since the last session placed; every watched account refreshed from the chain
  (interest accrued overnight); the first tick reported to the oracle.
* `step()`: one tick — prices to the oracle (the first was reported at the open) and the
  monitor, the chain's events into the monitor, the keeper acts on accounts below a line
  (`Keeper.on_tick`, once per tick), follow-ups of liquidations, new orders to the exchange,
  the exchange matches, fills settled on chain, follow-ups again.
* `close(epoch)`: the remaining ticks, unfilled orders expire and their cash is released,
  liquidations whose orders are done end, then the pool's epoch (`EpochClose`); in parts
  (`close_parts`) like a step.
* `resume(day, ticks_done)`: a restarted process reopens a day after `ticks_done` ticks
  without reporting anything to the oracle again.

Exact resumption (`progress`, a small JSON file beside the broker's and keeper's journals):
before the chain effects of the open and of each step the session writes where the chain
stood (`ChainMark`: the latest block, its time, an event seq before it), and again inside the
step once the keeper's first-tick follow-up may start (`KEPT`) and once the exchange's fills
are journaled by the broker (`MATCHED`). A restart that reopens or resumes the day the file
names runs the interrupted part again and leaves out what the chain shows it already did:

* oracle batches whose reports the oracle holds from a block after the mark (each code, this
  reporter, today; a batch lands whole or not at all) and bands it already holds for the day;
* keeper actions (`MarginWarning`, `ToppedUp`, `LiquidationStarted`, `LiquidationEnded`,
  `KeeperSkipped`) in a block after the mark: those accounts cool down for the tick
  (`Keeper.note_done`) and are left out of the first tick's follow-up;
* the 20-day liquidity of codes published (`LiquiditySet`) after the open's mark;
* after `MATCHED`, the exchange does not match the tick again: the broker settles the fills
  it journaled (its own journal and each fill's number within its order, `OrderBook.fill_count`,
  make that exactly once);
* the day's epoch close (`close`): before its transaction the file names the pool's epoch it
  closes (`CLOSING`, `epoch`); a restart that closes the same day again finds that epoch
  closed on chain (`TranchePool.epoch` is past it) and reads the figures from its events
  instead of waiting out and closing another epoch (interest for a day nobody traded).

What is idempotent by the chain's state anyway is simply run again (the oracle's day, ST
statuses, the regime, orders the broker placed, liquidations ended, references recorded).
A refused keeper call or oracle batch changes nothing on chain and may be tried again.

Hooks for what only a caller needs (the replay's report): a `SessionObserver` sees every
step's fills (before they are settled) and the orders that expired at the close.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from crowdleverage.broker.corporate_actions import ApplyReport, CorporateActionAgent
from crowdleverage.broker.simulated import SimulatedBroker
from crowdleverage.chain.codes import code_to_chain
from crowdleverage.chain.margin import LIQUIDATOR
from crowdleverage.chain.params import PARAMS
from crowdleverage.chain.port import ChainPort
from crowdleverage.domain.errors import ConfigError
from crowdleverage.market.exchange import Fill, Order, SimulatedExchange
from crowdleverage.market.replay import Tick, TradingDay, intraday_ticks
from crowdleverage.oracle.feeder import OracleFeeder
from crowdleverage.risk.keeper import KEEP_CODES, ChainSync, Keeper
from crowdleverage.risk.monitor import RiskMonitor
from crowdleverage.risk.regime import (
    RegimePoint,
    apply_on_chain,
    publish_liquidity,
    stressed_run,
)

log = logging.getLogger("crowdleverage.session")

POOL = "TranchePool"
# the parts of a step after which the progress file is written (see the module doc)
BEGUN, KEPT, MATCHED = "begun", "kept", "matched"
CLOSING = "closing"  # the day's close: the pool's epoch `Progress.epoch` is being closed
# the keeper's events and the action each records (KeeperSkipped: the action it skipped)
KEEPER_EVENTS = {"MarginWarning": "warn", "ToppedUp": "top_up",
                 "LiquidationStarted": "start_liquidation",
                 "LiquidationEnded": "end_liquidation", "KeeperSkipped": "skipped"}  # fmt: skip
ACTION_OF_CODE = {code: name for name, code in KEEP_CODES.items()}


@dataclass(frozen=True, slots=True)
class ChainMark:
    """Where the chain stood: the latest block, its time, and an event seq no later than it
    (where a query for the events after the block may start)."""

    block: int
    time_s: int
    seq: int


@dataclass(frozen=True, slots=True)
class Progress:
    """How far the session got in `day`: its open began at `open`; step `step` got past
    `phase`, which began at `mark` (None before the first step). At the close (`CLOSING`):
    `epoch`, the pool's epoch the day's close closes."""

    day: str
    open: ChainMark | None
    step: int | None = None
    phase: str | None = None
    mark: ChainMark | None = None
    epoch: int | None = None

    @staticmethod
    def read(path: Path | None) -> Progress | None:
        if path is None or not path.exists():
            return None
        try:
            raw = json.loads(path.read_text())
            marks = {k: ChainMark(**raw[k]) if raw.get(k) else None for k in ("open", "mark")}
            epoch = raw.get("epoch")
            return Progress(str(raw["day"]), marks["open"], raw.get("step"), raw.get("phase"),
                            marks["mark"], None if epoch is None else int(epoch))  # fmt: skip
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{path} is not a trading session's progress file: {err}") from err

    def write(self, path: Path) -> None:
        """Atomically (a killed process leaves the old file or the new one)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)


class EpochClose(Enum):
    """What the close does with the pool's epoch."""

    WAIT = "wait"  # wait out its length on the chain clock, then close it (the platform)
    DUE = "due"  # close it only if its length has passed (the replay)
    SKIP = "skip"  # leave it open (paused: the pool does not close an epoch)


@dataclass(frozen=True, slots=True)
class EpochClosed:
    """The figures of a `TranchePool.close_epoch` (its EpochClosed event), the interest it
    distributed (InterestDistributed, if any) and how many queue entries it executed."""

    figures: dict[str, Any]
    interest: dict[str, Any] | None
    executed: int


@dataclass(frozen=True, slots=True)
class Opened:
    """What the open changed on chain besides the oracle's day."""

    regime: RegimePoint | None  # the regime point set on chain, when it changed the regime
    corporate: ApplyReport | None  # corporate actions applied (None without an agent)


class SessionObserver:
    """Hooks of a session; the defaults do nothing."""

    def on_fills(self, day: TradingDay, fills: list[Fill]) -> None:
        """A step's fills, after the exchange matched, before the broker settles them."""

    def on_expired(self, day: TradingDay, expired: list[Order]) -> None:
        """Orders the exchange expired at the close, before the broker releases them."""


class TradingSession:
    """The trading day on the financing contracts; one per chain and process.

    `regimes`: the regime at each close (oldest first); at an open the last one before the day
    is set on chain. `liquidity_days`: the trading days the Liquidator's 20-day liquidity is
    computed from, published at the same close. `corporate` with `holders` (the addresses whose
    holdings it adjusts): corporate actions at the open."""

    def __init__(
        self,
        chain: ChainPort,
        *,
        codes: Sequence[str],
        ticks_per_day: int,
        feeder: OracleFeeder,
        exchange: SimulatedExchange,
        broker: SimulatedBroker,
        monitor: RiskMonitor,
        keeper: Keeper,
        sync: ChainSync,
        regimes: Callable[[], Sequence[RegimePoint]] | None = None,
        liquidity_days: Sequence[TradingDay] | None = None,
        corporate: CorporateActionAgent | None = None,
        holders: Callable[[], Iterable[str]] | None = None,
        observer: SessionObserver | None = None,
        progress: Path | None = None,
    ) -> None:
        self.chain = chain
        self.codes = list(codes)
        self.ticks_per_day = ticks_per_day
        self.feeder = feeder
        self.exchange = exchange
        self.broker = broker
        self.monitor = monitor
        self.keeper = keeper
        self.sync = sync
        self.regimes = regimes
        self.liquidity_days = liquidity_days
        self.corporate = corporate
        self.holders = holders
        self.observer = observer or SessionObserver()
        self.day: TradingDay | None = None
        self.keeper_on = True
        self._live: list[list[Tick]] = []
        self._next = 0  # the next step; a step counts once the exchange has matched it
        self.progress = progress  # None: no exact resumption (the replay restarts in process)
        self._open_mark: ChainMark | None = None
        self._redo: Progress | None = None  # the interrupted step, when it is the next
        # the phase the last yield of `open_parts` / `step_parts` ended ("prices", "keeper",
        # "match", "settle", ...): names a part for the platform process's stall log
        self.part = ""

    # ── open ────────────────────────────────────────────────────────────────────────────

    def open(self, day: TradingDay, *, setup: bool = False) -> Opened:
        """Open `day` (see the module doc). `setup`: the replay's day the book is built on —
        the market only (oracle day, exchange session, first tick), no regime, corporate
        actions, overnight orders or refresh, and the keeper stands by all day."""
        parts = self.open_parts(day, setup=setup)
        while True:
            try:
                next(parts)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def open_parts(self, day: TradingDay, *, setup: bool = False) -> Generator[None, None, Opened]:
        """`open` in parts: it yields after the oracle's day and the exchange's session,
        after the regime, liquidity and corporate actions, and after the overnight orders
        and the refresh (before the first tick's prices), after each oracle reporter's
        prices of the first tick but the last, and returns what `open` returns.
        The progress file names the open from its start: a restart at any of these points
        opens the day again as without it (what the chain shows done is not done twice)."""
        self._begin(day, ticks_done=0)
        self.keeper_on = not setup
        # an open of this day a restart interrupted (it, or its first step)
        again = self._interrupted(day)
        if again is not None:
            self._open_mark = again.open
            self._redo = again if again.step == 0 else None
            log.info("open resumed", extra={"event": "open_resumed", "trade_date": again.day,
                                            "step": again.step, "phase": again.phase})  # fmt: skip
        else:
            self._open_mark = self._chain_mark()
            self._save(Progress(day.date.isoformat(), self._open_mark))
        after = self._open_mark if again is not None else None
        self._set_halts(day)
        self.feeder.open_day(day, again=after is not None)
        self.exchange.open_day(day)
        self.part = "day"
        yield
        opened = Opened(None, None)
        if not setup:
            opened = Opened(self._publish_last_close(day, after), self._corporate_actions(day))
            self.part = "regime"
            yield
            self.broker.place_received()
            self.sync.sync()
            self.sync.refresh_all()  # interest accrued overnight on every debt
            self.part = "orders"
            yield
        first = (s[0] for s in self._live)
        self.part = "prices"
        yield from self.feeder.on_ticks_parts(first, landed_after_s=after.time_s if after else None)
        return opened

    def resume(self, day: TradingDay, ticks_done: int) -> None:
        """Reopen a session a restart interrupted after `ticks_done` ticks: the oracle already
        has the day's bands and those ticks' prices (nothing is reported again), the monitor
        gets the halts and the last tick's prices, and a new exchange session takes the
        broker's orders — those placed before the restart for their unfilled remainder, then
        the ones requested on chain since (unless the day's ticks are done: then at the next
        open). The next `step` is tick `ticks_done`."""
        self._begin(day, ticks_done=ticks_done)
        self.keeper_on = True
        was = self._interrupted(day)
        self._open_mark = was.open if was is not None else None
        self._redo = (was if was is not None and was.step == ticks_done
                      and was.phase != CLOSING else None)  # fmt: skip
        if self._redo is not None:
            log.info("step resumed", extra={"event": "step_resumed", "step": ticks_done,
                     "trade_date": self._redo.day, "phase": self._redo.phase})  # fmt: skip
        self._set_halts(day)
        self.feeder.resume_day(day, ticks_done)
        self.exchange.open_day(day)
        last = [s[min(ticks_done, len(s)) - 1] for s in self._live]
        if ticks_done and last:
            self.monitor.update_prices(self.monitor.cols(t.code for t in last),
                                       [t.price_fen for t in last])  # fmt: skip
        self.sync.sync()
        self.broker.replace_open()
        if ticks_done < self.ticks_per_day:
            self.broker.poll()  # requested since the broker last looked: placed now
        # (after the day's last tick they wait for the next open, as without the restart;
        # placed now, the close would expire them)

    def _begin(self, day: TradingDay, ticks_done: int) -> None:
        self.day = day
        series = (intraday_ticks(day.bars[c], self.ticks_per_day)
                  for c in self.codes if c in day.bars)  # fmt: skip
        self._live = [s for s in series if s]  # halted: no ticks
        self._next = ticks_done

    def _interrupted(self, day: TradingDay) -> Progress | None:
        """The progress file's record of `day`, if it names that day."""
        p = Progress.read(self.progress)
        return p if p is not None and p.day == day.date.isoformat() else None

    def _chain_mark(self) -> ChainMark:
        return ChainMark(self.chain.block_number(), self.chain.block_time(), self.sync.cursor)

    def _save(self, p: Progress) -> None:
        if self.progress is not None:
            p.write(self.progress)

    def _mark_step(self, step: int, phase: str) -> None:
        """Where the chain stands as `phase` of `step` begins (before its chain effects)."""
        if self.progress is not None and self.day is not None:
            p = Progress(self.day.date.isoformat(), self._open_mark, step, phase,
                         self._chain_mark())  # fmt: skip
            p.write(self.progress)

    def _keeper_events(self, since: ChainMark) -> list[tuple[str, str, bool]]:
        """(account, action, skipped) of the keeper's events mined after `since`."""
        out = []
        for e in self.chain.events(LIQUIDATOR, since=since.seq):
            action = KEEPER_EVENTS.get(e.event)
            if action is None or e.block <= since.block:
                continue
            skipped = action == "skipped"
            if skipped:
                action = ACTION_OF_CODE.get(int(e.args["action"]), "?")
            out.append((str(e.args["account"]), action, skipped))
        return out

    def _set_halts(self, day: TradingDay) -> None:
        for code in self.codes:
            bar = day.bars.get(code)
            self.monitor.set_halted(code, bar is None or bar.halted)

    def _publish_last_close(self, day: TradingDay, after: ChainMark | None) -> RegimePoint | None:
        """The regime point and the 20-day liquidity published at the last close before
        `day` go on chain (so that in a stressed regime the OrderBook refuses new financing
        from the first order). Returns the point when it changed the chain's regime.
        `after`: the open was interrupted; codes published since that mark are left out."""
        before = [p for p in (self.regimes() if self.regimes else ()) if p.date < day.date]
        if not before:
            return None
        point = before[-1]
        # the stressed set phases in over the first stressed days (domain/params.py); the
        # keeper moves the NAV-stop references by what a haircut step changed (not a loss)
        changed = apply_on_chain(self.chain, point, run=stressed_run(before),
                                 references=self.keeper)  # fmt: skip
        if self.liquidity_days is not None:
            codes = self.codes
            if after is not None:
                done = {int(e.args["code"]) for e in
                        self.chain.events(PARAMS, "LiquiditySet", since=after.seq)
                        if e.block > after.block}  # fmt: skip
                codes = [c for c in codes if code_to_chain(c) not in done]
            if codes:
                publish_liquidity(self.chain, self.liquidity_days, point.date, codes)
        return point if changed else None

    def _corporate_actions(self, day: TradingDay) -> ApplyReport | None:
        if self.corporate is None:
            return None
        return self.corporate.open_day(day.date, self.holders() if self.holders else ())

    # ── the ticks ───────────────────────────────────────────────────────────────────────

    def step(self) -> int | None:
        """One tick (see the module doc). Returns the number of fills; None once the day's
        ticks are used up."""
        parts = self.step_parts()
        while True:
            try:
                next(parts)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def step_parts(self) -> Generator[None, None, int | None]:
        """`step` in parts: it yields between the tick's phases (after each oracle
        reporter's prices but the last, after the prices, within the keeper's part and after
        it, after the exchange matched and the broker journaled, after each batch of fills
        settled, within the follow-up after them) and returns
        what `step` returns. Between two parts the caller may run other
        chain work that is no part of the session (the platform process runs wallet
        commands there: `flows.Platform.tick`); the progress file names the interrupted
        phase at every point, so a restart at any point resumes the step as without it."""
        day = self.day
        assert day is not None, "open a day first"
        step = self._next
        if step >= self.ticks_per_day:
            return None
        redo, self._redo = self._redo, None
        if redo is not None and redo.step != step:
            redo = None
        phase = redo.phase if redo is not None else None
        since = redo.mark if redo is not None else None
        if redo is None:
            self._mark_step(step, BEGUN)
        ticks = [s[step] for s in self._live if step < len(s)]
        if step > 0 and phase in (None, BEGUN):  # the first tick was reported at the open
            self.part = "prices"
            yield from self.feeder.on_ticks_parts(
                ticks, landed_after_s=since.time_s if since else None
            )
        self.monitor.update_prices(self.monitor.cols(t.code for t in ticks),
                                   [t.price_fen for t in ticks])  # fmt: skip
        self.part = "prices+monitor"
        yield
        fills: list[Fill] = []
        if phase != MATCHED:
            if self.keeper_on:
                self.part = "keeper"
                yield from self._keep(day, step, phase, since)
                yield
            self.broker.poll()
            fills = self.exchange.on_ticks(ticks)
            self.observer.on_fills(day, fills)
        self._next = step + 1  # the exchange has matched this step: never again
        if phase != MATCHED:
            self.broker.journal(fills)
            self._mark_step(step, MATCHED)
        self.part = "match"
        yield
        self.part = "settle"
        yield from self.broker.settle_parts()
        if self.keeper_on:
            yield
            self.part = "follow-up"
            yield from self.finish_step_parts()
        else:
            self.finish_step()
        return len(fills)

    def _keep(
        self, day: TradingDay, step: int, phase: str | None, since: ChainMark | None
    ) -> Generator[None, None, None]:
        """The keeper's part of a step: `on_tick`, and at the first tick the follow-up of a
        new session; in parts (`Keeper.on_tick_parts`, `Keeper.follow_up_parts`: a yield
        between two of the keeper's transactions once a part took the keeper's
        `part_budget_s`). Run again after a restart (`since`: the interrupted phase's mark),
        the actions the chain shows after the mark are not done twice."""
        date = day.date.isoformat()
        self.sync.sync()
        if phase in (None, BEGUN):
            for who, action, skipped in self._keeper_events(since) if since is not None else ():
                self.keeper.note_done(who, action, date, skipped=skipped)
            yield from self.keeper.on_tick_parts(self.monitor.tick(), date)
        if step == 0:
            accounts = self.liquidating()
            if phase == KEPT and since is not None:
                ends = ("start_liquidation", "end_liquidation")
                acted = {who.lower() for who, a, skipped in self._keeper_events(since)
                         if not skipped and a in ends}  # fmt: skip
                accounts = [a for a in accounts if a.lower() not in acted]
            else:
                self._mark_step(step, KEPT)
            yield from self.keeper.follow_up_parts(accounts, new_session=True)

    def finish_step(self) -> None:
        """The end of a step once its fills are settled: the monitor follows the chain, the
        keeper ends the liquidations whose orders are done. Called again after a restart
        interrupted the step while settling (the new broker settles what was left)."""
        for _ in self.finish_step_parts():
            pass

    def finish_step_parts(self) -> Generator[None, None, None]:
        """`finish_step` in parts (`Keeper.follow_up_parts`); a restart at any point runs
        it again (the step's progress names it `MATCHED`: its fills are settled by then)."""
        if self.keeper_on:
            self.sync.sync()
            yield from self.keeper.follow_up_parts(self.liquidating(), new_session=False)

    # ── close ───────────────────────────────────────────────────────────────────────────

    def close(self, epoch: EpochClose) -> EpochClosed | None:
        """Run the rest of the ticks, expire unfilled orders and release their cash, end the
        liquidations whose orders are done, then the pool's epoch as `epoch` says. Returns
        the epoch's figures when it closed."""
        parts = self.close_parts(epoch)
        while True:
            try:
                next(parts)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def close_parts(self, epoch: EpochClose) -> Generator[None, None, EpochClosed | None]:
        """`close` in parts: it yields between the remaining ticks' parts and after each of
        them (`step_parts`), after each expired order released and after the expiry
        (before the epoch's close), and returns
        what `close` returns. A restart at any of these points closes the day again as
        without it: the remaining ticks resume from the progress file, the expiry releases
        only orders still open on chain, the epoch closes once (`_close_epoch_once`)."""
        day = self.day
        assert day is not None, "open a day first"
        while True:
            fills = yield from self.step_parts()
            if fills is None:
                break
            yield
        expired = self.exchange.close_day()
        self.observer.on_expired(day, expired)
        yield from self.broker.end_day_parts()
        self.sync.sync()
        if self.keeper_on:
            yield from self.keeper.follow_up_parts(self.liquidating(), new_session=False)
        yield
        if self.progress is None:
            return self.close_epoch(epoch)
        return self._close_epoch_once(day, epoch)  # (paused since a first run closed it: read)

    def close_epoch(
        self, epoch: EpochClose, *, before: Callable[[], None] | None = None
    ) -> EpochClosed | None:
        """Keeper: close the pool's epoch — interest distributed, losses marked, queues
        executed by priority — waiting out its length (`WAIT`) or only when it is due
        (`DUE`); `SKIP` leaves it. Returns the figures when it closed. `before`: called
        just before the transaction."""
        if epoch is EpochClose.SKIP:
            return None
        wait = self.epoch_due_in_s()
        if wait > 0:
            if epoch is EpochClose.DUE:
                return None
            self.chain.advance_time(wait)
        if before is not None:
            before()
        tx = self.chain.send(POOL, "close_epoch", actor="keeper")
        return _epoch_figures(tx.events)

    def _close_epoch_once(self, day: TradingDay, epoch: EpochClose) -> EpochClosed | None:
        """The epoch close of `day`'s close, once per day (see the module doc): the
        progress file names the pool's epoch before the transaction; when a restart closes
        the day again and the chain shows that epoch closed, its figures are read back."""
        was = self._interrupted(day)
        closing = was.epoch if was is not None and was.phase == CLOSING else None
        if closing is not None and int(self.chain.call(POOL, "epoch")) > closing:
            assert was is not None
            since = was.mark.seq if was.mark is not None else 0
            evs = [e for e in self.chain.events(POOL, since=since)
                   if e.event in _EPOCH_EVENTS and int(e.args["epoch"]) == closing]  # fmt: skip
            log.info("epoch close resumed", extra={"event": "epoch_close_resumed",
                     "trade_date": was.day, "epoch": closing})  # fmt: skip
            return _epoch_figures(evs)

        def mark() -> None:
            now = int(self.chain.call(POOL, "epoch"))
            self._save(Progress(day.date.isoformat(), self._open_mark, self.ticks_per_day,
                                CLOSING, self._chain_mark(), now))  # fmt: skip

        return self.close_epoch(epoch, before=mark)

    def epoch_due_in_s(self) -> int:
        """Seconds of chain time until the pool's epoch may close (≤ 0: now)."""
        started = int(self.chain.call(POOL, "epoch_started_at"))
        return started + int(self.chain.call(POOL, "epoch_s")) - self.chain.block_time()

    def liquidating(self) -> list[str]:
        """The monitored accounts in liquidation."""
        n = self.monitor.n_accounts
        rows = np.flatnonzero(self.monitor.liquidating[:n])
        return [self.monitor.account_id(int(r)) for r in rows]


_EPOCH_EVENTS = ("EpochClosed", "InterestDistributed", "Executed")


def _epoch_figures(events: Iterable[Any]) -> EpochClosed:
    """The figures of one `close_epoch` from its events (its transaction's, or the events of
    that epoch read back from the chain)."""
    evs = list(events)
    [closed] = [e.args for e in evs if e.event == "EpochClosed"]
    interest = [dict(e.args) for e in evs if e.event == "InterestDistributed"]
    executed = sum(e.event == "Executed" for e in evs)
    return EpochClosed(dict(closed), interest[0] if interest else None, executed)
