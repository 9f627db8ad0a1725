"""Market regime (动态保证金's trigger) and liquidity-relative position limits.

**The indicator** uses only what the oracle publishes each day and tick — every listed
stock's price, band and halt flag, and the index level:

- `limit_down_share`: stocks at (or sealed at) their limit-down price / stocks trading;
- `halted_share`: halted stocks / stocks listed in the sample;
- `drawdown`: 1 − index level / highest index close of the last `drawdown_days` closes.

**States and hysteresis.** CALM → STRESSED as soon as one observation (a tick or a close)
crosses an *enter* threshold: limit-down share ≥ 10%, or halted share ≥ 15%, or drawdown
≥ 8%. STRESSED → CALM only after `calm_closes` consecutive closes with every measure below
its (lower) *exit* threshold: limit-down share < 3%, halted share < 10%, drawdown < 5%. A
stress that ends intraday is therefore not trusted until the market has closed calmly for
three days; one bad tick is enough to stop new financing.

The single number published with the state, `indicator_bps`, is the largest measure as a
share of its enter threshold (10,000 = at a threshold), so an operator sees how close the
platform is to switching.

What a stressed regime does (issue "Contracts v2" owns the chain side: `set_regime`): no new
financing, higher lines and haircuts, liquidation de-levers to a safer target, sellable
positions first. Off chain this module publishes the state, its history and its parameters
(`transparency()`), and the replay report carries them.

**Liquidity limits.** Each stock's 20-day average volume and traded amount (halted days
count as 0) from the bars; the platform's position in a stock should not exceed `cap_bps` of
it (`domain.params.LIQUIDITY_CAP_BPS`, default 10%: at a 10% share of the market's volume the
whole platform position sells in one normal day). `publish_liquidity` puts the average
amounts on chain (`RiskParams.set_liquidity`), where a financed buy above the cap reverts
"margin: above liquidity cap"; `liquidity_caps` reports every stock's averages, caps and the
platform's position against them.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from crowdleverage.domain import params as P
from crowdleverage.domain.errors import ContractRevert, NotFound
from crowdleverage.market.replay import TradingDay

BPS = 10_000
INDEX = "000001.SH"
log = logging.getLogger("crowdleverage.regime")


class Regime(StrEnum):
    CALM = "calm"
    STRESSED = "stressed"


@dataclass(frozen=True, slots=True)
class RegimeParams:
    index: str = INDEX
    drawdown_days: int = 10
    enter_limit_down_bps: int = 1_000
    enter_halted_bps: int = 1_500
    enter_drawdown_bps: int = 800
    exit_limit_down_bps: int = 300
    exit_halted_bps: int = 1_000
    exit_drawdown_bps: int = 500
    calm_closes: int = 3
    # enter STRESSED on the first stressed tick of a day (what the oracle publishes per tick),
    # not only at the close: the chain's regime is set then, and the lines rise at once
    intraday_enter: bool = False

    def __post_init__(self) -> None:
        pairs = (
            (self.exit_limit_down_bps, self.enter_limit_down_bps),
            (self.exit_halted_bps, self.enter_halted_bps),
            (self.exit_drawdown_bps, self.enter_drawdown_bps),
        )
        if any(not 0 < lo <= hi for lo, hi in pairs):
            raise ValueError("each exit threshold must be positive and at most its enter one")
        if self.drawdown_days < 1 or self.calm_closes < 1:
            raise ValueError("drawdown_days and calm_closes must be at least 1")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the oracle published at one moment."""

    date: dt.date
    stocks: int  # listed in the sample
    trading: int  # not halted
    at_limit_down: int
    halted: int
    index_level: int | None  # fen (points × 100); None when the feed has no index


@dataclass(frozen=True, slots=True)
class RegimePoint:
    date: dt.date
    regime: Regime
    switched: bool
    indicator_bps: int
    limit_down_bps: int
    halted_bps: int
    drawdown_bps: int
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["date"] = self.date.isoformat()
        d["regime"] = self.regime.value
        d["reasons"] = list(self.reasons)
        return d


@dataclass
class RegimeTracker:
    params: RegimeParams = field(default_factory=RegimeParams)
    regime: Regime = Regime.CALM
    _closes: list[int] = field(default_factory=list)
    _calm_run: int = 0

    def measures(self, obs: Observation) -> tuple[int, int, int]:
        """(limit-down share, halted share, drawdown) in bps, rounded down."""
        ld = obs.at_limit_down * BPS // obs.trading if obs.trading else BPS
        halted = obs.halted * BPS // obs.stocks if obs.stocks else 0
        dd = 0
        if obs.index_level is not None:
            window = self._closes[-(self.params.drawdown_days - 1):] if (
                self.params.drawdown_days > 1) else []  # fmt: skip
            peak = max([*window, obs.index_level])
            dd = (peak - obs.index_level) * BPS // peak
        return ld, halted, dd

    def observe(self, obs: Observation, *, close: bool) -> RegimePoint:
        """One tick (`close=False`) or one day's close. Entering can happen on any
        observation; leaving is counted in closes only."""
        p = self.params
        ld, halted, dd = self.measures(obs)
        enter = [
            name
            for name, v, t in (
                ("limit_down", ld, p.enter_limit_down_bps),
                ("halted", halted, p.enter_halted_bps),
                ("drawdown", dd, p.enter_drawdown_bps),
            )
            if v >= t
        ]
        calm = (
            ld < p.exit_limit_down_bps and halted < p.exit_halted_bps and dd < p.exit_drawdown_bps
        )
        before = self.regime
        if enter:
            self.regime = Regime.STRESSED
            self._calm_run = 0
        elif self.regime is Regime.STRESSED and close:
            self._calm_run = self._calm_run + 1 if calm else 0
            if self._calm_run >= p.calm_closes:
                self.regime = Regime.CALM
                self._calm_run = 0
        if close and obs.index_level is not None:
            self._closes.append(obs.index_level)
        indicator = max(
            ld * BPS // p.enter_limit_down_bps,
            halted * BPS // p.enter_halted_bps,
            dd * BPS // p.enter_drawdown_bps,
        )
        return RegimePoint(obs.date, self.regime, self.regime is not before, indicator, ld,
                           halted, dd, tuple(enter))  # fmt: skip


def observe_day(day: TradingDay, index: str = INDEX) -> Observation:
    """A day's close as the oracle publishes it (sealed = close at the band's limit-down)."""
    stocks = day.stocks
    halted = sum(b.halted for b in stocks)
    idx = day.bars.get(index)
    return Observation(
        date=day.date,
        stocks=len(stocks),
        trading=len(stocks) - halted,
        at_limit_down=sum(b.sealed_down for b in stocks),
        halted=halted,
        index_level=idx.close if idx is not None else None,
    )


def regime_history(
    days: Iterable[TradingDay], params: RegimeParams | None = None
) -> list[RegimePoint]:
    """The regime at each day's close, from the first day given (earlier days seed the
    drawdown window and the state)."""
    tracker = RegimeTracker(params or RegimeParams())
    return [tracker.observe(observe_day(d, tracker.params.index), close=True) for d in days]


# ── liquidity-relative limits ────────────────────────────────────────────────────────────

ADV_DAYS = P.LIQUIDITY_ADV_DAYS
LIQUIDITY_CAP_BPS = P.LIQUIDITY_CAP_BPS  # the one parameter (RiskParams.liquidity_cap_bps)


def average_volumes(
    days: Sequence[TradingDay], on: dt.date, codes: Iterable[str], n: int = ADV_DAYS
) -> dict[str, int]:
    """Each code's mean daily volume (shares, rounded down) over the last `n` trading days
    up to `on` (inclusive); a halted or missing day counts as 0."""
    window = [d for d in days if d.date <= on][-n:]
    out = {}
    for code in codes:
        vols = [d.bars[code].volume if code in d.bars else 0 for d in window]
        out[code] = sum(vols) // len(vols) if vols else 0
    return out


def traded_amount(bar: Any) -> int:
    """A bar's traded amount in fen; volume × close when the source gave none."""
    return int(bar.amount) if bar.amount or not bar.volume else int(bar.volume) * int(bar.close)


def average_amounts(
    days: Sequence[TradingDay], on: dt.date, codes: Iterable[str], n: int = ADV_DAYS
) -> dict[str, int]:
    """Each code's mean daily traded amount (fen, rounded down) over the last `n` trading
    days up to `on` (inclusive); a halted or missing day counts as 0. A bar that traded but
    carries no amount (sources without one, e.g. tushare-hist, write 0) counts volume × close:
    an estimate, where a published 0 would refuse every financed buy of a traded stock."""
    window = [d for d in days if d.date <= on][-n:]
    out = {}
    for code in codes:
        amounts = [traded_amount(d.bars[code]) if code in d.bars else 0 for d in window]
        out[code] = int(sum(amounts)) // len(amounts) if amounts else 0
    return out


def publish_liquidity(
    chain: Any,
    days: Sequence[TradingDay],
    on: dt.date,
    codes: Sequence[str],
    *,
    actor: str = "operator",
) -> dict[str, int]:
    """Publish each code's 20-day average traded amount up to `on` at `RiskParams`
    (`set_liquidity`, ≤ 128 codes a call): the liquidity cap of financed buys and the order in
    which liquidations sell (most liquid first). Nothing when `days` has no day up to `on`
    (a published 0 would refuse every financed buy)."""
    from crowdleverage.chain.codes import code_to_chain
    from crowdleverage.chain.params import PARAMS

    if not any(d.date <= on for d in days):
        return {}  # no trading day in the window: nothing known, nothing published (a 0 refuses)
    amounts = average_amounts(days, on, codes)
    for i in range(0, len(codes), 128):
        part = codes[i : i + 128]
        chain.send(PARAMS, "set_liquidity", [code_to_chain(c) for c in part],
                   [amounts[c] for c in part], actor=actor)  # fmt: skip
    return amounts


def liquidity_caps(
    days: Sequence[TradingDay],
    on: dt.date,
    codes: Sequence[str],
    holdings: dict[str, dict[str, int]],
    cap_bps: int = LIQUIDITY_CAP_BPS,
) -> dict[str, Any]:
    """Per code: 20-day average volume, the platform cap (`cap_bps` of it) and the platform's
    position (Σ of `holdings`, account → code → shares) against it; beside them the 20-day
    average traded amount and its `cap_bps` — the figure and cap the chain enforces on
    financed buys (`RiskParams.liquidity_cap_fen`)."""
    adv = average_volumes(days, on, codes)
    amounts = average_amounts(days, on, codes)
    rows = []
    for code in codes:
        held = sum(h.get(code, 0) for h in holdings.values())
        cap = adv[code] * cap_bps // BPS
        rows.append({
            "code": code, "adv20_shares": adv[code], "cap_shares": cap,
            "adv20_amount_fen": amounts[code], "cap_fen": amounts[code] * cap_bps // BPS,
            "platform_shares": held,
            "days_to_sell_at_cap": round(held / cap, 2) if cap else None,
            "over_cap": held > cap,
        })  # fmt: skip
    return {
        "date": on.isoformat(),
        "adv_days": ADV_DAYS,
        "cap_bps": cap_bps,
        "over_cap": sum(r["over_cap"] for r in rows),
        "codes": rows,
    }


def transparency(
    days: Sequence[TradingDay],
    on: dt.date,
    holdings: dict[str, dict[str, int]] | None = None,
    params: RegimeParams | None = None,
) -> dict[str, Any]:
    """What the transparency page shows: the regime now, its history and parameters, and
    the liquidity caps (with the platform's positions when given). For the integrator."""
    p = params or RegimeParams()
    upto = [d for d in days if d.date <= on]
    history = regime_history(upto, p)
    codes = sorted({b.code for d in upto[-ADV_DAYS:] for b in d.stocks})
    return {
        "regime": history[-1].as_dict() if history else None,
        "history": [h.as_dict() for h in history],
        "params": p.as_dict(),
        "liquidity": liquidity_caps(upto, on, codes, holdings or {}),
    }


@functools.lru_cache(maxsize=4)
def published_history(market_data: str) -> tuple[RegimePoint, ...]:
    """The regime at every close of a bar file, from the whole market in it (the indicator
    needs every listed stock and the index, not only a platform's universe). Computed once
    per file; what the platform publishes and sets on chain reads this."""
    from crowdleverage.market.bars import read_bars
    from crowdleverage.market.replay import trading_days

    return tuple(regime_history(trading_days(read_bars(market_data))))


def regime_at_close(market_data: str, day: dt.date) -> RegimePoint | None:
    """The regime at the last close on or before `day` (None before the file's first close)."""
    points = [p for p in published_history(market_data) if p.date <= day]
    return points[-1] if points else None


def stressed_run(history: Sequence[RegimePoint]) -> int:
    """How many consecutive closes at the end of `history` are STRESSED (0: the last is
    calm): the day after them is the run-th stressed day (1: the switch day)."""
    n = 0
    for p in reversed(history):
        if p.regime is not Regime.STRESSED:
            break
        n += 1
    return n


def stressed_schedule(chain: Any, run: int, *, actor: str = "operator") -> bool:
    """The phase-in of the stressed set (domain/params.py `STRESSED_PHASE_IN_DAYS`): on the
    `run`-th stressed day, `Liquidator.set_stressed_policy` with that day's line share and
    `RiskParams.set_stressed_haircuts` with that day's scale; `run` 0 (calm) puts back the
    full stressed set (what the next switch phases into, and what the transparency page
    shows). Only changes are sent; True when something was. Call it before the regime is set
    to stressed, so that the switch day runs on the phase's values from its first order."""
    from crowdleverage.chain.margin import LIQUIDATOR
    from crowdleverage.chain.params import PARAMS

    line, scale = P.stressed_phase(run) if run > 0 else (
        P.STRESSED_LINE_BPS, P.STRESSED_HAIRCUT_SCALE_BPS)  # fmt: skip
    try:  # a release before the stressed set (its getters revert) has nothing to phase in
        cur_line = int(chain.call(LIQUIDATOR, "stressed_line_bps"))
        target = int(chain.call(LIQUIDATOR, "stressed_target_add_bps"))
        full = bool(chain.call(LIQUIDATOR, "stressed_full_close"))
        cur_scale, st = (int(x) for x in chain.call(PARAMS, "stressed_haircuts"))
    except ContractRevert:
        log.info("stressed phase absent", extra={"event": "stressed_phase_absent"})
        return False
    changed = False
    if cur_line != line:
        chain.send(LIQUIDATOR, "set_stressed_policy", line, target, full, actor=actor)
        changed = True
    if cur_scale != scale:
        chain.send(PARAMS, "set_stressed_haircuts", scale, st, actor=actor)
        changed = True
    if changed:
        log.info("stressed phase", extra={"event": "stressed_phase", "run": run,
                                          "line_bps": line, "scale_bps": scale})  # fmt: skip
    return changed


def apply_on_chain(
    chain: Any,
    point: RegimePoint,
    *,
    actor: str = "operator",
    run: int | None = None,
    references: Any = None,
) -> bool:
    """Set the OrderBook's regime (0 calm, 1 stressed) to `point`'s when it differs, with the
    indicator it rests on (`RegimeChanged` on chain); True when it changed. The contract
    refuses new financing while stressed ("stressed regime: no new financing"). With `run`
    (the consecutive stressed closes up to `point`, `stressed_run`) the stressed set is first
    phased in (`stressed_schedule`). With `references` (the keeper, `risk.keeper.Keeper`) a
    step that changes the haircuts RiskParams values at (the regime, or the stressed scale
    while stressed) moves every NAV-stop reference by what it changed of the account's assets
    (`Keeper.across_haircut_step`): a haircut step is not a loss."""
    from crowdleverage.chain.margin import ORDERBOOK

    want = 1 if point.regime is Regime.STRESSED else 0

    def step() -> bool:
        if run is not None:
            stressed_schedule(chain, run, actor=actor)
        if int(chain.call(ORDERBOOK, "regime")) == want:
            return False
        chain.send(ORDERBOOK, "set_regime", want, point.indicator_bps, actor=actor)
        return True

    # a release without the NAV stop (the keeper reads 0) has no references to move
    if references is None or references.nav_stop_bps() == 0:
        return step()
    # a shift a restart interrupted after its step: completed before anything else moves
    references.resume_shift()
    if not _moves_haircuts(chain, want, run):
        return step()
    changed: bool = references.across_haircut_step(step)
    return changed


def _moves_haircuts(chain: Any, want: int, run: int | None) -> bool:
    """Whether setting the regime `want` (with the phase of `run`) changes the scale RiskParams
    values haircuts at (100% while calm, the stressed scale while stressed)."""
    from crowdleverage.chain.margin import ORDERBOOK
    from crowdleverage.chain.params import PARAMS

    regime = int(chain.call(ORDERBOOK, "regime"))
    try:
        scale = int(chain.call(PARAMS, "stressed_haircuts")[0])
    except (ContractRevert, NotFound):  # a release before the stressed haircuts: no scale
        return False
    target = scale
    if run is not None:
        target = P.stressed_phase(run)[1] if run > 0 else P.STRESSED_HAIRCUT_SCALE_BPS
    before = scale if regime == 1 else BPS
    after = target if want == 1 else BPS
    return before != after
