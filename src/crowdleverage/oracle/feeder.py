"""Oracle feeder: the day open and independent reporters pushing prices to `PriceOracle`.

- `open_day` (operator): advances the oracle's trading-day counter to the XSHG session index
  of the day (the platform's T+1 clock) and sets, per security, the previous close, the day's
  price band (market.rules, the exchange's own numbers) and the halted flag, 64 at a time.
- `Reporter`s read the same market stream and each submit a price per security and tick
  (`report_many`, 64 at a time). A reporter can be made faulty, for tests and drills:
  STALE (stops reporting after a given tick: its last report ages out on chain), OUTLIER
  (reports far off, even outside the band: the contract refuses the whole batch),
  MANIPULATED (reports a chosen in-band price, e.g. the limit-down, to drag the median).
  The on-chain median of ≥ quorum fresh reports is what protects the platform; the feeder
  only records what each reporter tried and what the chain refused.

The feeder never retries a refused batch: a reverting reporter is a fact to report.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from crowdleverage.chain.codes import code_to_chain
from crowdleverage.chain.params import PARAMS, set_st_status
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.structs import read_day_params
from crowdleverage.domain.errors import ContractRevert, InvalidInput
from crowdleverage.domain.money import mul_div_down
from crowdleverage.market.bars import Bar
from crowdleverage.market.calendar import xshg
from crowdleverage.market.replay import Tick, TradingDay
from crowdleverage.market.rules import BPS

log = logging.getLogger("crowdleverage.oracle")

BATCH = 64  # PriceOracle.MAX_BATCH
UNLIMITED_UP_FEN = 2**64 - 1  # a day without a price limit: any positive price is legal


class ReporterMode(StrEnum):
    HONEST = "honest"
    STALE = "stale"
    OUTLIER = "outlier"
    MANIPULATED = "manipulated"


@dataclass(slots=True)
class Reporter:
    """One price source, acting as the chain actor `actor` (which holds the REPORTER role)."""

    actor: str
    mode: ReporterMode = ReporterMode.HONEST
    stale_after_tick: int = 0  # STALE: reports only ticks with index < this
    outlier_bps: int = 5_000  # OUTLIER: price × (1 + this)
    manipulated_to: str = "limit_down"  # MANIPULATED: "limit_down" or "limit_up" of the day
    sent: int = 0
    refused: Counter[str] = field(default_factory=Counter)

    def price(self, tick: Tick, bar: Bar, tick_index: int) -> int | None:
        """What this reporter submits for `tick`, or None to stay silent."""
        if self.mode is ReporterMode.STALE and tick_index >= self.stale_after_tick:
            return None
        if self.mode is ReporterMode.OUTLIER:
            return mul_div_down(tick.price_fen, BPS + self.outlier_bps, BPS)
        if self.mode is ReporterMode.MANIPULATED and bar.band is not None:
            edge = (
                bar.band.limit_down_fen
                if self.manipulated_to == "limit_down"
                else bar.band.limit_up_fen
            )
            if edge is not None:
                return edge
        return tick.price_fen


def session_index(day: dt.date) -> int:
    """The XSHG session number of `day` (1 on the calendar's first day): strictly increasing,
    so it serves as the oracle's trading-day counter."""
    cal = xshg()
    if not cal.is_trading_day(day):
        raise InvalidInput(f"{day} is not an XSHG trading day")
    return cal.trading_days_between(cal.first_day, day) + 1


def session_date(index: int) -> dt.date | None:
    """The day of XSHG session `index` (inverse of `session_index`); None for 0 (no day
    open yet) or an index past the calendar."""
    days = xshg().trading_days(xshg().first_day, xshg().last_day)
    return days[index - 1] if 1 <= index <= len(days) else None


def day_inputs(day: TradingDay, codes: Iterable[str]) -> list[tuple[int, int, int, int, bool]]:
    """(code, prev close, limit-down, limit-up, halted) per security, as the oracle takes it."""
    out = []
    for code in codes:
        bar = day.bars.get(code)
        if bar is None or bar.is_index:
            continue
        band = bar.band
        down = band.limit_down_fen if band and band.limit_down_fen is not None else 1
        up = band.limit_up_fen if band and band.limit_up_fen is not None else UNLIMITED_UP_FEN
        out.append((code_to_chain(code), bar.prev_close, down, up, bar.halted))
    return out


@dataclass(frozen=True, slots=True)
class FeedStats:
    reports_sent: int
    batches_refused: int
    reasons: dict[str, int]


class OracleFeeder:
    """Drives `PriceOracle` from the market stream for the securities in `codes`."""

    def __init__(
        self,
        port: ChainPort,
        reporters: Sequence[Reporter],
        codes: Iterable[str],
        *,
        operator: str = "operator",
    ) -> None:
        if len(reporters) < 3:
            raise InvalidInput("the oracle needs at least three independent reporters")
        if len({r.actor for r in reporters}) != len(reporters):
            raise InvalidInput("each reporter must be a different chain actor")
        self.port = port
        self.reporters = list(reporters)
        self.codes = sorted(set(codes))
        self.operator = operator
        self.day: TradingDay | None = None
        self._tick_index = 0

    def open_day(self, day: TradingDay, *, again: bool = False) -> int:
        """Advance the oracle to `day` and set every watched security's band (±5% for ST /
        *ST), and, with the financing system deployed, each listed security's ST status at
        `RiskParams` (a change re-values it at this open); returns the session index used
        as the on-chain trading day. `again`: the open of `day` was interrupted (a restart):
        a batch of bands the oracle already holds for the day, as they would be set, is not
        sent again (the ST statuses are sent only when they change anyway)."""
        index = session_index(day.date)
        current = int(self.port.call("PriceOracle", "trading_day"))
        if index > current:
            self.port.send("PriceOracle", "open_day", index, actor=self.operator)
        elif index < current:
            raise InvalidInput(f"the oracle is already at session {current}, after {day.date}")
        inputs = day_inputs(day, self.codes)
        for i in range(0, len(inputs), BATCH):
            batch = inputs[i : i + BATCH]
            if again and all(self._band_set(index, x) for x in batch):
                continue
            self.port.send("PriceOracle", "set_day_params_many", batch, actor=self.operator)
        if PARAMS in self.port.deployed():  # the financing system: ST status of the day
            set_st_status(self.port, {c: day.bars[c].st for c in self.codes if c in day.bars},
                          actor=self.operator)  # fmt: skip
        self.day = day
        self._tick_index = 0
        return index

    def _band_set(self, index: int, x: tuple[int, int, int, int, bool]) -> bool:
        """The oracle holds the day parameters `x` (as `day_inputs` gives them) for `index`."""
        dp = read_day_params(self.port, x[0])
        held = (dp.prev_close_fen, dp.limit_down_fen, dp.limit_up_fen, dp.halted)
        return dp.day == index and held == x[1:]

    def resume_day(self, day: TradingDay, ticks_reported: int) -> None:
        """Continue `day` after a restart: the oracle has its bands and the first
        `ticks_reported` ticks already (nothing is sent again)."""
        self.day = day
        self._tick_index = ticks_reported

    def on_ticks(self, ticks: Iterable[Tick], *, landed_after_s: int | None = None) -> int:
        """Every reporter reports the watched securities of one time step; the chain clock
        follows the ticks. Returns how many reports landed. `landed_after_s`: a restart
        interrupted this step after that chain time: a batch whose reports the oracle
        holds from a block after it (each of its codes, from this reporter, today) landed
        before the restart and is not sent again (block times strictly increase)."""
        parts = self.on_ticks_parts(ticks, landed_after_s=landed_after_s)
        while True:
            try:
                next(parts)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def on_ticks_parts(
        self, ticks: Iterable[Tick], *, landed_after_s: int | None = None
    ) -> Generator[None, None, int]:
        """`on_ticks` in parts: it yields after each reporter's batches but the last one's (a
        caller may run other chain work there that does not read the oracle), and returns
        what `on_ticks` returns."""
        if self.day is None:
            raise InvalidInput("open a day before feeding ticks")
        watched = [t for t in ticks if t.code in self.day.bars and t.code in set(self.codes)]
        if not watched:
            return 0
        at_s = int(max(t.at for t in watched).timestamp())
        if at_s > self.port.block_time():
            self.port.set_block_time(at_s)
        landed = 0
        for i, reporter in enumerate(self.reporters):
            if i:
                yield
            landed += self._report(reporter, watched, landed_after_s)
        self._tick_index += 1
        return landed

    def _report(self, reporter: Reporter, ticks: list[Tick], landed_after_s: int | None) -> int:
        assert self.day is not None
        pairs: list[tuple[int, int]] = []
        for t in ticks:
            p = reporter.price(t, self.day.bars[t.code], self._tick_index)
            if p is not None:
                pairs.append((code_to_chain(t.code), p))
        landed = 0
        for i in range(0, len(pairs), BATCH):
            chunk = pairs[i : i + BATCH]
            if landed_after_s is not None and self._landed(reporter, chunk, landed_after_s):
                log.info("reports landed before a restart", extra={
                    "event": "reports_landed", "reporter": reporter.actor,
                    "tick": self._tick_index, "reports": len(chunk)})  # fmt: skip
                continue
            try:
                self.port.send(
                    "PriceOracle",
                    "report_many",
                    [c for c, _ in chunk],
                    [p for _, p in chunk],
                    actor=reporter.actor,
                )
            except ContractRevert as err:
                reporter.refused[err.reason] += 1
                continue
            reporter.sent += len(chunk)
            landed += len(chunk)
        return landed

    def _landed(self, reporter: Reporter, chunk: list[tuple[int, int]], after_s: int) -> bool:
        """Every report of `chunk` is on chain from `reporter`, today, mined after `after_s`
        (a batch lands whole or not at all)."""
        who = self.port.address_of(reporter.actor)
        today = int(self.port.call("PriceOracle", "trading_day"))
        for code, _ in chunk:
            _, day, at_s = self.port.call("PriceOracle", "report_of", code, who)
            if int(day) != today or int(at_s) <= after_s:
                return False
        return True

    def stats(self) -> FeedStats:
        reasons: Counter[str] = Counter()
        for r in self.reporters:
            reasons.update(r.refused)
        return FeedStats(sum(r.sent for r in self.reporters), sum(reasons.values()), dict(reasons))
