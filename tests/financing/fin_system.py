"""The financing system under test, deployed the way an operator would: one object that
deploys every contract, wires the roles and offers the actions the actors take."""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boa
from hypothesis import settings

from crowdleverage.chain.deploy import create_address
from crowdleverage.chain.roles import Role
from crowdleverage.domain import params as P

CONTRACTS = Path(__file__).resolve().parents[2] / "src" / "crowdleverage" / "contracts"
YEAR_S = 365 * 86_400
DAY_S = 86_400
CN = b"CN"
BPS = 10_000
YUAN = 100  # fen per yuan

# Securities used in the tests (code -> board haircut bps).
PAB = 600000  # 浦发银行, main board
CMB = 600036  # 招商银行, main board
PINGAN = 601318  # 中国平安, main board
SMIC = 688981  # 中芯国际, STAR
ST_CODE = 600001  # an ST stock: not financeable
NEW_CODE = 601000  # listed today: not financeable for 5 days
MAIN = (PAB, CMB, PINGAN)


settings.register_profile("fin_ci", max_examples=20, stateful_step_count=30, deadline=None)
settings.register_profile("fin_long", max_examples=300, stateful_step_count=60, deadline=None)


def fin_profile() -> settings:
    """Bounded in CI; `CROWDLEV_LONG=1` for the long run."""
    return settings.get_profile("fin_long" if os.environ.get("CROWDLEV_LONG") == "1" else "fin_ci")


@functools.cache
def compiled(name: str) -> Any:
    """Compile each contract once per session."""
    return boa.load_partial(str(CONTRACTS / f"{name}.vy"))


def limit_down(prev_close_fen: int, limit_bps: int = 1_000) -> int:
    # exchange rule: round half up to the fen
    return (prev_close_fen * (BPS - limit_bps) + BPS // 2) // BPS


def limit_up(prev_close_fen: int, limit_bps: int = 1_000) -> int:
    return (prev_close_fen * (BPS + limit_bps) + BPS // 2) // BPS


@dataclass
class Platform:
    registry: Any
    oracle: Any
    cash: Any
    shares: Any
    pool: Any
    senior: Any
    junior: Any
    insurance: Any
    engine: Any
    liquidator: Any
    orderbook: Any
    admin: str
    compliance: str
    operator: str
    custodian: str
    broker: str
    keeper: str
    reporters: list[str]
    fee_recipient: str
    outsider: str
    day: int = 1
    prices: dict[int, int] = field(default_factory=dict)
    prev_close: dict[int, int] = field(default_factory=dict)
    limit_bps: dict[int, int] = field(default_factory=dict)
    params: Any = None  # RiskParams
    _refs: itertools.count = field(default_factory=lambda: itertools.count(1))

    # ------------------------------------------------------------ actors
    def register(self, who: str, roles: Role) -> None:
        self.registry.register(
            who, int(roles), 4, CN, boa.env.timestamp + 5 * YEAR_S, sender=self.compliance
        )

    def new_actor(self, name: str, roles: Role) -> str:
        who = boa.env.generate_address(name)
        self.register(who, roles)
        return who

    def ref(self) -> bytes:
        return next(self._refs).to_bytes(32, "big")

    def mint(self, to: str, amount_fen: int) -> None:
        self.cash.mint(to, amount_fen, self.ref(), sender=self.custodian)

    # ------------------------------------------------------------ market
    def _report(self, code: int, price_fen: int) -> None:
        for r in self.reporters[:2]:
            self.oracle.report(code, price_fen, sender=r)
        self.prices[code] = price_fen

    def set_price(self, code: int, price_fen: int) -> None:
        """Intraday price move (inside today's band)."""
        self._report(code, price_fen)

    def next_day(self, moves: dict[int, int] | None = None, halted: frozenset[int] = frozenset()):
        """Advance one trading day: yesterday's price becomes the previous close; `moves` gives
        today's price per code (default unchanged)."""
        boa.env.time_travel(seconds=DAY_S)
        self.day += 1
        self.oracle.open_day(self.day, sender=self.operator)
        for code, last in list(self.prices.items()):
            self.prev_close[code] = last
            lb = self.limit_bps[code]
            down, up = limit_down(last, lb), limit_up(last, lb)
            self.oracle.set_day_params(code, last, down, up, code in halted, sender=self.operator)
            if code not in halted:
                self._report(code, (moves or {}).get(code, last))

    def sealed_down(self, code: int) -> int:
        return limit_down(self.prev_close[code], self.limit_bps[code])

    # ------------------------------------------------------------ pool
    def invest(self, investor: str, senior: bool, amount_fen: int) -> None:
        self.mint(investor, amount_fen)
        self.cash.approve(self.pool.address, amount_fen, sender=investor)
        self.pool.subscribe(senior, amount_fen, sender=investor)

    def fund_pool(self, limits: tuple[int, ...], prefix: str = "") -> Platform:
        """A 10m-yuan pool (8m senior, 2m junior, one epoch closed) under `limits`
        (`RiskParams.set_limits`); the investors are `{prefix}senior_investor` / `…junior…`."""
        senior = self.new_actor(f"{prefix}senior_investor", Role.INVESTOR)
        junior = self.new_actor(f"{prefix}junior_investor", Role.INVESTOR)
        self.invest(senior, True, 8_000_000 * YUAN)
        self.invest(junior, False, 2_000_000 * YUAN)
        self.close_epoch()
        self.params.set_limits(limits, sender=self.operator)
        return self

    def close_epoch(self) -> None:
        started = self.pool.epoch_started_at()
        wait = started + self.pool.epoch_s() - boa.env.timestamp
        if wait > 0:
            boa.env.time_travel(seconds=wait)
        self.pool.close_epoch(sender=self.keeper)

    # ------------------------------------------------------------ borrowers
    def open_borrower(self, name: str, tier: int, margin_fen: int, reserve_fen: int = 0) -> str:
        who = self.new_actor(name, Role.BORROWER)
        self.engine.open_account(who, tier, sender=self.compliance)
        total = margin_fen + reserve_fen
        if total:
            self.mint(who, total)
            self.cash.approve(self.engine.address, total, sender=who)
        if margin_fen:
            self.engine.deposit(margin_fen, False, sender=who)
        if reserve_fen:
            self.engine.deposit(reserve_fen, True, sender=who)
        return who

    def buy(self, who: str, code: int, qty: int, price_fen: int | None = None, fill: bool = True):
        price = price_fen or self.prices[code]
        oid = self.orderbook.request_buy(code, qty, price, sender=who)
        if fill:
            self.orderbook.settle_fill(oid, 0, qty, price, 0, self.ref(), sender=self.broker)
        return oid

    def sell_fill(self, oid: int, qty: int, price_fen: int, fee_fen: int = 0) -> None:
        gross = qty * price_fen
        self.cash.approve(self.engine.address, gross - fee_fen, sender=self.broker)
        seq = self.orderbook.fill_count(oid)
        self.orderbook.settle_fill(
            oid, seq, qty, price_fen, fee_fen, self.ref(), sender=self.broker
        )

    def build_portfolio(self, who: str, codes: tuple[int, ...], step: int = 5_000) -> None:
        """Buy the codes round-robin, at most `step` shares each per round, in the largest
        whole-lot quantities the pre-trade checks allow (the 40% single-security limit forces
        a levered book to be built in steps)."""
        for _ in range(100):
            bought = False
            for code in codes:
                qty = min(step, self.max_buy(who, code))
                if qty:
                    self.buy(who, code, qty)
                    bought = True
            if not bought:
                return

    def max_buy(self, who: str, code: int) -> int:
        """Largest whole-lot quantity at today's price that passes the ratio and the 40%
        checks (the engine's own arithmetic, mirrored; verified by a dry run)."""
        price = self.prices[code]
        tier = self.engine.accounts(who)[0]
        initial_bps = self.params.tiers(tier)[1]
        lim = self.params.limits()
        assets, debt, _ = self.state(who)
        cash = self.engine.accounts(who)[1]
        held = self.engine.positions(who, code) + self.engine.buying(who, code)

        def ok(qty: int) -> bool:
            gross = qty * price
            cost = gross + (gross * lim[4] + BPS - 1) // BPS
            draw = max(0, cost - cash)
            after = assets + draw - cost + gross
            return (
                after * BPS >= initial_bps * (debt + draw)
                and (held + qty) * price * BPS <= lim[0] * after
            )

        lo, hi = 0, 100_000
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if ok(mid * 100):
                lo = mid
            else:
                hi = mid - 1
        while lo > 0:
            try:
                with boa.env.anchor():
                    self.orderbook.request_buy(code, lo * 100, price, sender=who)
                break
            except boa.BoaError:
                lo -= 1
        return lo * 100

    # ------------------------------------------------------------ views
    def state(self, who: str) -> tuple[int, int, int]:
        return self.engine.account_state(who)

    def ratio(self, who: str) -> int:
        return self.engine.account_state(who)[2]

    def principal_owed(self) -> int:
        """The principal of every margin account, summed (what the pool's principal out is)."""
        n = self.engine.account_count()
        return sum(self.engine.accounts(self.engine.account_of(i))[4] for i in range(1, n + 1))


@contextmanager
def rollback(platform: Platform) -> Iterator[None]:
    """Roll back the chain and the Python-side market clock together."""
    saved = (platform.day, dict(platform.prices), dict(platform.prev_close))
    with boa.env.anchor():
        try:
            yield
        finally:
            platform.day, platform.prices, platform.prev_close = saved


def next_nonce(who: Any) -> int:
    """The nonce of `who`'s next transaction on boa's chain (its next CREATE's address)."""
    from boa.util.abi import Address

    return int(boa.env.evm.vm.state.get_nonce(Address(who).canonical_address))


def deploy_platform() -> Platform:
    admin = boa.env.generate_address("admin")
    names = ["compliance", "operator", "custodian", "broker", "keeper", "fee", "outsider"]
    addr = {n: boa.env.generate_address(n) for n in names}
    reporters = [boa.env.generate_address(f"reporter{i}") for i in range(3)]
    with boa.env.prank(admin):
        registry = compiled("IdentityRegistry").deploy()
        oracle = compiled("PriceOracle").deploy(registry.address, 10 * DAY_S, 2)
        cash = compiled("CashToken").deploy(registry.address)
        shares = compiled("ShareCertificates").deploy(registry.address, oracle.address)
        blueprint = compiled("TrancheShare").deploy_as_blueprint()
        # the pool and the engine are given the engine's and the order book's addresses
        # (CREATE addresses of admin's next nonces: pool, insurance, params, engine,
        # liquidator, order book)
        will = [create_address(str(admin), next_nonce(admin) + i) for i in range(6)]
        pool = compiled("TranchePool").deploy(
            cash.address, registry.address, blueprint.address, addr["fee"], will[3]
        )
        insurance = compiled("InsuranceFund").deploy(cash.address, registry.address, pool.address)
        params = compiled("RiskParams").deploy(registry.address)
        engine = compiled("MarginEngine").deploy(
            cash.address, registry.address, oracle.address, pool.address, insurance.address,
            params.address, will[5],
        )  # fmt: skip
        liquidator = compiled("Liquidator").deploy(engine.address, registry.address, oracle.address)
        orderbook = compiled("OrderBook").deploy(
            engine.address, registry.address, oracle.address, shares.address
        )
        got = [pool, insurance, params, engine, liquidator, orderbook]
        assert [str(c.address) for c in got] == will
    expires = boa.env.timestamp + 5 * YEAR_S
    registry.register(addr["compliance"], int(Role.COMPLIANCE), 5, CN, expires, sender=admin)
    share = compiled("TrancheShare")
    p = Platform(
        registry, oracle, cash, shares, pool, share.at(pool.SENIOR()), share.at(pool.JUNIOR()),
        insurance, engine, liquidator, orderbook, admin, addr["compliance"], addr["operator"],
        addr["custodian"], addr["broker"], addr["keeper"], reporters, addr["fee"], addr["outsider"],
    )  # fmt: skip
    p.params = params
    p.register(p.operator, Role.OPERATOR)
    p.register(p.custodian, Role.CUSTODIAN)
    p.register(p.broker, Role.BROKER)
    p.register(p.keeper, Role.KEEPER)
    p.register(p.fee_recipient, Role.INVESTOR)
    for r in reporters:
        p.register(r, Role.REPORTER)
    for contract in (pool, insurance):
        p.register(contract.address, Role.PLATFORM)
    # the engine holds certificates in custody and mints/burns them on fills
    p.register(engine.address, Role.PLATFORM | Role.BROKER)
    p.register(orderbook.address, Role.BROKER)  # mints/burns them on fills
    # platform contracts: their side of a cash transfer skips the registry call
    for contract in (pool, insurance, engine):
        cash.set_platform(contract.address, True, sender=p.compliance)
    # the engine's certificates share each security's slot with the supply
    p.shares.set_custody(engine.address, sender=p.operator)
    # the certificates mirror the oracle's trading day (a buy fill reads no oracle slot)
    p.oracle.set_day_sink(p.shares.address, sender=p.operator)
    pool.connect(engine.address, insurance.address, sender=p.operator)
    insurance.set_engine(engine.address, sender=p.operator)
    engine.connect(liquidator.address, orderbook.address, sender=p.operator)
    # the risk parameters, from the one definition (domain/params)
    for t in P.TIERS.values():
        params.set_tier(t.tier, P.engine_tier(t), sender=p.operator)
    params.set_limits(P.engine_limits(), sender=p.operator)
    params.connect(engine.address, sender=p.operator)
    # securities: main board, STAR, an ST stock and a new listing
    for code in MAIN:
        params.set_security(code, 10_000, False, 0, sender=p.operator)
        p.limit_bps[code] = 1_000
    params.set_security(SMIC, 8_000, False, 0, sender=p.operator)
    p.limit_bps[SMIC] = 2_000
    params.set_security(ST_CODE, 10_000, True, 0, sender=p.operator)
    p.limit_bps[ST_CODE] = 500
    params.set_security(NEW_CODE, 10_000, False, 10, sender=p.operator)
    p.limit_bps[NEW_CODE] = 1_000
    # the main-board securities are listed for custody (their certificate slot exists before
    # the first buy); the others are not, and mint creating the slot
    shares.list_securities(list(MAIN), sender=p.operator)
    oracle.open_day(1, sender=p.operator)
    start = {PAB: 1_000, CMB: 1_000, PINGAN: 1_000, SMIC: 5_000, ST_CODE: 300, NEW_CODE: 2_000}
    for code, price in start.items():
        lb = p.limit_bps[code]
        oracle.set_day_params(
            code, price, limit_down(price, lb), limit_up(price, lb), False, sender=p.operator
        )
        p.prev_close[code] = price
        p._report(code, price)
    return p
