"""Stateful property test (hypothesis + titanoboa) on the split margin system (MarginEngine,
OrderBook, Liquidator): investors, borrowers, the broker, the keeper and the market act in
random order; after every step the contract invariants of DESIGN.md §8 hold (1, 2, 4, 5, 6, 7,
8, 9, 10; 3 is the custody ledger's).

No revert is swallowed: an action may be refused only with one of the revert strings listed
for it in `EXPECTED` (any other revert fails the test). Successful actions are counted per kind,
printed, and every kind must succeed at least once per run.

CI runs a bounded number of examples; `CROWDLEV_LONG=1` runs the long profile."""

from __future__ import annotations

from collections import Counter

import boa
from fin_system import MAIN, YUAN, Platform, fin_profile, rollback
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

BPS = 10_000
# Successful actions per kind over the run (printed; each kind must occur at least once).
EVENTS: Counter[str] = Counter()
# Refusals per kind (printed): expected revert strings only.
REFUSED: Counter[str] = Counter()
BUY_LIMITS = (
    "margin: ratio below initial",
    "margin: leverage above tier",
    "margin: insufficient assets",
    "margin: platform exposure above 5%",
    "margin: above liquidity cap",
    "margin: account in liquidation",
    "oracle: price unreliable",
    "pool: utilisation above limit",
    "pool: insufficient liquidity",
    "orderbook: too many open orders",  # 48 of the account's orders left open
)
# The only reasons each action may be refused with.
EXPECTED: dict[str, tuple[str, ...]] = {
    "deposit": (),
    "withdraw": (
        "margin: insufficient cash",
        "margin: insufficient reserve",
        "margin: ratio below withdrawal line",
        "margin: account in liquidation",
    ),
    "buy": BUY_LIMITS,
    "sell": ("margin: account in liquidation", "orderbook: too many open orders"),
    "close_epoch": ("pool: epoch not over",),
    "end_liquidation": ("margin: still below liquidation line",),
    "start_liquidation (above the line)": ("margin: above liquidation line",),
}
THEN = st.sampled_from(["fill", "cancel", "leave"])  # the broker's answer to a new order
KINDS = (
    "subscribe", "redeem", "close_epoch", "deposit", "withdraw", "buy", "sell", "repay",
    "buy fill", "sell fill", "cancel", "price move", "next day", "crash day", "time passes",
    "top-up", "liquidation started", "liquidation fill", "end_liquidation", "liquidity",
)  # fmt: skip


class FinancingMachine(RuleBasedStateMachine):
    platform: Platform

    def __init__(self) -> None:
        super().__init__()
        self.p = self.platform
        self._ctx = rollback(self.p)
        self._ctx.__enter__()
        self.open_orders: list[int] = []
        self.all_orders: list[int] = []  # every order id placed (ids are not sequential)
        self.fills: dict[int, int] = {}  # fills settled per order id
        self.index_seen: dict[int, int] = {}

    def teardown(self) -> None:
        self._ctx.__exit__(None, None, None)

    # ------------------------------------------------------------ setup
    @initialize()
    def setup(self) -> None:
        p = self.p
        self.investors = [p.new_actor(f"inv{i}", Role.INVESTOR) for i in range(2)]
        p.invest(self.investors[0], True, 4_000_000 * YUAN)
        p.invest(self.investors[1], False, 1_000_000 * YUAN)
        p.close_epoch()
        p.mint(p.operator, 20_000 * YUAN)
        p.cash.transfer(p.insurance.address, 20_000 * YUAN, sender=p.operator)
        p.insurance.credit(20_000 * YUAN, 0, sender=p.operator)
        # the 40% rule has its own unit tests; here one security may carry the book
        p.params.set_limits((10_000, 2_000, 100, 10_500, 30, 30_000), sender=p.operator)
        self.borrowers = [
            p.open_borrower("b_tier3", 3, 100_000 * YUAN, 20_000 * YUAN),
            p.open_borrower("b_tier2", 2, 100_000 * YUAN, 0),
            p.open_borrower("b_cash", 1, 50_000 * YUAN, 5_000 * YUAN),  # no debt yet
        ]
        # the tier-3 borrower starts levered at ~136% (debt ~270k on 100k margin), the
        # tier-2 one at ~200%: two crash days reach the liquidation lines
        p.buy(self.borrowers[0], MAIN[0], 20_000)
        p.buy(self.borrowers[0], MAIN[1], 10_000)
        p.buy(self.borrowers[0], MAIN[2], 7_000)
        p.buy(self.borrowers[1], MAIN[1], 20_000)
        p.next_day()

    # ------------------------------------------------------------ helpers
    def _try(self, kind: str, fn, *args, **kwargs) -> bool:
        """Run an action that may be refused, but only for one of its expected reasons."""
        try:
            fn(*args, **kwargs)
        except boa.BoaError as err:
            text = str(err)
            if not any(reason in text for reason in EXPECTED[kind]):
                raise AssertionError(f"{kind}: unexpected revert\n{text[:2000]}") from err
            REFUSED.update((kind,))
            return False
        EVENTS.update((kind,))
        return True

    def _line(self, who: str) -> int:
        return self.p.params.tiers(self.p.engine.accounts(who)[0])[3]

    def _healthy(self, who: str) -> bool:
        return self.p.ratio(who) >= self._line(who)

    def _user_action(self, kind: str, who: str, fn, *args) -> bool:
        """DESIGN §8.6: a user action never takes an account from healthy to unhealthy."""
        healthy = self._healthy(who)
        done = self._try(kind, fn, *args, sender=who)
        if healthy:
            assert self._healthy(who)
        return done

    def _placed(self, contract) -> list[int]:
        """The order ids the last successful call to `contract` placed (from the order
        book's events: ids are an account's reused slots, not a counter)."""
        logs = self.p.orderbook.get_logs(computation=contract._computation)
        ids = [
            int(e.order_id)
            for e in logs
            if type(e).__name__ in ("OrderRequested", "LiquidationOrder")
        ]
        self.open_orders.extend(ids)
        self.all_orders.extend(ids)
        return ids

    # ------------------------------------------------------------ investors
    @rule(i=st.integers(0, 1), senior=st.booleans(), amount=st.integers(1, 500_000))
    def subscribe(self, i: int, senior: bool, amount: int) -> None:
        self.p.invest(self.investors[i], senior, amount * YUAN)
        EVENTS.update(("subscribe",))

    @rule(i=st.integers(0, 1), senior=st.booleans(), pct=st.integers(1, 100))
    def redeem(self, i: int, senior: bool, pct: int) -> None:
        share = self.p.senior if senior else self.p.junior
        qty = share.balanceOf(self.investors[i]) * pct // 100
        if qty:
            self.p.pool.redeem(senior, qty, sender=self.investors[i])
            EVENTS.update(("redeem",))

    @rule()
    def close_epoch(self) -> None:
        self._try("close_epoch", self.p.close_epoch)

    # ------------------------------------------------------------ borrowers
    @rule(b=st.integers(0, 2), amount=st.integers(1, 50_000), reserve=st.booleans())
    def deposit(self, b: int, amount: int, reserve: bool) -> None:
        who = self.borrowers[b]
        self.p.mint(who, amount * YUAN)
        self.p.cash.approve(self.p.engine.address, amount * YUAN, sender=who)
        self._user_action("deposit", who, self.p.engine.deposit, amount * YUAN, reserve)

    @rule(b=st.integers(0, 2), pct=st.integers(1, 120), reserve=st.booleans())
    def withdraw(self, b: int, pct: int, reserve: bool) -> None:
        who = self.borrowers[b]
        balance = self.p.engine.accounts(who)[2 if reserve else 1]
        amount = max(1, balance * pct // 100)  # above 100%: refused as insufficient
        self._user_action("withdraw", who, self.p.engine.withdraw, amount, reserve)

    @rule(b=st.integers(0, 2), c=st.integers(0, 2), lots=st.integers(1, 200), then=THEN)
    def buy(self, b: int, c: int, lots: int, then: str) -> None:
        who, code = self.borrowers[b], MAIN[c]
        price = self.p.prices[code]
        if self._user_action("buy", who, self.p.orderbook.request_buy, code, lots * 100, price):
            [oid] = self._placed(self.p.orderbook)
            if then == "fill":  # the broker fills it at once at the limit
                self.p.orderbook.settle_fill(
                    oid, 0, lots * 100, price, 0, self.p.ref(), sender=self.p.broker
                )
                self.fills[oid] = self.fills.get(oid, 0) + 1
                EVENTS.update(("buy fill",))
            elif then == "cancel":  # rejected by the exchange: released at once
                self.p.orderbook.cancel_order(oid, sender=self.p.broker)
                EVENTS.update(("cancel",))

    @rule(c=st.integers(0, 2), yuan=st.integers(0, 20_000_000))
    def publish_liquidity(self, c: int, yuan: int) -> None:
        """The operator publishes a security's 20-day average traded amount: financed buys
        then keep the platform's position within 10% of it (0 refuses them)."""
        self.p.params.set_liquidity([MAIN[c]], [yuan * YUAN], sender=self.p.operator)
        EVENTS.update(("liquidity",))

    @rule(b=st.integers(0, 2), c=st.integers(0, 2), pct=st.integers(1, 100), then=THEN)
    def sell(self, b: int, c: int, pct: int, then: str) -> None:
        who, code = self.borrowers[b], MAIN[c]
        qty = self.p.engine.sellable(who, code) * pct // 100 // 100 * 100
        if qty and self._user_action(
            "sell", who, self.p.orderbook.request_sell, code, qty, self.p.prices[code]
        ):
            [oid] = self._placed(self.p.orderbook)
            if then == "fill" and not self.p.oracle.is_sealed_limit_down(code):
                self._sell_fill(oid, qty, self.p.prices[code])
                EVENTS.update(("sell fill",))

    @rule(b=st.integers(0, 2), amount=st.integers(1, 200_000))
    def repay(self, b: int, amount: int) -> None:
        who = self.borrowers[b]
        self.p.mint(who, amount * YUAN)
        self.p.cash.approve(self.p.engine.address, amount * YUAN, sender=who)
        debt = self.p.engine.debt_of(who)
        if debt:  # DESIGN §8.10: any account can always repay
            self.p.engine.repay(amount * YUAN, True, sender=who)
            EVENTS.update(("repay",))
            assert self.p.engine.debt_of(who) <= max(0, debt - amount * YUAN) + 1

    # ------------------------------------------------------------ broker
    @precondition(lambda self: self.open_orders)
    @rule(k=st.integers(0, 20), part=st.integers(1, 100), cancel=st.booleans())
    def fill(self, k: int, part: int, cancel: bool) -> None:
        oid = self.open_orders[k % len(self.open_orders)]
        o = self.p.orderbook.orders(oid)
        if not o[4]:
            self.open_orders.remove(oid)
            return
        who, code, is_buy, liq = o[0], o[1], o[2], o[3]
        rest = o[5] - o[6]
        qty = max(100, rest * part // 100 // 100 * 100) if rest >= 100 else rest
        qty = min(qty, rest)
        price = self.p.prices[code]
        if not is_buy and self.p.oracle.is_sealed_limit_down(code):
            return  # nothing sells into a sealed limit-down
        ratio0, solvent = self.p.ratio(who), self._solvent(who)
        if is_buy:
            price = min(price, o[7])
            seq = self.p.orderbook.fill_count(oid)
            self.p.orderbook.settle_fill(
                oid, seq, qty, price, 0, self.p.ref(), sender=self.p.broker
            )
            self.fills[oid] = self.fills.get(oid, 0) + 1
            EVENTS.update(("buy fill",))
        elif liq or o[7] <= self.p.oracle.band(code)[1]:
            price = price if liq else max(price, o[7])  # a sell fills at or above its limit
            self._sell_fill(oid, qty, price)
            EVENTS.update(("liquidation fill" if liq else "sell fill",))
            if liq and solvent:  # DESIGN §8.7
                assert self.p.ratio(who) >= ratio0
        if cancel and self.p.orderbook.orders(oid)[4]:
            self.p.orderbook.cancel_order(oid, sender=self.p.broker)
            EVENTS.update(("cancel",))

    @precondition(lambda self: self.open_orders)
    @rule()
    def fill_liquidations(self) -> None:
        """The broker fills every open liquidation sell at today's price (unless sealed),
        then the keeper looks at the accounts (ends finished liquidations)."""
        for oid in list(self.open_orders):
            o = self.p.orderbook.orders(oid)
            if o[4] and o[3] and not self.p.oracle.is_sealed_limit_down(o[1]):
                self._sell_fill(oid, o[5] - o[6], self.p.prices[o[1]])
                EVENTS.update(("liquidation fill",))
        self.keeper_sweep()

    def _solvent(self, who: str) -> bool:
        assets, debt, _ = self.p.state(who)
        return assets >= debt

    def _sell_fill(self, oid: int, qty: int, price_fen: int) -> None:
        self.p.sell_fill(oid, qty, price_fen)
        self.fills[oid] = self.fills.get(oid, 0) + 1

    # ------------------------------------------------------------ market and time
    @rule(c=st.integers(0, 2), move_bps=st.integers(-1_000, 1_000))
    def price_move(self, c: int, move_bps: int) -> None:
        code = MAIN[c]
        prev = self.p.prev_close[code]
        price = prev * (BPS + move_bps) // BPS
        lo, hi = self.p.oracle.band(code)
        self.p.set_price(code, min(max(price, lo), hi))
        EVENTS.update(("price move",))

    @rule(sealed=st.lists(st.booleans(), min_size=3, max_size=3))
    def next_day(self, sealed: list[bool]) -> None:
        moves = {
            code: (self.p.prices[code] * 9_000 + 5_000) // 10_000
            for code, s in zip(MAIN, sealed, strict=True)
            if s
        }
        self.p.next_day(moves)
        EVENTS.update(("next day",))

    @rule()
    def crash_day(self) -> None:
        """A 2015-style day: every stock sealed at its limit-down."""
        self.p.next_day({c: (self.p.prices[c] * 9_000 + 5_000) // 10_000 for c in MAIN})
        EVENTS.update(("crash day",))

    @rule()
    def crash_week(self) -> None:
        """Two limit-down days with the keeper watching, then a day that opens unsealed: the
        broker fills the liquidation sells and the keeper ends what it can."""
        self.crash_day()
        self.crash_day()
        self.keeper_sweep()
        self.p.next_day()
        EVENTS.update(("next day",))
        if self.open_orders:
            self.fill_liquidations()

    @rule()
    def keeper_sweep(self) -> None:
        """The keeper's tick over every account (the monitor calls it on every price)."""
        for b in range(len(self.borrowers)):
            self.keeper(b)

    @rule(hours=st.integers(1, 6))
    def time_passes(self, hours: int) -> None:
        boa.env.time_travel(seconds=hours * 3_600)
        for code in MAIN:  # reporters keep prices fresh
            self.p.set_price(code, self.p.prices[code])
        EVENTS.update(("time passes",))

    # ------------------------------------------------------------ keeper
    @rule(b=st.integers(0, 2))
    def keeper(self, b: int) -> None:
        p, who = self.p, self.borrowers[b]
        acct = p.engine.accounts(who)
        ratio = p.ratio(who)
        tier = p.params.tiers(acct[0])
        if ratio < tier[2] and acct[2] > 0:
            p.liquidator.top_up(who, sender=p.keeper)
            EVENTS.update(("top-up",))
            assert p.ratio(who) > ratio or p.engine.accounts(who)[2] == 0
            ratio = p.ratio(who)
        if acct[6]:
            ended = acct[7] == 0 and self._try(
                "end_liquidation", p.liquidator.end_liquidation, who, sender=p.keeper
            )
            if acct[7] == 0 and not ended:
                self._start(who)
        elif ratio < tier[3]:
            self._start(who)
        else:
            # DESIGN §8.7: never above the liquidation line
            kind = "start_liquidation (above the line)"
            assert not self._try(kind, p.liquidator.start_liquidation, who, sender=p.keeper)

    def _start(self, who: str) -> None:
        self.p.liquidator.start_liquidation(who, sender=self.p.keeper)
        EVENTS.update(("liquidation started",))
        self._placed(self.p.liquidator)

    # ------------------------------------------------------------ invariants
    @invariant()
    def cash_is_conserved(self) -> None:
        """§8.1/§8.2: supply = the sum of every holder; each mint reference used once."""
        p = self.p
        holders = [
            p.pool.address, p.insurance.address, p.engine.address, p.broker, p.fee_recipient,
            p.operator, *self.investors, *self.borrowers,
        ]  # fmt: skip
        assert sum(p.cash.balanceOf(h) for h in holders) == p.cash.totalSupply()
        # the financing of open buy orders stays at the pool until their fills pay the broker
        undisbursed = p.pool.undisbursed_fen()
        assert p.cash.balanceOf(p.engine.address) + undisbursed == p.engine.held_fen()
        assert undisbursed == sum(p.orderbook.orders(i)[9] for i in set(self.all_orders))
        # each fill settled once, under its number: every order's fill count is the fills
        # settled on it (an order whose slot the account's later order reuses reads as
        # unknown, all zero)
        for i in set(self.all_orders):
            if p.orderbook.orders(i)[0] != "0x" + "00" * 20:
                assert p.orderbook.fill_count(i) == self.fills.get(i, 0)

    @invariant()
    def pool_books_balance(self) -> None:
        """§8.4: pool assets = cash + debt - losses; tranche claims sum to them."""
        p = self.p
        pool = p.pool
        assert pool.idle_fen() + pool.principal_out_fen() == (
            pool.senior_claim_fen() + pool.junior_claim_fen() + pool.interest_pending_fen()
        )
        assert pool.principal_out_fen() == p.principal_owed()
        assert p.cash.balanceOf(pool.address) >= (
            pool.idle_fen() + pool.escrow_fen() + pool.undisbursed_fen()
        )
        assert p.insurance.balance_fen() <= p.cash.balanceOf(p.insurance.address)

    @invariant()
    def senior_last(self) -> None:
        """§8.5: the senior tranche loses nothing while junior and insurance have value."""
        if self.p.pool.senior_loss_fen() > 0:
            assert self.p.pool.junior_claim_fen() == 0
            assert self.p.insurance.balance_fen() == 0

    @invariant()
    def certificates_match_custody(self) -> None:
        """§8.8: certificate supply per security = the positions held in custody."""
        for code in MAIN:
            held = sum(self.p.engine.positions(b, code) for b in self.borrowers)
            assert self.p.shares.total_supply(code) == held
            assert self.p.shares.balance_of(self.p.engine.address, code) == held
            # the platform's exposure the liquidity cap checks: held and being bought
            buying = sum(self.p.engine.buying(b, code) for b in self.borrowers)
            assert self.p.engine.platform_qty(code) == held + buying

    @invariant()
    def indices_never_decrease(self) -> None:
        """§8.9: interest indices only grow; debt never below principal."""
        for tier in (2, 3):
            value = self.p.engine.indices(tier)[0]
            assert value >= self.index_seen.get(tier, 0)
            self.index_seen[tier] = value
        for b in self.borrowers:
            assert self.p.engine.debt_of(b) >= self.p.engine.accounts(b)[4]

    @invariant()
    def free_accounts_can_leave(self) -> None:
        """§8.10: an account with no debt can always withdraw all its cash."""
        for who in self.borrowers:
            acct = self.p.engine.accounts(who)
            if self.p.engine.debt_of(who) == 0 and not acct[6] and acct[1] > 0:
                with boa.env.anchor():
                    self.p.engine.withdraw(acct[1], False, sender=who)


# A scripted run of the same machine (every kind of action once, invariants after each step)
# before the random examples: the run's coverage does not depend on the random draw.
SCRIPT: tuple[tuple[str, dict[str, object]], ...] = (
    ("publish_liquidity", {"c": 1, "yuan": 5_000_000}),
    ("buy", {"b": 2, "c": 0, "lots": 10, "then": "fill"}),
    ("buy", {"b": 2, "c": 1, "lots": 10, "then": "cancel"}),
    ("next_day", {"sealed": [False, False, False]}),
    ("sell", {"b": 2, "c": 0, "pct": 50, "then": "fill"}),
    ("withdraw", {"b": 2, "pct": 10, "reserve": False}),
    ("deposit", {"b": 2, "amount": 100, "reserve": False}),
    ("repay", {"b": 1, "amount": 100}),
    ("subscribe", {"i": 0, "senior": True, "amount": 1_000}),
    ("redeem", {"i": 0, "senior": True, "pct": 1}),
    ("close_epoch", {}),
    ("price_move", {"c": 0, "move_bps": 100}),
    ("time_passes", {"hours": 1}),
    ("crash_week", {}),  # the reserve tops the tier-3 account up
    ("crash_week", {}),  # then it is liquidated, filled and ended
)
INVARIANTS = (
    "cash_is_conserved", "pool_books_balance", "senior_last", "certificates_match_custody",
    "indices_never_decrease", "free_accounts_can_leave",
)  # fmt: skip


def scripted_run() -> None:
    m = FinancingMachine()
    try:
        m.setup()
        for name, kwargs in SCRIPT:
            getattr(m, name)(**kwargs)
            for inv in INVARIANTS:
                getattr(m, inv)()
    finally:
        m.teardown()


def test_financing_state_machine(platform: Platform) -> None:
    FinancingMachine.platform = platform
    EVENTS.clear()
    REFUSED.clear()
    scripted_run()
    print("succeeded in the scripted run:", dict(EVENTS))
    run_state_machine_as_test(FinancingMachine, settings=fin_profile())
    print("succeeded:", dict(EVENTS))
    print("refused (expected reasons):", dict(REFUSED))
    missing = [k for k in KINDS if EVENTS[k] == 0]
    assert not missing, f"never succeeded in this run: {missing}"
