"""Hypothesis stateful tests on the contracts (titanoboa). Rules are user actions, compliance
actions, day opens and price reports; invariants are DESIGN.md §8 (1, 2, 8) and the oracle's
guarantees. Bounded for CI; `CROWDLEV_LONG=1` runs many more examples."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import boa
from contract_system import CN, PAB, YEAR_S, System, ref
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from crowdleverage.chain.roles import Role

LONG = os.environ.get("CROWDLEV_LONG") == "1"
SETTINGS = settings(
    max_examples=400 if LONG else 30,
    stateful_step_count=60 if LONG else 20,
    deadline=None,
)


def expect(reason: str | None, fn: Any, *args: Any, **kw: Any) -> bool:
    """Call fn; if `reason` is given it must revert with exactly that string."""
    if reason is None:
        fn(*args, **kw)
        return True
    with boa.reverts(reason):
        fn(*args, **kw)
    return False


class _Anchored(RuleBasedStateMachine):
    """Each example runs inside a boa anchor: state is rolled back when it ends."""

    system: System

    def __init__(self) -> None:
        super().__init__()
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()

    def teardown(self) -> None:
        self._anchor.__exit__(None, None, None)


# ------------------------------------------------------------------------------- cash
@dataclass
class Party:
    address: str
    registered: bool = True
    revoked: bool = False
    reg_frozen: bool = False
    cash_frozen: bool = False
    expires_at: int = 0


class CashMachine(_Anchored):
    @initialize()
    def setup(self) -> None:
        s = self.system
        self.parties = [Party(s.investor), Party(s.borrower), Party(s.pool),
                        Party(s.outsider, registered=False)]  # fmt: skip
        for p in self.parties[:3]:
            p.expires_at = s.registry.identities(p.address).expires_at
        self.balances = {p.address: 0 for p in self.parties}
        self.used: set[bytes] = set()

    def _active(self, p: Party) -> bool:
        return (p.registered and not p.revoked and not p.reg_frozen
                and boa.env.timestamp < p.expires_at)  # fmt: skip

    def _receiver_reason(self, p: Party) -> str | None:
        if not self._active(p):
            return "cash: receiver not verified"
        if p.cash_frozen:
            return "cash: receiver frozen"
        return None

    @rule(to=st.integers(0, 3), amount=st.integers(0, 10**9), ref_id=st.integers(0, 12))
    def mint(self, to: int, amount: int, ref_id: int) -> None:
        p, r = self.parties[to], ref(f"cash-{ref_id}")
        reason = (
            "cash: zero amount" if amount == 0
            else "cash: reference already used" if r in self.used
            else self._receiver_reason(p)
        )  # fmt: skip
        if expect(reason, self.system.cash.mint, p.address, amount, r,
                  sender=self.system.custodian):  # fmt: skip
            self.used.add(r)
            self.balances[p.address] += amount

    @rule(frm=st.integers(0, 3), amount=st.integers(0, 10**9), ref_id=st.integers(0, 12))
    def burn(self, frm: int, amount: int, ref_id: int) -> None:
        p, r = self.parties[frm], ref(f"cash-{ref_id}")
        reason = (
            "cash: zero amount" if amount == 0
            else "cash: reference already used" if r in self.used
            else "cash: holder frozen" if p.cash_frozen
            else "cash: insufficient balance" if self.balances[p.address] < amount
            else None
        )  # fmt: skip
        if expect(reason, self.system.cash.burn, p.address, amount, r,
                  sender=self.system.custodian):  # fmt: skip
            self.used.add(r)
            self.balances[p.address] -= amount

    @rule(frm=st.integers(0, 3), to=st.integers(0, 3), amount=st.integers(0, 10**9))
    def transfer(self, frm: int, to: int, amount: int) -> None:
        a, b = self.parties[frm], self.parties[to]
        reason = (
            "cash: sender not verified" if not self._active(a)
            else "cash: sender frozen" if a.cash_frozen
            else self._receiver_reason(b)
            or ("cash: insufficient balance" if self.balances[a.address] < amount else None)
        )  # fmt: skip
        if expect(reason, self.system.cash.transfer, b.address, amount, sender=a.address):
            self.balances[a.address] -= amount
            self.balances[b.address] += amount

    @rule(who=st.integers(0, 2))
    def toggle_registry_freeze(self, who: int) -> None:
        p = self.parties[who]
        p.reg_frozen = not p.reg_frozen
        self.system.registry.set_frozen(p.address, p.reg_frozen, sender=self.system.compliance)

    @rule(who=st.integers(0, 2))
    def toggle_cash_freeze(self, who: int) -> None:
        p = self.parties[who]
        p.cash_frozen = not p.cash_frozen
        self.system.cash.set_frozen(p.address, p.cash_frozen, sender=self.system.compliance)

    @rule(who=st.integers(0, 2), expires_in_s=st.sampled_from([1, 50, YEAR_S]))
    def reverify(self, who: int, expires_in_s: int) -> None:
        p = self.parties[who]
        p.expires_at = boa.env.timestamp + expires_in_s
        p.revoked = False
        self.system.registry.register(p.address, int(Role.INVESTOR), 3, CN, p.expires_at,
                                      sender=self.system.compliance)  # fmt: skip

    @precondition(lambda self: any(not p.revoked for p in self.parties[:3]))
    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        p = data.draw(st.sampled_from([p for p in self.parties[:3] if not p.revoked]))
        p.revoked = True
        self.system.registry.revoke(p.address, sender=self.system.compliance)

    @rule(seconds=st.integers(1, 100))
    def wait(self, seconds: int) -> None:
        boa.env.time_travel(seconds=seconds)

    @invariant()
    def supply_is_sum_of_balances(self) -> None:
        total = sum(self.system.cash.balanceOf(a) for a in self.balances)
        assert self.system.cash.totalSupply() == total == sum(self.balances.values())

    @invariant()
    def balances_match_model(self) -> None:
        for a, bal in self.balances.items():
            assert self.system.cash.balanceOf(a) == bal


def test_cash_token_stateful(system: System) -> None:
    CashMachine.system = system
    run_state_machine_as_test(CashMachine, settings=SETTINGS)


# ------------------------------------------------------------------------------- shares
@dataclass
class Holding:
    qty: int = 0
    locked_qty: int = 0
    locked_day: int = -1


class SharesMachine(_Anchored):
    @initialize()
    def setup(self) -> None:
        s = self.system
        self.holders = [s.investor, s.borrower, s.pool]
        self.h = {a: Holding() for a in self.holders}
        self.day = s.oracle.trading_day()
        self.used: set[bytes] = set()
        self.frozen: set[str] = set()

    def _locked(self, a: str) -> int:
        h = self.h[a]
        return h.locked_qty if h.locked_day == self.day else 0

    def _add_lock(self, a: str, qty: int) -> None:
        h = self.h[a]
        h.locked_qty, h.locked_day = self._locked(a) + qty, self.day

    def _move_reason(self, a: str, qty: int) -> str | None:
        if self.h[a].qty < qty:
            return "shares: insufficient balance"
        if self.h[a].qty - self._locked(a) < qty:
            return "shares: locked until next trading day"
        return None

    @rule(who=st.integers(0, 2))
    def toggle_freeze(self, who: int) -> None:
        a = self.holders[who]
        self.frozen ^= {a}
        self.system.registry.set_frozen(a, a in self.frozen, sender=self.system.compliance)

    @rule(who=st.integers(0, 2), qty=st.integers(0, 5_000), ref_id=st.integers(0, 12))
    def buy_fill(self, who: int, qty: int, ref_id: int) -> None:
        a, r = self.holders[who], ref(f"fill-{ref_id}")
        reason = ("shares: zero quantity" if qty == 0
                  else "shares: reference already used" if r in self.used
                  else "shares: receiver not verified" if a in self.frozen else None)  # fmt: skip
        if expect(reason, self.system.shares.mint, a, PAB, qty, r, sender=self.system.broker):
            self.used.add(r)
            self.h[a].qty += qty
            self._add_lock(a, qty)

    @rule(who=st.integers(0, 2), qty=st.integers(1, 5_000), ref_id=st.integers(0, 12))
    def sell_fill(self, who: int, qty: int, ref_id: int) -> None:
        a, r = self.holders[who], ref(f"fill-{ref_id}")
        reason = "shares: reference already used" if r in self.used else self._move_reason(a, qty)
        if expect(reason, self.system.shares.burn, a, PAB, qty, r, sender=self.system.broker):
            self.used.add(r)
            self.h[a].qty -= qty

    @rule(frm=st.integers(0, 2), to=st.integers(0, 2), qty=st.integers(1, 5_000))
    def transfer(self, frm: int, to: int, qty: int) -> None:
        a, b = self.holders[frm], self.holders[to]
        reason = ("shares: sender not verified" if a in self.frozen
                  else "shares: receiver not verified" if b in self.frozen
                  else self._move_reason(a, qty))  # fmt: skip
        if expect(reason, self.system.shares.transfer, b, PAB, qty, sender=a):
            self.h[a].qty -= qty
            self.h[b].qty += qty

    @rule(frm=st.integers(0, 2), to=st.integers(0, 2), qty=st.integers(1, 5_000))
    def forced_transfer(self, frm: int, to: int, qty: int) -> None:
        a, b = self.holders[frm], self.holders[to]
        reason = ("shares: transfer to self" if a == b
                  else "shares: receiver not verified" if b in self.frozen
                  else "shares: insufficient balance" if self.h[a].qty < qty else None)  # fmt: skip
        if expect(reason, self.system.shares.forced_transfer, a, b, PAB, qty,
                  sender=self.system.operator):  # fmt: skip
            locked = self._locked(a)
            moved_locked = max(0, qty - (self.h[a].qty - locked))
            if moved_locked:
                self.h[a].locked_qty, self.h[a].locked_day = locked - moved_locked, self.day
                self._add_lock(b, moved_locked)
            self.h[a].qty -= qty
            self.h[b].qty += qty

    @rule()
    def next_day(self) -> None:
        self.day += 1
        self.system.oracle.open_day(self.day, sender=self.system.operator)

    @invariant()
    def supply_is_sum_of_balances(self) -> None:
        total = sum(self.system.shares.balance_of(a, PAB) for a in self.holders)
        assert self.system.shares.total_supply(PAB) == total == sum(h.qty for h in self.h.values())

    @invariant()
    def locks_match_model(self) -> None:
        for a in self.holders:
            assert self.system.shares.balance_of(a, PAB) == self.h[a].qty
            assert self.system.shares.locked_balance_of(a, PAB) == self._locked(a)
            assert self._locked(a) <= self.h[a].qty


def test_share_certificates_stateful(system: System) -> None:
    SharesMachine.system = system
    run_state_machine_as_test(SharesMachine, settings=SETTINGS)


# ------------------------------------------------------------------------------- oracle
@dataclass
class Report:
    price_fen: int
    ts: int
    day: int


@dataclass
class OracleModel:
    reports: dict[str, Report] = field(default_factory=dict)


class OracleMachine(_Anchored):
    """3 honest reporters quote inside an honest window; 1-2 manipulated reporters quote
    anything. Quorum is 2k+1 for k manipulators, so a reliable median always has an honest
    majority behind it."""

    @initialize(n_bad=st.integers(1, 2), prev_close=st.integers(500, 5_000))
    def setup(self, n_bad: int, prev_close: int) -> None:
        s = self.system
        self.honest = s.reporters[:3]
        self.bad = s.reporters[3 : 3 + n_bad]
        s.oracle.set_params(600, 2 * n_bad + 1, sender=s.operator)
        self.model = OracleModel()
        self.day = s.oracle.trading_day()
        self._open(prev_close)

    def _open(self, prev_close: int) -> None:
        self.day += 1
        self.down, self.up = (prev_close * 9 + 9) // 10, prev_close * 11 // 10
        self.system.oracle.open_day(self.day, sender=self.system.operator)
        self.system.oracle.set_day_params(PAB, prev_close, self.down, self.up, False,
                                          sender=self.system.operator)  # fmt: skip

    def _fresh(self, who: list[str]) -> list[int]:
        now = boa.env.timestamp
        return [r.price_fen for a, r in self.model.reports.items()
                if a in who and r.day == self.day and r.ts + 600 >= now]  # fmt: skip

    @rule(i=st.integers(0, 2), data=st.data())
    def honest_report(self, i: int, data: st.DataObject) -> None:
        # honest reporters agree within a narrow window around the middle of the band
        mid = (self.down + self.up) // 2
        width = max(1, (self.up - self.down) // 20)
        price = data.draw(st.integers(mid - width, mid + width))
        self.system.oracle.report(PAB, price, sender=self.honest[i])
        self.model.reports[self.honest[i]] = Report(price, boa.env.timestamp, self.day)

    @rule(j=st.integers(0, 1), price=st.integers(1, 20_000))
    def manipulated_report(self, j: int, price: int) -> None:
        if j >= len(self.bad):
            return
        who = self.bad[j]
        if self.down <= price <= self.up:
            self.system.oracle.report(PAB, price, sender=who)
            self.model.reports[who] = Report(price, boa.env.timestamp, self.day)
        else:
            with boa.reverts("oracle: price outside band"):
                self.system.oracle.report(PAB, price, sender=who)

    @rule(seconds=st.integers(1, 400))
    def wait(self, seconds: int) -> None:
        boa.env.time_travel(seconds=seconds)

    @rule(move_bps=st.integers(-1_000, 1_000))
    def new_day(self, move_bps: int) -> None:
        prev = max(100, (self.down + self.up) // 2 * (10_000 + move_bps) // 10_000)
        self._open(prev)

    @invariant()
    def median_inside_honest_range_when_reliable(self) -> None:
        honest = self._fresh(self.honest)
        if self.system.oracle.is_reliable(PAB):
            price = self.system.oracle.price(PAB)
            assert honest and min(honest) <= price <= max(honest)
            assert self.down <= price <= self.up

    @invariant()
    def reliability_matches_model(self) -> None:
        n = len(self._fresh(self.honest)) + len(self._fresh(self.bad))
        assert self.system.oracle.is_reliable(PAB) == (n >= 2 * len(self.bad) + 1)

    @invariant()
    def stored_reports_of_today_are_in_band(self) -> None:
        for who in self.honest + self.bad:
            price, day, _ = self.system.oracle.report_of(PAB, who)
            if day == self.day:
                assert self.down <= price <= self.up


def test_price_oracle_stateful(system: System) -> None:
    OracleMachine.system = system
    run_state_machine_as_test(OracleMachine, settings=SETTINGS)
