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
  liquidations whose orders are done end, then the pool's epoch (`EpochClose`).
* `resume(day, ticks_done)`: a restarted process reopens a day after `ticks_done` ticks
  without reporting anything to the oracle again.

Hooks for what only a caller needs (the replay's report): a `SessionObserver` sees every
step's fills (before they are settled) and the orders that expired at the close.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from crowdleverage.broker.corporate_actions import ApplyReport, CorporateActionAgent
from crowdleverage.broker.simulated import SimulatedBroker
from crowdleverage.chain.port import ChainPort
from crowdleverage.market.exchange import Fill, Order, SimulatedExchange
from crowdleverage.market.replay import Tick, TradingDay, intraday_ticks
from crowdleverage.oracle.feeder import OracleFeeder
from crowdleverage.risk.keeper import ChainSync, Keeper
from crowdleverage.risk.monitor import RiskMonitor
from crowdleverage.risk.regime import (
    RegimePoint,
    apply_on_chain,
    publish_liquidity,
    stressed_run,
)

POOL = "TranchePool"


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

    # ── open ────────────────────────────────────────────────────────────────────────────

    def open(self, day: TradingDay, *, setup: bool = False) -> Opened:
        """Open `day` (see the module doc). `setup`: the replay's day the book is built on —
        the market only (oracle day, exchange session, first tick), no regime, corporate
        actions, overnight orders or refresh, and the keeper stands by all day."""
        self._begin(day, ticks_done=0)
        self.keeper_on = not setup
        self._set_halts(day)
        self.feeder.open_day(day)
        self.exchange.open_day(day)
        opened = Opened(None, None)
        if not setup:
            opened = Opened(self._publish_last_close(day), self._corporate_actions(day))
            self.broker.place_received()
            self.sync.sync()
            self.sync.refresh_all()  # interest accrued overnight on every debt
        self.feeder.on_ticks(s[0] for s in self._live)
        return opened

    def resume(self, day: TradingDay, ticks_done: int) -> None:
        """Reopen a session a restart interrupted after `ticks_done` ticks: the oracle already
        has the day's bands and those ticks' prices (nothing is reported again), the monitor
        gets the halts and the last tick's prices, and a new exchange session takes the
        broker's orders — those placed before the restart for their unfilled remainder, then
        the ones requested on chain since. The next `step` is tick `ticks_done`."""
        self._begin(day, ticks_done=ticks_done)
        self.keeper_on = True
        self._set_halts(day)
        self.feeder.resume_day(day, ticks_done)
        self.exchange.open_day(day)
        last = [s[min(ticks_done, len(s)) - 1] for s in self._live]
        if ticks_done and last:
            self.monitor.update_prices(self.monitor.cols(t.code for t in last),
                                       [t.price_fen for t in last])  # fmt: skip
        self.sync.sync()
        self.broker.replace_open()
        self.broker.poll()  # requested since the broker last looked: placed now

    def _begin(self, day: TradingDay, ticks_done: int) -> None:
        self.day = day
        series = (intraday_ticks(day.bars[c], self.ticks_per_day)
                  for c in self.codes if c in day.bars)  # fmt: skip
        self._live = [s for s in series if s]  # halted: no ticks
        self._next = ticks_done

    def _set_halts(self, day: TradingDay) -> None:
        for code in self.codes:
            bar = day.bars.get(code)
            self.monitor.set_halted(code, bar is None or bar.halted)

    def _publish_last_close(self, day: TradingDay) -> RegimePoint | None:
        """The regime point and the 20-day liquidity published at the last close before
        `day` go on chain (so that in a stressed regime the OrderBook refuses new financing
        from the first order). Returns the point when it changed the chain's regime."""
        before = [p for p in (self.regimes() if self.regimes else ()) if p.date < day.date]
        if not before:
            return None
        point = before[-1]
        # the stressed set phases in over the first stressed days (domain/params.py)
        changed = apply_on_chain(self.chain, point, run=stressed_run(before))
        if self.liquidity_days is not None:
            publish_liquidity(self.chain, self.liquidity_days, point.date, self.codes)
        return point if changed else None

    def _corporate_actions(self, day: TradingDay) -> ApplyReport | None:
        if self.corporate is None:
            return None
        return self.corporate.open_day(day.date, self.holders() if self.holders else ())

    # ── the ticks ───────────────────────────────────────────────────────────────────────

    def step(self) -> int | None:
        """One tick (see the module doc). Returns the number of fills; None once the day's
        ticks are used up."""
        day = self.day
        assert day is not None, "open a day first"
        step = self._next
        if step >= self.ticks_per_day:
            return None
        ticks = [s[step] for s in self._live if step < len(s)]
        if step > 0:  # the first tick was reported at the open, before the session's orders
            self.feeder.on_ticks(ticks)
        self.monitor.update_prices(self.monitor.cols(t.code for t in ticks),
                                   [t.price_fen for t in ticks])  # fmt: skip
        if self.keeper_on:
            self.sync.sync()
            self.keeper.on_tick(self.monitor.tick(), day.date.isoformat())
            if step == 0:
                self.keeper.follow_up(self.liquidating(), new_session=True)
        self.broker.poll()
        fills = self.exchange.on_ticks(ticks)
        self.observer.on_fills(day, fills)
        self._next = step + 1  # the exchange has matched this step: never again
        self.broker.on_fills(fills)
        self.finish_step()
        return len(fills)

    def finish_step(self) -> None:
        """The end of a step once its fills are settled: the monitor follows the chain, the
        keeper ends the liquidations whose orders are done. Called again after a restart
        interrupted the step while settling (the new broker settles what was left)."""
        if self.keeper_on:
            self.sync.sync()
            self.keeper.follow_up(self.liquidating(), new_session=False)

    # ── close ───────────────────────────────────────────────────────────────────────────

    def close(self, epoch: EpochClose) -> EpochClosed | None:
        """Run the rest of the ticks, expire unfilled orders and release their cash, end the
        liquidations whose orders are done, then the pool's epoch as `epoch` says. Returns
        the epoch's figures when it closed."""
        day = self.day
        assert day is not None, "open a day first"
        while self.step() is not None:
            pass
        expired = self.exchange.close_day()
        self.observer.on_expired(day, expired)
        self.broker.end_day()
        self.sync.sync()
        if self.keeper_on:
            self.keeper.follow_up(self.liquidating(), new_session=False)
        return self.close_epoch(epoch)

    def close_epoch(self, epoch: EpochClose) -> EpochClosed | None:
        """Keeper: close the pool's epoch — interest distributed, losses marked, queues
        executed by priority — waiting out its length (`WAIT`) or only when it is due
        (`DUE`); `SKIP` leaves it. Returns the figures when it closed."""
        if epoch is EpochClose.SKIP:
            return None
        wait = self.epoch_due_in_s()
        if wait > 0:
            if epoch is EpochClose.DUE:
                return None
            self.chain.advance_time(wait)
        tx = self.chain.send(POOL, "close_epoch", actor="keeper")
        [closed] = [e.args for e in tx.events if e.event == "EpochClosed"]
        interest = [dict(e.args) for e in tx.events if e.event == "InterestDistributed"]
        executed = sum(e.event == "Executed" for e in tx.events)
        return EpochClosed(dict(closed), interest[0] if interest else None, executed)

    def epoch_due_in_s(self) -> int:
        """Seconds of chain time until the pool's epoch may close (≤ 0: now)."""
        started = int(self.chain.call(POOL, "epoch_started_at"))
        return started + int(self.chain.call(POOL, "epoch_s")) - self.chain.block_time()

    def liquidating(self) -> list[str]:
        """The monitored accounts in liquidation."""
        n = self.monitor.n_accounts
        rows = np.flatnonzero(self.monitor.liquidating[:n])
        return [self.monitor.account_id(int(r)) for r in rows]
