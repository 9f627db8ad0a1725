"""`Platform`: the use cases of DESIGN.md §5 over the real adapters chosen by the settings.

Wiring: the custody ledger (custody.Ledger on SQLite or PostgreSQL, from Settings), the
shipped market history replayed tick by tick (flows.market), and the platform's own book of
pools, tranches, margin accounts and positions (flows.model). Every use case runs under one
lock: it checks, writes cash to the custody ledger as one linked chain, then updates the book,
so a refusal leaves nothing half-written.

Not yet wired: the financing contracts, the simulated exchange, broker, oracle feeder and
keeper. They landed after this module was written; `flows.chain_financing.ChainFinancing` runs
the same use cases on them and flows/README.md lists the steps to delegate to it. Until then
the pre-trade and margin checks of DESIGN.md §5.3–5.4 run here, in Python, with the parameters
of domain.params, and fills happen at the replayed price.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from crowdleverage.audit.proofs import Liabilities
from crowdleverage.config import Settings
from crowdleverage.custody.db import engine_from_settings
from crowdleverage.custody.ledger import Ledger
from crowdleverage.domain import params as P
from crowdleverage.domain.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    PlatformPaused,
    RuleViolation,
    ServiceUnavailable,
)
from crowdleverage.domain.money import mul_div_down, mul_div_up
from crowdleverage.domain.security import Security
from crowdleverage.flows import snapshot
from crowdleverage.flows.book import CashBook, Kind, Leg, account_id, reference_id
from crowdleverage.flows.cash_twin import CashTokenTwin
from crowdleverage.flows.market import MarketFeed, Quote
from crowdleverage.flows.model import (
    AccountStatus,
    Event,
    Lot,
    MarginAccount,
    Order,
    OrderStatus,
    Position,
    Redemption,
    Subscription,
    Tranche,
    TrancheState,
)
from crowdleverage.market.rules import PriceBand, Side, check_order, trading_fees

BPS = P.BPS
DAYS_PER_YEAR = 365
POOL = (Kind.POOL, 0)
BROKER = (Kind.BROKER, 0)
BANK = (Kind.BANK, 0)


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Platform:
    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        market: MarketFeed | None = None,
        market_start: dt.date | None = dt.date(2015, 12, 1),
        twin: CashTokenTwin | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine if engine is not None else engine_from_settings(settings)
        self.ledger = Ledger(self.engine)
        self.ledger.create_schema()
        self.proofs = Liabilities(self.engine)  # proof-of-liabilities snapshots per epoch
        self.proofs.create_schema()
        self.cash = CashBook(self.ledger)
        self.cash.open(*BANK)
        self.cash.open(*POOL)
        self.cash.open(*BROKER)
        self.market = market or MarketFeed.from_file(settings.market_data, start=market_start)
        self.lock = threading.RLock()
        self.twin = twin  # CashToken on the chain: minted/burned with the ledger references
        self.tranches = {t: TrancheState() for t in Tranche}
        self.holdings: dict[tuple[int, Tranche], int] = {}  # (user, tranche) → units
        self.insurance_fen = 0  # insurance pool's claim on the pool
        self.fees_fen = 0  # platform fees earned, a claim on the pool
        self.senior_deficit_fen = 0  # loss that reached the senior tranche (never hidden)
        self.accounts: dict[int, MarginAccount] = {}
        self.orders: list[Order] = []
        self.subscriptions: list[Subscription] = []
        self.redemptions: list[Redemption] = []
        self.history: dict[int, list[dict[str, Any]]] = {}  # user → statement lines
        self.events: deque[Event] = deque(maxlen=500)
        self.paused_reason: str | None = None
        self.last_reconciliation: dict[str, Any] | None = None
        self._ids = itertools.count(1)
        self._event_seq = itertools.count(1)
        self.listeners: list[Callable[[Event], None]] = []
        self._restore()

    def _restore(self) -> None:
        """Resume from the last saved book, checked against the custody ledger. Without a
        snapshot, a ledger that already holds money cannot be matched: fail closed."""
        body = snapshot.read(self.engine)
        if body is not None:
            snapshot.load(self, body)
            self._event("restored", f"book restored at {self.market.today} #{self.market.step}")
            self.reconcile()  # a break (ledger moved after the snapshot) pauses the platform
            return
        bank = self.ledger.lookup_accounts([account_id(*BANK)])
        if bank and (bank[0].debits_posted or bank[0].credits_posted or bank[0].debits_pending):
            self.pause("custody ledger holds money the platform book does not know (restart)")

    def save(self) -> None:
        """Persist the book (end of day, clean shutdown)."""
        with self.lock:
            snapshot.save(self, self.engine)

    def peek_next_id(self) -> int:
        nxt = next(self._ids)
        self._ids = itertools.count(nxt)
        return nxt

    def reset_ids(self, next_id: int) -> None:
        self._ids = itertools.count(next_id)

    # ------------------------------------------------------------------------- helpers

    def _event(self, kind: str, message: str, account_id: int | None = None) -> None:
        ev = Event(next(self._event_seq), _now_iso(), kind, account_id, message)
        self.events.append(ev)
        for fn in list(self.listeners):
            fn(ev)

    def _line(self, user_id: int, kind: str, amount_fen: int, **extra: Any) -> None:
        self.history.setdefault(user_id, []).append(
            {
                "at": _now_iso(),
                "trade_date": self.market.today.isoformat(),
                "kind": kind,
                "amount_fen": amount_fen,
                **extra,
            }
        )

    def _require_open(self) -> None:
        if self.paused_reason is not None:
            raise PlatformPaused(f"platform paused: {self.paused_reason}")

    @staticmethod
    def _positive(amount_fen: int, what: str = "amount_fen") -> None:
        if amount_fen <= 0:
            raise InvalidInput(f"{what} must be a positive number of fen, got {amount_fen}")

    def account(self, account_id: int) -> MarginAccount:
        acc = self.accounts.get(account_id)
        if acc is None:
            raise NotFound(f"margin account {account_id} not found")
        return acc

    # ------------------------------------------------------------------- pool figures

    def total_debt_fen(self) -> int:
        return sum(a.debt_fen for a in self.accounts.values())

    def pool_assets_fen(self) -> int:
        """Invariant 4: cash + Σ debt (marked) − deficit."""
        return self.cash.balance(*POOL) + self.total_debt_fen()

    def claims_fen(self) -> int:
        t = self.tranches
        return (
            t[Tranche.SENIOR].claim_fen
            + t[Tranche.JUNIOR].claim_fen
            + self.insurance_fen
            + (self.fees_fen)
        )

    def utilisation_bps(self) -> int:
        assets = self.pool_assets_fen()
        return 0 if assets == 0 else self.total_debt_fen() * BPS // assets

    def marked_loss_fen(self) -> int:
        """Σ shortfall of accounts whose assets no longer cover their debt (unrealised)."""
        return sum(max(0, a.debt_fen - self.gross_assets_fen(a)) for a in self.accounts.values())

    # -------------------------------------------------------------- margin arithmetic

    def haircut_bps(self, q: Quote) -> int:
        if q.st:
            return P.ST_HAIRCUT_BPS
        if q.halted:
            return P.HALTED_HAIRCUT_BPS
        return P.HAIRCUT_BPS[Security.parse(q.code).board]

    def market_value_fen(self, acc: MarginAccount, *, haircut: bool) -> int:
        total = 0
        for pos in acc.positions.values():
            q = self.market.quote(pos.code)
            mv = pos.quantity * q.price_fen
            total += mul_div_down(mv, self.haircut_bps(q), BPS) if haircut else mv
        return total

    def gross_assets_fen(self, acc: MarginAccount) -> int:
        return self.cash.balance(Kind.MARGIN, acc.id) + self.market_value_fen(acc, haircut=False)

    def ratio_bps(self, acc: MarginAccount) -> int | None:
        """(cash + Σ haircut × value) / debt in bps, rounded down; None without debt."""
        if acc.debt_fen == 0:
            return None
        assets = self.cash.balance(Kind.MARGIN, acc.id) + self.market_value_fen(acc, haircut=True)
        return assets * BPS // acc.debt_fen

    # ---------------------------------------------------------------- 1. deposit, wallet

    def open_wallet(self, user_id: int) -> None:
        with self.lock:
            self.cash.open(Kind.WALLET, user_id)

    def deposit(self, user_id: int, amount_fen: int, bank_reference: str) -> dict[str, Any]:
        """The custodian reports an incoming bank transfer: custody posts it to the wallet.
        A bank reference posts at most once."""
        self._positive(amount_fen)
        if not 4 <= len(bank_reference) <= 64:
            raise InvalidInput("bank_reference must have 4–64 characters")
        with self.lock:
            self._require_open()
            self.open_wallet(user_id)
            leg = Leg(BANK, (Kind.WALLET, user_id), amount_fen, reference_id(bank_reference))
            [tid] = self.cash.move([leg], what="deposit")
            self._chain("mint", tid, amount_fen)
            self._line(user_id, "deposit", amount_fen, reference=bank_reference)
            return {"user_id": user_id, "wallet_fen": self.cash.balance(Kind.WALLET, user_id)}

    def withdraw(self, user_id: int, amount_fen: int) -> dict[str, Any]:
        """Pay a wallet balance out to the user's bank account."""
        self._positive(amount_fen)
        with self.lock:
            self._require_open()
            self.open_wallet(user_id)
            [tid] = self.cash.move(
                [Leg((Kind.WALLET, user_id), BANK, amount_fen)], what="withdrawal"
            )
            self._chain("burn", tid, amount_fen)
            self._line(user_id, "withdrawal", -amount_fen)
            return {"user_id": user_id, "wallet_fen": self.cash.balance(Kind.WALLET, user_id)}

    def _chain(self, op: str, ledger_transfer_id: int, amount_fen: int) -> None:
        """The chain twin of a custody posting. If the chain refuses or is unreachable the two
        records now differ: fail closed at once (reconciliation will show the break)."""
        if self.twin is None:
            return
        try:
            getattr(self.twin, op)(ledger_transfer_id, amount_fen)
        except Exception as exc:
            self.pause(f"CashToken {op} failed after the custody posting: {exc}")
            raise ServiceUnavailable(f"chain {op} failed; platform paused: {exc}") from exc

    def wallet_fen(self, user_id: int) -> int:
        with self.lock:
            return self.cash.balance(Kind.WALLET, user_id)

    # ------------------------------------------------------------- subscribe / redeem

    def subscribe(self, user_id: int, tranche: Tranche, amount_fen: int) -> Subscription:
        """Reserve the cash now (a pending custody transfer); units are issued at the epoch
        close at the marked NAV."""
        self._positive(amount_fen)
        with self.lock:
            self._require_open()
            self.open_wallet(user_id)
            leg = Leg((Kind.WALLET, user_id), POOL, amount_fen, pending=True)
            [pid] = self.cash.move([leg], what="subscription")
            sub = Subscription(
                next(self._ids), user_id, tranche, amount_fen, pid, self.market.today
            )
            self.subscriptions.append(sub)
            self._line(user_id, "subscription_requested", -amount_fen, tranche=tranche.value)
            return sub

    def redeem(self, user_id: int, tranche: Tranche, units: int) -> Redemption:
        if units <= 0:
            raise InvalidInput(f"units must be positive, got {units}")
        with self.lock:
            self._require_open()
            held = self.holdings.get((user_id, tranche), 0)
            queued = sum(
                r.units for r in self.redemptions if r.user_id == user_id and r.tranche is tranche
            )
            if units > held - queued:
                raise RuleViolation(
                    f"redeem {units} units exceeds the {held - queued} free units held"
                )
            red = Redemption(next(self._ids), user_id, tranche, units, self.market.today)
            self.redemptions.append(red)
            self._line(user_id, "redemption_requested", 0, tranche=tranche.value, units=units)
            return red

    def holding_value_fen(self, user_id: int, tranche: Tranche) -> int:
        t = self.tranches[tranche]
        units = self.holdings.get((user_id, tranche), 0)
        return 0 if t.units == 0 else mul_div_down(units, t.claim_fen, t.units)

    # ------------------------------------------------------------- 2. margin account

    def open_margin_account(
        self, owner_id: int, tier: int, granted_tier: int | None
    ) -> MarginAccount:
        if tier not in P.TIERS:
            raise InvalidInput(f"tier must be one of {sorted(P.TIERS)}, got {tier}")
        if granted_tier is None:
            raise Forbidden("borrower has no approved KYC and credit tier yet")
        if tier > granted_tier:
            raise Forbidden(f"tier {tier} exceeds the granted credit tier {granted_tier}")
        with self.lock:
            self._require_open()
            acc = MarginAccount(next(self._ids), owner_id, tier)
            self.cash.open(Kind.MARGIN, acc.id)
            self.cash.open(Kind.RESERVE, acc.id)
            self.open_wallet(owner_id)
            self.accounts[acc.id] = acc
            self._event("account_opened", f"margin account {acc.id} tier {tier}", acc.id)
            return acc

    def fund_account(self, account_id: int, amount_fen: int, *, reserve: bool) -> MarginAccount:
        """Move wallet cash into the account's margin (保证金) or its top-up reserve."""
        self._positive(amount_fen)
        with self.lock:
            self._require_open()
            acc = self.account(account_id)
            if acc.status is AccountStatus.LIQUIDATING:
                raise RuleViolation("account is being liquidated")
            to = (Kind.RESERVE if reserve else Kind.MARGIN, acc.id)
            self.cash.move([Leg((Kind.WALLET, acc.owner_id), to, amount_fen)], what="funding")
            self._line(
                acc.owner_id,
                "reserve_deposit" if reserve else "margin_deposit",
                -amount_fen,
                account_id=acc.id,
            )
            self._refresh(acc)
            return acc

    # ----------------------------------------------------------------- 3. trade

    def _fees(self, code: str, side: Side, qty: int, price_fen: int) -> int:
        sec = Security.parse(code)
        return trading_fees(sec, side, self.market.today, qty, price_fen).total_fen

    def buy(self, account_id: int, code: str, quantity: int, limit_price_fen: int) -> Order:
        with self.lock:
            self._require_open()
            acc = self.account(account_id)
            if acc.status in (AccountStatus.LIQUIDATING, AccountStatus.LIQUIDATED):
                raise RuleViolation(f"account is {acc.status.value}; no new buys")
            q = self.market.tradable(code)
            self._band_check(Side.BUY, quantity, limit_price_fen, q)
            if limit_price_fen < q.price_fen:
                raise RuleViolation(
                    f"limit {limit_price_fen} fen is below the market {q.price_fen} fen; "
                    "only marketable orders are accepted"
                )
            if self.haircut_bps(q) == 0:
                raise RuleViolation(f"{code} is not financeable (haircut 0)")
            price = q.price_fen
            cost = quantity * price
            need = cost + self._fees(code, Side.BUY, quantity, price)
            cash = self.cash.balance(Kind.MARGIN, acc.id)
            financing = max(0, need - cash)
            self._pre_trade(acc, code, q, cost, need, financing)
            legs = [
                Leg(POOL, (Kind.MARGIN, acc.id), financing),
                Leg((Kind.MARGIN, acc.id), BROKER, need),
            ]
            self.cash.move(legs, what="buy")
            acc.debt_fen += financing
            pos = acc.positions.setdefault(code, Position(code))
            pos.lots.append(Lot(self.market.today, quantity))
            pos.cost_fen += need
            order = self._order(
                acc,
                Side.BUY,
                code,
                quantity,
                limit_price_fen,
                OrderStatus.FILLED,
                price,
                need - cost,
                financing,
            )
            self._line(
                acc.owner_id,
                "buy",
                -need,
                account_id=acc.id,
                code=code,
                quantity=quantity,
                price_fen=price,
                financing_fen=financing,
            )
            self._refresh(acc)
            return order

    def _band_check(self, side: Side, qty: int, price_fen: int, q: Quote, holding: int = 0) -> None:
        band = PriceBand(q.limit_down_fen, q.limit_up_fen, None)
        check_order(side, qty, price_fen, band, holding=holding)

    def _pre_trade(
        self, acc: MarginAccount, code: str, q: Quote, cost: int, need: int, financing: int
    ) -> None:
        tier = P.TIERS[acc.tier]
        cash_after = self.cash.balance(Kind.MARGIN, acc.id) + financing - need
        debt_after = acc.debt_fen + financing
        hc_after = self.market_value_fen(acc, haircut=True) + mul_div_down(
            cost, self.haircut_bps(q), BPS
        )
        if debt_after > 0 and (cash_after + hc_after) * BPS < tier.initial_ratio_bps * debt_after:
            raise RuleViolation(
                f"post-trade margin ratio would fall below the initial "
                f"{tier.initial_ratio_bps / 100:.0f}% of tier {acc.tier}"
            )
        equity = self.gross_assets_fen(acc) - acc.debt_fen
        if debt_after > tier.max_leverage * max(equity, 0):
            raise RuleViolation(f"financing would exceed 1:{tier.max_leverage} of the equity")
        gross_after = cash_after + self.market_value_fen(acc, haircut=False) + cost
        pos = acc.positions.get(code)
        pos_after = (pos.quantity * q.price_fen if pos else 0) + cost
        if pos_after * BPS > P.MAX_SINGLE_SECURITY_BPS * gross_after:
            raise RuleViolation(
                f"{code} would be more than {P.MAX_SINGLE_SECURITY_BPS // 100}% of the account"
            )
        if pos is None and len(acc.positions) >= P.MAX_SECURITIES_PER_ACCOUNT:
            raise RuleViolation(f"at most {P.MAX_SECURITIES_PER_ACCOUNT} securities per account")
        if financing:
            if financing > self.cash.balance(*POOL):
                raise RuleViolation("the pool has not enough idle cash for this financing")
            assets = self.pool_assets_fen()
            if (self.total_debt_fen() + financing) * BPS > P.MAX_UTILISATION_BPS * assets:
                raise RuleViolation(
                    f"pool utilisation would exceed {P.MAX_UTILISATION_BPS // 100}%; "
                    "new borrowing is stopped"
                )
            exposure = cost + sum(
                a.positions[code].quantity * q.price_fen
                for a in self.accounts.values()
                if code in a.positions
            )
            if exposure * BPS > P.MAX_PLATFORM_EXPOSURE_BPS * assets:
                raise RuleViolation(
                    f"platform exposure to {code} would exceed "
                    f"{P.MAX_PLATFORM_EXPOSURE_BPS // 100}% of pool assets"
                )

    def sell(self, account_id: int, code: str, quantity: int, limit_price_fen: int) -> Order:
        with self.lock:
            acc = self.account(account_id)
            if acc.status is AccountStatus.LIQUIDATING:
                raise RuleViolation("account is being liquidated; the keeper sells")
            pos = acc.positions.get(code)
            if pos is None:
                raise RuleViolation(f"no position in {code}")
            q = self.market.tradable(code)
            sellable = pos.sellable(self.market.today)
            if quantity > sellable:
                raise RuleViolation(f"sell {quantity} exceeds the {sellable} sellable shares (T+1)")
            self._band_check(Side.SELL, quantity, limit_price_fen, q, holding=sellable)
            if limit_price_fen > q.price_fen:
                raise RuleViolation(
                    f"limit {limit_price_fen} fen is above the market {q.price_fen} fen; "
                    "only marketable orders are accepted"
                )
            if q.at_limit_down:
                raise RuleViolation(f"{code} is sealed at limit-down; no buyers")
            return self._fill_sell(acc, pos, q, quantity, limit_price_fen, liquidation=False)

    def _fill_sell(
        self,
        acc: MarginAccount,
        pos: Position,
        q: Quote,
        qty: int,
        limit: int,
        *,
        liquidation: bool,
    ) -> Order:
        gross = qty * q.price_fen
        fees = self._fees(pos.code, Side.SELL, qty, q.price_fen)
        penalty = mul_div_up(gross, P.LIQUIDATION_PENALTY_BPS, BPS) if liquidation else 0
        legs = [Leg(BROKER, (Kind.MARGIN, acc.id), gross - fees)]
        if penalty:
            legs.append(Leg((Kind.MARGIN, acc.id), POOL, penalty))
        self.cash.move(legs, what="sell")
        self.insurance_fen += penalty
        pos.remove(qty)
        if pos.quantity == 0:
            del acc.positions[pos.code]
        order = self._order(
            acc,
            Side.SELL,
            pos.code,
            qty,
            limit,
            OrderStatus.FILLED,
            q.price_fen,
            fees,
            0,
            liquidation=liquidation,
        )
        self._line(
            acc.owner_id,
            "liquidation_sell" if liquidation else "sell",
            gross - fees,
            account_id=acc.id,
            code=pos.code,
            quantity=qty,
            price_fen=q.price_fen,
        )
        return order

    def _order(
        self,
        acc: MarginAccount,
        side: Side,
        code: str,
        qty: int,
        limit: int,
        status: OrderStatus,
        price: int | None,
        fees: int,
        financing: int,
        *,
        liquidation: bool = False,
        reason: str = "",
    ) -> Order:
        o = Order(
            next(self._ids),
            acc.id,
            side.value,
            code,
            qty,
            limit,
            status,
            price,
            fees,
            financing,
            liquidation,
            self.market.today,
            reason,
        )
        self.orders.append(o)
        return o

    def repay(self, account_id: int, amount_fen: int) -> MarginAccount:
        """Any account can always repay (invariant 10), even while the platform is paused."""
        self._positive(amount_fen)
        with self.lock:
            acc = self.account(account_id)
            if amount_fen > acc.debt_fen:
                raise RuleViolation(f"repay {amount_fen} fen exceeds the debt {acc.debt_fen} fen")
            self.cash.move([Leg((Kind.MARGIN, acc.id), POOL, amount_fen)], what="repayment")
            acc.debt_fen -= amount_fen
            self._line(acc.owner_id, "repayment", -amount_fen, account_id=acc.id)
            self._refresh(acc)
            return acc

    def withdraw_from_account(
        self, account_id: int, amount_fen: int, *, reserve: bool
    ) -> MarginAccount:
        """Back to the wallet: only while the ratio stays above max(initial, 300%) with debt."""
        self._positive(amount_fen)
        with self.lock:
            self._require_open()
            acc = self.account(account_id)
            if acc.status is AccountStatus.LIQUIDATING:
                raise RuleViolation("account is being liquidated")
            src = (Kind.RESERVE if reserve else Kind.MARGIN, acc.id)
            if not reserve and acc.debt_fen > 0:
                floor = max(P.TIERS[acc.tier].initial_ratio_bps, P.WITHDRAWAL_FLOOR_WITH_DEBT_BPS)
                assets = (
                    self.cash.balance(*src) - amount_fen + self.market_value_fen(acc, haircut=True)
                )
                if assets * BPS < floor * acc.debt_fen:
                    raise RuleViolation(
                        f"withdrawal would take the margin ratio below {floor // 100}%"
                    )
            self.cash.move(
                [Leg(src, (Kind.WALLET, acc.owner_id), amount_fen)], what="account withdrawal"
            )
            self._line(acc.owner_id, "account_withdrawal", amount_fen, account_id=acc.id)
            self._refresh(acc)
            return acc

    # ----------------------------------------------------------- 4. monitoring, keeper

    def _refresh(self, acc: MarginAccount) -> None:
        acc.last_ratio_bps = self.ratio_bps(acc)

    def tick(self) -> dict[str, Any]:
        """Advance the replay one step, run end of day when a day closes, then the monitor."""
        with self.lock:
            if self.market.at_close() and not self.market.finished:
                self.end_of_day()
            self.market.advance()
            self.monitor()
            return {"date": self.market.today.isoformat(), "step": self.market.step}

    def monitor(self) -> None:
        """Recompute every account's ratio; warn, top up from the reserve, liquidate."""
        with self.lock:
            for acc in list(self.accounts.values()):
                if acc.status is AccountStatus.LIQUIDATED:
                    continue
                if acc.status is AccountStatus.LIQUIDATING:
                    self._continue_liquidation(acc)
                    continue
                ratio = self.ratio_bps(acc)
                acc.last_ratio_bps = ratio
                tier = P.TIERS[acc.tier]
                if ratio is None or ratio >= tier.warning_ratio_bps:
                    acc.status = AccountStatus.HEALTHY
                    continue
                if acc.status is not AccountStatus.WARNING:
                    self._event("margin_warning", f"ratio {ratio / 100:.1f}%", acc.id)
                acc.status = AccountStatus.WARNING
                self._top_up(acc, tier.initial_ratio_bps)
                ratio = self.ratio_bps(acc)
                acc.last_ratio_bps = ratio
                if ratio is not None and ratio < tier.liquidation_ratio_bps:
                    acc.status = AccountStatus.LIQUIDATING
                    self._event("liquidation_started", f"ratio {ratio / 100:.1f}%", acc.id)
                    self._continue_liquidation(acc)

    def _top_up(self, acc: MarginAccount, target_bps: int) -> None:
        reserve = self.cash.balance(Kind.RESERVE, acc.id)
        if reserve == 0:
            return
        assets = self.cash.balance(Kind.MARGIN, acc.id) + self.market_value_fen(acc, haircut=True)
        need = mul_div_up(acc.debt_fen, target_bps, BPS) - assets
        amount = min(reserve, max(need, 0))
        if amount:
            self.cash.move(
                [Leg((Kind.RESERVE, acc.id), (Kind.MARGIN, acc.id), amount)], what="top-up"
            )
            self._event("auto_top_up", f"{amount} fen from reserve", acc.id)
            self._line(acc.owner_id, "auto_top_up", 0, account_id=acc.id, moved_fen=amount)

    def waiting_liquidations(self) -> list[dict[str, Any]]:
        """Liquidation sells that cannot fill now: sealed limit-down, halted, or T+1."""
        out = []
        for acc in self.accounts.values():
            if acc.status is not AccountStatus.LIQUIDATING:
                continue
            for pos in acc.positions.values():
                q = self.market.quote(pos.code)
                reason = (
                    "halted"
                    if q.halted
                    else "sealed limit-down"
                    if q.at_limit_down
                    else "T+1 locked"
                    if pos.sellable(self.market.today) == 0
                    else ""
                )
                if reason:
                    out.append(
                        {
                            "account_id": acc.id,
                            "code": pos.code,
                            "quantity": pos.quantity,
                            "reason": reason,
                            "price_fen": q.price_fen,
                        }
                    )
        return out

    def _continue_liquidation(self, acc: MarginAccount) -> None:
        for pos in list(acc.positions.values()):
            q = self.market.quote(pos.code)
            qty = pos.sellable(self.market.today)
            if q.halted or q.at_limit_down or qty == 0:
                continue  # waits behind the seal / halt / T+1
            self._fill_sell(acc, pos, q, qty, q.price_fen, liquidation=True)
        cash = self.cash.balance(Kind.MARGIN, acc.id)
        pay = min(cash, acc.debt_fen)
        if pay:
            self.cash.move([Leg((Kind.MARGIN, acc.id), POOL, pay)], what="liquidation repay")
            acc.debt_fen -= pay
        if acc.positions:
            return
        if acc.debt_fen:
            self._waterfall(acc)
        acc.status = AccountStatus.LIQUIDATED
        acc.last_ratio_bps = None
        self._event("liquidation_done", "positions sold, debt settled", acc.id)

    def _waterfall(self, acc: MarginAccount) -> None:
        """Shortfall: reserve → insurance → junior → senior (DESIGN.md §6)."""
        reserve = min(self.cash.balance(Kind.RESERVE, acc.id), acc.debt_fen)
        if reserve:
            self.cash.move([Leg((Kind.RESERVE, acc.id), POOL, reserve)], what="reserve cover")
            acc.debt_fen -= reserve
        loss = acc.debt_fen
        acc.debt_fen = 0
        take = min(loss, self.insurance_fen)
        self.insurance_fen -= take
        loss -= take
        for t in (Tranche.JUNIOR, Tranche.SENIOR):
            take = min(loss, self.tranches[t].claim_fen)
            self.tranches[t].claim_fen -= take
            loss -= take
            if t is Tranche.SENIOR and take:
                self.senior_deficit_fen += take
        if loss:
            self.senior_deficit_fen += loss
        self._event(
            "loss_waterfall",
            f"shortfall written off, senior deficit {self.senior_deficit_fen} fen",
            acc.id,
        )

    # ----------------------------------------------------------- 5. end of day / epoch

    def end_of_day(self) -> dict[str, Any]:
        with self.lock:
            interest = 0
            for acc in self.accounts.values():
                if acc.debt_fen:
                    i = mul_div_up(
                        acc.debt_fen, P.TIERS[acc.tier].rate_apr_bps, BPS * DAYS_PER_YEAR
                    )
                    acc.debt_fen += i
                    interest += i
            dist = self._distribute(interest)
            executed = self._execute_epoch_orders()
            for t in Tranche:
                self.tranches[t].nav_history.append((self.market.today, self.tranches[t].nav_e4()))
            self.snapshot_liabilities()
            self.monitor()
            self.reconcile()
            self.save()
            return {
                "date": self.market.today.isoformat(),
                "interest_fen": interest,
                **dist,
                "executed": executed,
            }

    def _distribute(self, interest: int) -> dict[str, int]:
        premium = mul_div_up(interest, P.INSURANCE_PREMIUM_BPS, BPS)
        fee = min(interest - premium, mul_div_up(interest, P.PLATFORM_FEE_BPS, BPS))
        rest = interest - premium - fee
        senior = self.tranches[Tranche.SENIOR]
        target = mul_div_down(senior.claim_fen, P.SENIOR_TARGET_APR_BPS, BPS * DAYS_PER_YEAR)
        to_senior = min(rest, target)
        senior.claim_fen += to_senior
        self.tranches[Tranche.JUNIOR].claim_fen += rest - to_senior
        self.insurance_fen += premium
        self.fees_fen += fee
        return {
            "senior_fen": to_senior,
            "junior_fen": rest - to_senior,
            "insurance_fen": premium,
            "platform_fee_fen": fee,
        }

    def _marked_claim(self, t: Tranche) -> int:
        """The tranche's claim after marking unrealised losses down the waterfall."""
        loss = max(0, self.marked_loss_fen() - self.insurance_fen)
        junior = self.tranches[Tranche.JUNIOR].claim_fen
        if t is Tranche.JUNIOR:
            return max(0, junior - loss)
        return max(0, self.tranches[Tranche.SENIOR].claim_fen - max(0, loss - junior))

    def _execute_epoch_orders(self) -> int:
        done = 0
        for t in (Tranche.SENIOR, Tranche.JUNIOR):
            for red in [r for r in self.redemptions if r.tranche is t]:
                done += self._try_redeem(red)
        for t in (Tranche.JUNIOR, Tranche.SENIOR):
            for sub in [s for s in self.subscriptions if s.tranche is t]:
                done += self._try_subscribe(sub)
        return done

    def _junior_ok(self, senior: int, junior: int) -> bool:
        total = senior + junior
        return total == 0 or junior * BPS >= P.MIN_JUNIOR_RATIO_BPS * total

    def _try_subscribe(self, sub: Subscription) -> int:
        ts = self.tranches[sub.tranche]
        s, j = self.tranches[Tranche.SENIOR].claim_fen, self.tranches[Tranche.JUNIOR].claim_fen
        if sub.tranche is Tranche.SENIOR and not self._junior_ok(s + sub.amount_fen, j):
            return 0  # waits for more junior capital
        marked = self._marked_claim(sub.tranche)
        units = (
            sub.amount_fen
            if ts.units == 0 or marked == 0
            else mul_div_down(sub.amount_fen, ts.units, marked)
        )
        leg = Leg((Kind.WALLET, sub.user_id), POOL, sub.amount_fen, pending=True)
        self.cash.resolve(sub.pending_transfer_id, leg, post=True)
        ts.claim_fen += sub.amount_fen
        ts.units += units
        key = (sub.user_id, sub.tranche)
        self.holdings[key] = self.holdings.get(key, 0) + units
        self.subscriptions.remove(sub)
        self._line(sub.user_id, "subscribed", 0, tranche=sub.tranche.value, units=units)
        return 1

    def _try_redeem(self, red: Redemption) -> int:
        ts = self.tranches[red.tranche]
        payout = mul_div_down(red.units, self._marked_claim(red.tranche), ts.units)
        s, j = self.tranches[Tranche.SENIOR].claim_fen, self.tranches[Tranche.JUNIOR].claim_fen
        if red.tranche is Tranche.JUNIOR and not self._junior_ok(s, j - payout):
            return 0
        pool_cash = self.cash.balance(*POOL)
        assets_after = self.pool_assets_fen() - payout
        if payout > pool_cash or (
            self.total_debt_fen() * BPS > P.MAX_UTILISATION_BPS * max(assets_after, 1)
        ):
            return 0  # liquidity buffer: waits for repayments
        self.cash.move([Leg(POOL, (Kind.WALLET, red.user_id), payout)], what="redemption")
        ts.claim_fen -= payout
        ts.units -= red.units
        self.holdings[(red.user_id, red.tranche)] -= red.units
        self.redemptions.remove(red)
        self._line(red.user_id, "redeemed", payout, tranche=red.tranche.value, units=red.units)
        return 1

    # ------------------------------------------------------ 7. reconciliation, pause

    def reconcile(self) -> dict[str, Any]:
        with self.lock:
            breaks = self.cash.reconcile()
            claims, assets = self.claims_fen(), self.pool_assets_fen()
            if claims != assets:  # invariant 4: tranche claims sum to pool assets
                breaks.append(f"claims {claims} fen ≠ pool assets {assets} fen")
            chain: dict[str, Any] | None = None
            if self.twin is not None:
                chain_breaks, chain = self.twin.reconcile(self.ledger, account_id(*BANK))
                breaks.extend(chain_breaks)
            report = {
                "chain": chain,
                "at": _now_iso(),
                "trade_date": self.market.today.isoformat(),
                "status": "ok" if not breaks else "break",
                "breaks": breaks,
                "accounts_checked": len(self.cash.opened()),
                "pool_assets_fen": assets,
                "claims_fen": claims,
            }
            self.last_reconciliation = report
            if breaks and self.paused_reason is None:
                self.pause(f"reconciliation break ({len(breaks)})")
            return report

    def pause(self, reason: str) -> None:
        with self.lock:
            self.paused_reason = reason
            self._event("paused", reason)

    def resume(self) -> None:
        with self.lock:
            self.paused_reason = None
            self._event("resumed", "platform resumed")

    # ------------------------------------------------------------- proofs, figures

    def liabilities(self) -> dict[int, int]:
        """What the platform owes each user: wallet + tranche holdings + margin equity cash."""
        out: dict[int, int] = {}
        for kind, n in self.cash.opened():
            if kind is Kind.WALLET:
                out[n] = out.get(n, 0) + max(self.cash.balance(kind, n), 0)
        for (uid, t), _units in self.holdings.items():
            out[uid] = out.get(uid, 0) + self.holding_value_fen(uid, t)
        for sub in self.subscriptions:
            out[sub.user_id] = out.get(sub.user_id, 0) + sub.amount_fen
        return out

    def latest_epoch(self) -> int | None:
        try:
            return self.proofs.latest_epoch()
        except NotFound:
            return None

    def snapshot_liabilities(self) -> None:
        """Freeze this epoch's liabilities into a Merkle-sum tree (audit.proofs)."""
        epoch = (self.latest_epoch() or 0) + 1
        self.proofs.snapshot(epoch, {str(u): b for u, b in self.liabilities().items()})

    def risk_snapshot(self) -> dict[str, Any]:
        with self.lock:
            accounts = []
            exposure: dict[str, int] = {}
            board_exposure: dict[str, int] = {}
            for acc in self.accounts.values():
                tier = P.TIERS[acc.tier]
                accounts.append(
                    {
                        "account_id": acc.id,
                        "owner_id": acc.owner_id,
                        "tier": acc.tier,
                        "status": acc.status.value,
                        "ratio_bps": self.ratio_bps(acc),
                        "debt_fen": acc.debt_fen,
                        "warning_bps": tier.warning_ratio_bps,
                        "liquidation_bps": tier.liquidation_ratio_bps,
                    }
                )
                for pos in acc.positions.values():
                    mv = pos.quantity * self.market.quote(pos.code).price_fen
                    exposure[pos.code] = exposure.get(pos.code, 0) + mv
                    board = Security.parse(pos.code).board.value
                    board_exposure[board] = board_exposure.get(board, 0) + mv
            debt = self.total_debt_fen()
            return {
                "trade_date": self.market.today.isoformat(),
                "step": self.market.step,
                "paused": self.paused_reason is not None,
                "paused_reason": self.paused_reason,
                "accounts": accounts,
                "waiting_liquidations": self.waiting_liquidations(),
                "pool_cash_fen": self.cash.balance(*POOL),
                "total_debt_fen": debt,
                "pool_assets_fen": self.pool_assets_fen(),
                "utilisation_bps": self.utilisation_bps(),
                "insurance_fen": self.insurance_fen,
                "insurance_coverage_bps": 0 if debt == 0 else self.insurance_fen * BPS // debt,
                "senior_nav_e4": self.tranches[Tranche.SENIOR].nav_e4(),
                "junior_nav_e4": self.tranches[Tranche.JUNIOR].nav_e4(),
                "senior_deficit_fen": self.senior_deficit_fen,
                "exposure_by_security_fen": dict(
                    sorted(exposure.items(), key=lambda kv: -kv[1])[:20]
                ),
                "exposure_by_board_fen": board_exposure,
                "events": [
                    {
                        "seq": e.seq,
                        "at": e.at,
                        "kind": e.kind,
                        "account_id": e.account_id,
                        "message": e.message,
                    }
                    for e in list(self.events)[-20:][::-1]
                ],
                "at_s": int(time.time()),
            }
