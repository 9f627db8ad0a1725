"""The chain figures behind the market-wide views (the risk panel, the transparency page), kept
between blocks and refreshed piece by piece (issue 14).

Every command or tick transaction mines a block, and reading the panel's figures again after
each one cost ~28 view calls per borrower (an account's state, its codes, each position and
what is sellable) and ~4 per financed security (the transparency page's liquidity headroom):
100-300 ms of the platform process's single writer per render. Here each account's figures
and each security's liquidity figures are kept with the stamp they were read under, and read
again only when something they depend on changed since:

- the market moved (a replay tick: another day or step), or
- an event of the chain other than a wallet's cash (`CashToken`: withdrawals and deposits
  change no account, position, parameter or price) that names no margin account (oracle
  prices, parameters, the pool, fills reported by order id): every figure, or
- an event of the engine, the liquidator or the order book naming an account (`account` or
  `who`): that account's figures and every security's platform position;
- the oracle's prices (its events) change the accounts' ratios and the securities' exposure,
  not the quantities held; what is sellable changes with the day.

What changes without an event is the interest the debts accrue with the chain's clock (each
block is a second later): a kept debt may be short of it by the interest since the account
was last read (a fen or so between two ticks; every tick reads every account again).

`warm` refreshes stale pieces until a time budget runs out (the writer calls it between
batches of commands before rendering these views, so no render waits for all of them);
`accounts` and `liquidity` refresh whatever is still stale first, so their callers always
get the figures as defined above.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crowdleverage.chain.codes import code_from_chain
from crowdleverage.chain.margin import MARGIN_CONTRACTS
from crowdleverage.chain.params import LiquidityHeadroom, liquidity_headroom, read_params

if TYPE_CHECKING:
    from crowdleverage.chain.params import ChainParams
    from crowdleverage.flows.chain_financing import AccountView
    from crowdleverage.flows.platform import Platform

ENGINE = "MarginEngine"
WALLET_CONTRACTS = frozenset({"CashToken"})  # wallet cash only: no figure here changes
PRICE_CONTRACTS = frozenset({"PriceOracle"})  # prices: no position or parameter changes
_ACCOUNT_ARGS = ("account", "who")


@dataclass(frozen=True, slots=True)
class Position:
    """A position held (quantity > 0) and how much of it is sellable today."""

    code: str
    quantity: int
    sellable: int


class RiskFigures:
    """The kept figures of one platform (all calls under the platform's lock)."""

    def __init__(self, platform: Platform) -> None:
        self.p = platform
        self._cursor: int | None = None  # the chain's event seq read up to
        self._block = -1  # the block the events were read at
        self._global = 0  # events that may change any figure but prices
        self._prices = 0  # the oracle's events
        self._engine = 0  # events naming an account (platform positions)
        self._named: dict[str, int] = {}  # lowercase address -> events naming it
        self._views: dict[int, tuple[tuple[Any, ...], AccountView]] = {}
        self._positions: dict[int, tuple[tuple[Any, ...], tuple[Position, ...]]] = {}
        self._liquidity: dict[str, tuple[tuple[Any, ...], LiquidityHeadroom]] = {}
        self._params: tuple[tuple[Any, ...], ChainParams] | None = None
        self._address: dict[int, str] = {}
        self.reads = 0  # pieces read from the chain (tests, benches)

    # ------------------------------------------------------------------ stamps

    def _advance(self) -> None:
        """Count the events since the last look (only when a block was mined since)."""
        chain = self.p.chain
        block = chain.block_number()
        if block == self._block:
            return
        if self._cursor is None:  # nothing is kept yet: the record's cursor is early enough
            self._cursor = int(self.p.s.cursor)
        events = chain.events(since=self._cursor)
        for e in events:
            if e.contract in WALLET_CONTRACTS:
                continue
            if e.contract in PRICE_CONTRACTS:
                self._prices += 1
                continue
            who = next((e.args[k] for k in _ACCOUNT_ARGS if k in e.args), None)
            if e.contract in MARGIN_CONTRACTS and isinstance(who, str):
                key = who.lower()
                self._named[key] = self._named.get(key, 0) + 1
                self._engine += 1
            else:
                self._global += 1
        if events:
            self._cursor = events[-1].seq
        self._block = block

    def _who(self, owner_id: int) -> str:
        who = self._address.get(owner_id)
        if who is None:
            who = self._address[owner_id] = self.p.fin.address(owner_id)
        return who

    def _view_stamp(self, owner_id: int) -> tuple[Any, ...]:
        market = self.p.market
        named = self._named.get(self._who(owner_id).lower(), 0)
        return (market.day_index, market.step, self._global, self._prices, named)

    def _positions_stamp(self, owner_id: int) -> tuple[Any, ...]:
        # quantities change with an event (a fill, a corporate action), sellable with the day
        named = self._named.get(self._who(owner_id).lower(), 0)
        return (self.p.market.day_index, self._global, named)

    def _liquidity_stamp(self) -> tuple[Any, ...]:
        market = self.p.market
        return (market.day_index, market.step, self._global, self._prices, self._engine)

    # ------------------------------------------------------------------ pieces

    def _fresh_params(self) -> ChainParams:
        stamp = (self.p.market.day_index, self._global)
        if self._params is None or self._params[0] != stamp:
            self._params = (stamp, read_params(self.p.chain))
            self.reads += 1
        return self._params[1]

    def _owners(self) -> list[int]:
        return [acc.owner_id for acc in self.p.s.accounts.values()]

    def _view(self, owner_id: int) -> AccountView:
        stamp = self._view_stamp(owner_id)
        hit = self._views.get(owner_id)
        if hit is None or hit[0] != stamp:
            hit = self._views[owner_id] = (stamp, self.p.fin.account(owner_id))
            self.reads += 1
        return hit[1]

    def _held(self, owner_id: int) -> tuple[Position, ...]:
        stamp = self._positions_stamp(owner_id)
        hit = self._positions.get(owner_id)
        if hit is None or hit[0] != stamp:
            chain, who = self.p.chain, self._who(owner_id)
            out = []
            for raw in chain.call(ENGINE, "codes_of", who):
                qty = int(chain.call(ENGINE, "positions", who, int(raw)))
                if qty:
                    sellable = int(chain.call(ENGINE, "sellable", who, int(raw)))
                    out.append(Position(code_from_chain(int(raw)), qty, sellable))
            hit = self._positions[owner_id] = (stamp, tuple(out))
            self.reads += 1
        return hit[1]

    def _headroom(self, code: str) -> LiquidityHeadroom:
        stamp = self._liquidity_stamp()
        hit = self._liquidity.get(code)
        if hit is None or hit[0] != stamp:
            [row] = liquidity_headroom(self.p.chain, [code])
            hit = self._liquidity[code] = (stamp, row)
            self.reads += 1
        return hit[1]

    def _stale(self) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        for owner in self._owners():
            hit = self._views.get(owner)
            if hit is None or hit[0] != self._view_stamp(owner):
                out.append(("view", owner))
            held = self._positions.get(owner)
            if held is None or held[0] != self._positions_stamp(owner):
                out.append(("held", owner))
        stamp = self._liquidity_stamp()
        out += [("code", c) for c in sorted(self.p.codes)
                if (hit2 := self._liquidity.get(c)) is None or hit2[0] != stamp]  # fmt: skip
        return out

    # ------------------------------------------------------------------ use

    def params(self) -> ChainParams:
        """`read_params`, kept until another day or an event that may change it."""
        with self.p.lock:
            self._advance()
            return self._fresh_params()

    def account(self, owner_id: int) -> tuple[AccountView, tuple[Position, ...]]:
        """One margin account's engine view and positions (read now when stale)."""
        with self.p.lock:
            self._advance()
            return self._view(owner_id), self._held(owner_id)

    def accounts(self) -> dict[int, tuple[AccountView, tuple[Position, ...]]]:
        """Every margin account's engine view and positions by owner id."""
        with self.p.lock:
            self._advance()
            return {o: (self._view(o), self._held(o)) for o in self._owners()}

    def liquidity(self) -> list[LiquidityHeadroom]:
        """`liquidity_headroom` of every financed security, sorted by code."""
        with self.p.lock:
            self._advance()
            return [self._headroom(c) for c in sorted(self.p.codes)]

    def warm(self, budget_s: float) -> bool:
        """Refresh stale pieces (at least one, when any) until `budget_s` has passed; True
        when none is left stale."""
        t_end = time.monotonic() + budget_s
        read: dict[str, Callable[[Any], object]] = {
            "view": self._view, "held": self._held, "code": self._headroom}  # fmt: skip
        with self.p.lock:
            self._advance()
            stamp = (self.p.market.day_index, self._global)
            first = self._params is None or self._params[0] != stamp
            if first:
                self._fresh_params()
            for i, (kind, item) in enumerate(self._stale()):
                if (i or first) and time.monotonic() >= t_end:
                    return False
                read[kind](item)
            return True
