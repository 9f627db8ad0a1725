"""`Platform`: the use cases of DESIGN.md §5 as the API, the dashboards and `make run` call
them — a facade over the real parts; the decisions are the contracts' (the checks made here
before a call, such as the exchange's order rules at entry, only give a clearer message):

- money and rules: the financing contracts on the configured chain (`flows.ChainFinancing`:
  TranchePool, MarginEngine, CashToken, IdentityRegistry; the embedded py-evm chain under
  `<data_dir>/chain` by default). A refusal is the contract's revert (HTTP 422) and writes
  nothing;
- cash in and out: the custodian's book (`custody.CustodyService` on SQLite or PostgreSQL),
  the simulated bank's camt.053 statements and pain.001 payouts, `custody.Bridge` minting and
  burning `CashToken` with the ledger transfer id as reference, and `custody.ChainMirror`
  posting every on-chain movement between addresses to the ledger;
- trading: orders are *requested* on chain; the simulated broker places them on the simulated
  exchange and settles fills on chain while the replay advances (`tick`);
- prices: three oracle reporters feed the shipped market history, the vectorised monitor and
  the keeper warn, top up and liquidate (the contract re-checks every action);
- reconciliation: `audit.Reconciler` (references, supply, every address's balance); a break
  pauses CashToken on chain and the platform until a clean run.

What lives here is only the platform's own record for people: margin-account numbers, orders
and statement lines derived from the contracts' events, the event feed of the risk panel, the
NAV history, and the proofs of liabilities. It is appended to its tables (`flows.record`,
created by the Alembic migrations that run at start-up) after every use case — in a command's
own transaction — after every tick and at every end of day, together with the event cursor and
the last committed tick, so a restarted service resumes the day at the next tick and
re-derives anything after the cursor from the chain's events.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import itertools
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crowdleverage.audit.proofs import Liabilities
from crowdleverage.audit.reconcile import ChainGateway, Reconciler
from crowdleverage.chain.cache import CachedReads
from crowdleverage.chain.codes import code_from_chain, code_to_chain
from crowdleverage.chain.margin import LIQUIDATOR, ORDERBOOK, margin_events
from crowdleverage.chain.params import read_params, read_tier
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.roles import Role
from crowdleverage.chain.structs import read_order, read_security
from crowdleverage.config import Settings
from crowdleverage.custody.bank.simulator import SimulatedBank
from crowdleverage.custody.bridge import Bridge
from crowdleverage.custody.db import barrier, engine_from_settings, write_transaction
from crowdleverage.custody.indexer import ChainMirror
from crowdleverage.custody.service import (
    CustodyService,
    ImportReport,
    derive_id,
    payment_message_id,
)
from crowdleverage.custody.types import new_id
from crowdleverage.domain import params as P
from crowdleverage.domain import params as RP
from crowdleverage.domain.errors import (
    ConfigError,
    Conflict,
    CrowdLevError,
    Forbidden,
    InvalidInput,
    NotFound,
    PlatformPaused,
    RuleViolation,
)
from crowdleverage.domain.money import format_yuan
from crowdleverage.domain.params import LeverageTier
from crowdleverage.domain.security import Security
from crowdleverage.flows import record
from crowdleverage.flows.chain_financing import ENGINE, POOL, SHARE, AccountView, ChainFinancing
from crowdleverage.flows.commands import Command, CommandSpec, CommandStore
from crowdleverage.flows.day_close import DayClose
from crowdleverage.flows.market import MarketFeed, Quote
from crowdleverage.flows.model import AccountStatus, Event, Tranche
from crowdleverage.flows.record import MarginAccount, Order, Pending, Saved
from crowdleverage.flows.risk_figures import Position, RiskFigures
from crowdleverage.market.calendar import SHANGHAI
from crowdleverage.market.rules import PriceBand, Side, check_order
from crowdleverage.migrations import upgrade as migrate
from crowdleverage.risk.regime import RegimePoint, published_history, stressed_run
from crowdleverage.risk.session import EpochClose, EpochClosed

BPS = P.BPS
BANK_ACCOUNT = "6222020200112233445"  # the platform's segregated custody account
UNIVERSE_SIZE = 24  # securities the oracle and monitor watch by default
VIRTUAL_SHARES = 1_000  # TranchePool: one fen buys 1 000 units in an empty tranche
SENIOR_OF = {Tranche.SENIOR: True, Tranche.JUNIOR: False}
QUEUES = {0: (Tranche.SENIOR, "redeem"), 1: (Tranche.JUNIOR, "redeem"),
          2: (Tranche.JUNIOR, "subscribe"), 3: (Tranche.SENIOR, "subscribe")}  # fmt: skip
CHAIN_ROLE = {"investor": Role.INVESTOR, "borrower": Role.BORROWER}
# the end of day collects redemption proceeds and values liabilities user by user, ending a
# part once it has taken this much of the writer thread's CPU (`_end_of_day_parts`: the
# writer serves queued wallet commands between two parts). 20 ms: at 40 ms such a part took
# 40-64 ms of CPU, 100-290 ms of wall time on a loaded 2-core machine (the writer's stall log
# under bench/api.py), while the commands queued behind it waited
CLOSE_PART_BUDGET_S = 0.02
# the platform process's writer (`Platform.tick_part_budget_s`): a step's parts that send
# batches to the chain, the keeper's and the broker's, size them to take about this much of
# the writer thread's CPU (`SimulatedBroker.part_budget_s`, `Keeper.part_budget_s`; the writer
# serves queued commands between two). A fill's settlement takes 15-60 ms of CPU on the demo
# (2-core VM), a liquidation's start ~120 ms (one action: not cut)
TICK_PART_BUDGET_S = 0.03


@dataclass(frozen=True, slots=True)
class _Closed:
    """A bank statement closed and not imported yet (`Platform._close_statement`): its
    camt.053, and the bank as it was before (its state, its file's bytes or None)."""

    data: bytes
    bank_before: SimulatedBank
    file_before: bytes | None


snap_meta = sa.MetaData()  # created by the migrations (0001_baseline)
bank_refs = sa.Table(
    "flows_bank_refs",
    snap_meta,
    sa.Column("reference", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
)


log = logging.getLogger("crowdleverage.flows")
# the market a data dir started with: its first replay day and the watched codes
UNIVERSE_FILE = "universe.json"


def _ms(t0: float) -> int:
    return int((time.perf_counter() - t0) * 1000)


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def investor_id(user_id: int) -> str:
    """The user's custody investor id (every wallet holder is a custody client)."""
    return f"U{user_id:06d}"


@dataclass(frozen=True)
class Withdrawal:
    """One withdrawal command of a batch (`Platform.withdraw_batch`): `respond` turns the
    use case's result into the command's (status, body)."""

    spec: CommandSpec
    user_id: int
    amount_fen: int
    respond: Callable[[dict[str, Any]], tuple[int, Any]] = lambda out: (200, out)
    log_fields: dict[str, Any] = field(default_factory=dict)  # e.g. the request id


@dataclass
class Request:
    """A queued subscription (fen) or redemption (units), as acknowledged."""

    id: int
    user_id: int
    tranche: Tranche
    amount: int
    requested_on: dt.date


class Platform:
    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        market: MarketFeed | None = None,
        market_start: dt.date | None = dt.date(2015, 12, 1),
        codes: list[str] | None = None,
        chain: ChainPort | None = None,
    ) -> None:
        self.settings = settings
        data_dir = settings.ensure_data_dir()
        self.work_dir = data_dir / "flows"
        self.work_dir.mkdir(exist_ok=True)
        self.engine = engine if engine is not None else engine_from_settings(settings)
        migrate(self.engine)  # the schema at this release's revision (Alembic)
        self.custody = CustodyService(self.engine, BANK_ACCOUNT)
        self.custody.setup()
        self.ledger = self.custody.ledger
        self.proofs = Liabilities(self.engine)
        self.proofs.create_schema()
        self.reconciler = Reconciler(self.custody)
        self.reconciler.create_schema()
        self._bank_file = self.work_dir / "bank.json"
        self._close_file = self.work_dir / "close.json"  # a traded close's references
        self.bank = self._load_bank()
        self._statement_booked = False
        self._import_leftover()
        # a data dir keeps the market it started with (the replay's first day, the codes)
        keep = market is None and codes is None
        if keep:
            market_start = self._first_start(market_start)
        self._market_start = market_start
        self.market = market or MarketFeed.from_file(settings.market_data, start=market_start)
        derived = codes or default_universe(self.market)
        self.codes = self._universe(derived) if keep else derived
        raw = chain if chain is not None else open_platform_chain(settings, self.market)
        # views cached per block; inside a group commit (the platform process runs a batch of
        # commands in one transaction) the record is committed before every chain transaction
        before = lambda: barrier(self.engine)  # noqa: E731
        self.chain: ChainPort = CachedReads(raw, before_send=before)  # type: ignore[assignment]
        self.fin = ChainFinancing(
            self.chain,
            codes=self.codes,
            work_dir=self.work_dir,
            ticks_per_day=self.market.ticks_per_day,
            regimes=lambda: published_history(str(settings.market_data)),
            liquidity_days=self.market.days,
        )
        self.gateway = ChainGateway(self.chain)
        self.bridge = Bridge(self.custody, self.chain, self._address_of_investor)
        self.mirror = ChainMirror(self.custody, self.chain, self._investor_of_address)
        self.lock = threading.RLock()
        self.events: deque[Event] = deque(maxlen=500)
        self.listeners: list[Callable[[Event], None]] = []
        self._event_seq = itertools.count(1)
        self._by_address: dict[str, int] = {}
        # accounts whose liquidation was reported and has not ended: the keeper re-marks a
        # waiting liquidation (sealed, halted) at every tick, each a LiquidationStarted
        self._liquidating: set[int] = set()
        self._day_open = False
        self._snap_cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None
        self.figures = RiskFigures(self)  # the risk panel's chain figures, kept between blocks
        self.s = Saved()
        self._pending = Pending()  # record rows not committed yet
        self._financing: dict[int, int] = {}  # order id → financing drawn, until recorded
        self.commands = CommandStore(self.engine)
        self.commands.create_schema()
        self._cmd: Command | None = None  # the command being executed (under the lock)
        self._mid_tick = False  # an intraday tick is in parts (`tick`)
        # a traded day's close is in parts: the last tick of the day is the last committed
        self._closing = False
        # users whose statement changed while the close values liabilities (`_line`)
        self._touched: set[int] | None = None
        # the part of a tick that ran last ("step", "open", "close:<part>"; `_tick_parts`)
        self.last_part = ""
        self.tick_save_s = 0.0  # how long the last tick's closing save took (after its parts)
        self.close_part_budget_s = CLOSE_PART_BUDGET_S  # 0: a part per user
        # the keeper's and the broker's part budget while `between_parts` is set (0: one
        # action, one fill a part); None: whole batches (as many fills, keeper actions in a
        # transaction as before: what the chain does depends on nothing but the inputs)
        self.tick_part_budget_s: float | None = None
        # run between the parts of an intraday tick, without the lock (the writer's wallet
        # commands); None: the tick runs through
        self.between_parts: Callable[[], None] | None = None
        self._restore()
        for cmd in self.commands.running():  # crashed mid-way: settle what reached the chain
            self._resolve(cmd)

    # ----------------------------------------------------------------- start, save, close

    def _restore(self) -> None:
        with self.engine.connect() as conn:
            loaded = record.read(conn)
        if loaded is None:
            if not self._listed():
                self.fin.list_securities(self.codes)
            return
        self.s, feed = loaded
        self.events.extend(feed)
        self._event_seq = itertools.count(self.s.event_seq + 1)
        for uid in self.s.enrolled:
            self._by_address[self.fin.address(uid).lower()] = uid
        for acc in self.s.accounts.values():
            self.fin.track(acc.owner_id, acc.tier)
        if self.s.market_day is not None:
            day = dt.date.fromisoformat(self.s.market_day)
            if self.s.tick_step is not None:  # stopped mid-day: resume after the last tick
                self.market.seek(day, self.s.tick_step)
                self.fin.session.resume(self.market.days[self.market.day_index],
                                        self.s.tick_step + 1)  # fmt: skip
                self._day_open = True
            else:
                self.market.seek(day, 0)
        self._sync()  # events after the cursor: orders, lines
        where = f"{self.market.today} tick {self.market.step}" if self._day_open else (
            f"{self.market.today} (before the open)")  # fmt: skip
        self._event("restored", f"restored at {where}")
        # bridge operations a crash cut short (a burn without its payout, a mint due); while
        # the chain is paused they wait, and the reconciliation below says so
        # (only the mints of deposit commands: a ledger deposit nobody made is a break)
        ours = [c.progress["bank"]["transfer"] for c in self.commands.running()
                if "bank" in c.progress]  # fmt: skip
        with contextlib.suppress(PlatformPaused):
            self.bridge.process(deposits=ours)
        self.reconcile()
        self.save(bank=False)

    def _listed(self) -> bool:
        code = code_to_chain(self.codes[0])
        return read_security(self.chain, code).haircut_bps > 0

    def save(
        self, also: Callable[[sa.Connection], None] | None = None, *, bank: bool = True
    ) -> None:
        """Commit the platform's record (after a use case, a tick, the end of day): the rows
        added since the last commit are appended and the state row set; `also` writes in
        the same transaction (a command's result). `bank`: the simulated bank's file too."""
        with self.lock:
            if bank:
                self.bank.save(self._bank_file)
            # inside a tick's parts the tick before it is the last one committed; inside a
            # close's parts, the day's last tick (a restart closes the day again)
            step = self.market.step - 1 if self._mid_tick else self.market.step
            self.s.tick_step = step if self._day_open or self._closing else None
            rows = self._pending.take()
            try:
                with write_transaction(self.engine) as conn:
                    record.write(conn, self.s, rows)
                    if also is not None:
                        also(conn)
            except BaseException:
                self._pending.give_back(rows)
                raise

    # ------------------------------------------------------------------ commands

    def execute(
        self, spec: CommandSpec, work: Callable[[], tuple[int, Any]]
    ) -> tuple[int, Any, bool]:
        """Run a money-moving use case exactly once per (owner, key) (`flows.commands`):
        returns (status, body, replayed). `work` returns the response; a typed refusal (4xx)
        is stored as the result like a success; an unexpected failure leaves the command
        running, and a retry with the same key resumes it."""
        t0 = time.perf_counter()
        fields = {"event": "command", "owner_id": spec.owner_id, "key": spec.key,
                  "path": spec.path}  # fmt: skip
        with self.lock:
            cmd, stored = self.commands.start(spec)
            if stored is not None:
                log.info("command replayed", extra={**fields, "status": stored.status_code,
                                                    "outcome": "replayed"})  # fmt: skip
                return stored.status_code, stored.body, True
            assert cmd is not None
            self._cmd = cmd
            fields["resumed"] = cmd.resumed
            try:
                if cmd.resumed:
                    self._resolve(cmd)
                status, body = work()
            except CrowdLevError as err:
                if err.http_status >= 500:  # paused or unavailable: retry later, resumes
                    self._resolve(cmd)
                    log.warning("command deferred", extra={**fields, "outcome": err.code})
                    raise
                refused = {"details": {}, **err.to_dict()}
                self._commit(cmd, err.http_status, refused)
                log.info("command refused", extra={**fields, "status": err.http_status,
                         "outcome": err.code, "ms": _ms(t0)})  # fmt: skip
                raise
            except Exception:
                self._resolve(cmd)  # settle now, before another command can run
                log.exception("command failed; a retry resumes it",
                              extra={**fields, "outcome": "failed"})  # fmt: skip
                raise
            finally:
                self._cmd = None
            self._commit(cmd, status, body)
            log.info("command done", extra={**fields, "status": status, "outcome": "done",
                                            "ms": _ms(t0)})  # fmt: skip
            return status, body, False

    def _commit(self, cmd: Command, status: int, body: Any) -> None:
        self.mirror.sync()
        self._sync()
        self.save(also=lambda conn: CommandStore.finish(conn, cmd.spec, status, body))

    def _resolve(self, cmd: Command) -> None:
        """For each chain step of `cmd` not yet settled, record whether it reached the chain
        (its event after the recovery point). Runs before any other command can run."""
        for step, st in list(cmd.progress.items()):
            if st.get("kind") == "chain" and "seq" not in st:
                ev = self._witness(st)
                cmd.note(step, {**st, "seq": None if ev is None else ev.seq})

    def _witness(self, st: dict[str, Any]) -> Any:
        for e in self.chain.events(st["contract"], st["event"], since=int(st["since"])):
            who = str(e.args.get("account", e.args.get("investor", ""))).lower()
            if who == st["address"]:
                return e
        return None

    def _event_head(self, contract: str, event: str) -> int:
        evs = self.chain.events(contract, event, since=self.s.cursor)
        return evs[-1].seq if evs else self.s.cursor

    def _chain_once(
        self, step: str, contract: str, event: str, user_id: int, send: Callable[[], Any]
    ) -> dict[str, Any] | None:
        """Send a chain transaction once per command: `None` after sending it now, or the
        event's arguments when an earlier attempt of the same command already sent it."""
        cmd = self._cmd
        if cmd is None:
            send()
            return None
        st = cmd.progress.get(step)
        if st is not None and st.get("seq") is not None:
            for e in self.chain.events(contract, event, since=int(st["seq"]) - 1):
                if e.seq == int(st["seq"]):
                    return dict(e.args)
        address = self.fin.address(user_id).lower()
        since = self._event_head(contract, event)
        cmd.note(step, {"kind": "chain", "contract": contract, "event": event,
                        "address": address, "since": since})  # fmt: skip
        send()
        return None

    def close(self) -> None:
        with self.lock:
            self.fin.close()
            closer = getattr(self.chain, "close", None)
            if closer is not None:
                closer()

    # ------------------------------------------------------------------------- helpers

    def _event(self, kind: str, message: str, account_id: int | None = None) -> None:
        ev = Event(next(self._event_seq), _now_iso(), kind, account_id, message)
        self.s.event_seq = ev.seq
        self._pending.panel_event(ev)
        log.info(message, extra={"event": kind, "account_id": account_id,
                                 "trade_date": self.market.today.isoformat()})  # fmt: skip
        self.events.append(ev)
        self._snap_cache = None
        for fn in list(self.listeners):
            fn(ev)

    def _line(self, user_id: int, kind: str, amount_fen: int, **extra: Any) -> None:
        if self._touched is not None:
            self._touched.add(user_id)
        lines = self.s.history.setdefault(user_id, [])
        if self._cmd is not None:  # once per command, however often it resumes
            cmd, tag = self._cmd, self._cmd.tag
            # a new command's lines are the ones this run added (no scan of the history); a
            # resumed one looks for the lines of its earlier runs too
            if kind in cmd.lined or (
                cmd.resumed and any(x.get("cmd") == tag and x["kind"] == kind for x in lines)
            ):
                return
            cmd.lined.add(kind)
            extra["cmd"] = tag
        line = {"at": _now_iso(), "trade_date": self.market.today.isoformat(), "kind": kind,
                "amount_fen": amount_fen, **extra}  # fmt: skip
        lines.append(line)
        self._pending.line(user_id, line)

    @property
    def history(self) -> dict[int, list[dict[str, Any]]]:
        return self.s.history

    @property
    def paused_reason(self) -> str | None:
        return self.s.paused_reason

    @property
    def last_reconciliation(self) -> dict[str, Any] | None:
        return self.s.last_reconciliation

    def _require_open(self) -> None:
        if self.s.paused_reason is not None:
            raise PlatformPaused(f"platform paused: {self.s.paused_reason}")

    @staticmethod
    def _positive(amount: int, what: str = "amount_fen") -> None:
        if amount <= 0:
            raise InvalidInput(f"{what} must be a positive number, got {amount}")

    def _address_of_investor(self, inv: str) -> str:
        return self.fin.address(int(inv[1:]))

    def _investor_of_address(self, address: str) -> str | None:
        uid = self._by_address.get(address.lower())
        return investor_id(uid) if uid is not None else None

    def _after(self, *, save: bool = True) -> None:
        """After every chain action: the custody mirror and the platform's record (saved after
        each use case, so a crash loses no statement line; ticks re-derive theirs from the
        chain's events after the saved cursor)."""
        self.mirror.sync()
        self._sync()
        if save and self._cmd is None:  # a command saves with its result (`_commit`)
            self.save()

    # ------------------------------------------------------------------ 0. enrolment

    def enroll(self, user_id: int, role: str, suitability: int = 4) -> None:
        """Compliance approved the user: a custody client account (virtual account, payout
        account) and a verified identity on chain with the role. Idempotent."""
        if role not in CHAIN_ROLE:
            raise InvalidInput(f"only investors and borrowers hold wallets, not {role}")
        with self.lock:
            if self.s.enrolled.get(user_id) == role:
                return
            inv = investor_id(user_id)
            self.custody.register_investor(
                inv, name=f"user {user_id}", virtual_account=f"VA{user_id:08d}",
                reference=f"CL{user_id:06d}", payout_account=f"6217{user_id:015d}",
            )  # fmt: skip
            fund = getattr(self.chain, "fund", None)
            if fund is not None and self.settings.chain_dev_keys:
                fund([f"user-{user_id}"], 10**20)  # dev node gas
            self.fin.register(user_id, CHAIN_ROLE[role], suitability)
            self.s.enrolled[user_id] = role
            self._pending.enrolled[user_id] = role
            self._by_address[self.fin.address(user_id).lower()] = user_id
            self.save()

    def relay_identities(self, pipeline: Any) -> int:
        """The platform process applies compliance's queued identity writes on chain (the
        onboarding pipeline's outbox, `ComplianceService.relay_outbox`)."""
        from crowdleverage.compliance.chain_adapter import ChainIdentityWriter

        with self.lock:
            return int(pipeline.relay(ChainIdentityWriter(self.chain)))

    def _enrolled(self, user_id: int) -> None:
        if user_id not in self.s.enrolled:
            raise Conflict(f"user {user_id} is not enrolled (no approved KYC on chain yet)")

    # ---------------------------------------------------------------- 1. deposit, wallet

    def deposit(self, user_id: int, amount_fen: int, bank_reference: str) -> dict[str, Any]:
        """The custodian bank received the user's transfer: it is booked on the bank's
        statement (camt.053), the statement is imported into the custody ledger, and the
        bridge mints the same amount of CashToken to the user's address with the ledger
        transfer id as reference. A bank reference is accepted once; a resumed command finds
        its statement entry in the ledger (recovery point "bank") instead of booking again."""
        self._positive(amount_fen)
        if not 4 <= len(bank_reference) <= 64:
            raise InvalidInput("bank_reference must have 4–64 characters")
        with self.lock:
            self._require_open()
            self._enrolled(user_id)
            cmd = self._cmd
            point = cmd.progress.get("bank") if cmd is not None else None
            if point is not None and self.ledger.lookup_transfers([int(point["transfer"], 16)]):
                self.bridge.process()  # booked before the crash: only the mint may be missing
            else:
                self._reserve_bank_reference(user_id, amount_fen, bank_reference, resumed=point)
                self._book_deposit(user_id, amount_fen, bank_reference)
            self._line(user_id, "deposit", amount_fen, reference=bank_reference)
            self._after()
            return {"user_id": user_id, "wallet_fen": self.wallet_fen(user_id)}

    def _reserve_bank_reference(
        self, user_id: int, amount_fen: int, reference: str, *, resumed: Any
    ) -> None:
        with write_transaction(self.engine) as conn:
            seen = conn.execute(
                sa.select(bank_refs.c.user_id, bank_refs.c.amount_fen).where(
                    bank_refs.c.reference == reference
                )
            ).first()
            if seen is not None:
                if resumed is not None and tuple(seen) == (user_id, amount_fen):
                    return  # ours, from the attempt that crashed before booking
                raise Conflict(f"deposit: bank reference {reference} was already posted")
            conn.execute(
                bank_refs.insert(),
                {"reference": reference, "user_id": user_id, "amount_fen": amount_fen},
            )

    def _book_deposit(self, user_id: int, amount_fen: int, reference: str) -> None:
        if self._cmd is not None:  # the ledger id the entry will get, noted before booking
            servicer_ref = f"SIM{self.market.today:%Y%m%d}{self.bank.next_ref:08d}"
            tid = derive_id("camt053", BANK_ACCOUNT, servicer_ref)
            self._cmd.note("bank", {"transfer": f"{tid:032x}"})
        try:
            self.bank.receive_transfer(
                amount_fen, payer_name=f"user {user_id}",
                payer_account=f"6217{user_id:015d}", virtual_account=f"VA{user_id:08d}",
                remittance=reference, day=self.market.today,
            )  # fmt: skip
            self._import_statement()
        except Exception:
            if not self._statement_booked:  # nothing reached custody: undo ours
                self.bank = self._load_bank()
                with write_transaction(self.engine) as conn:
                    conn.execute(bank_refs.delete().where(bank_refs.c.reference == reference))
            raise

    def _first_start(self, asked: dt.date | None) -> dt.date | None:
        """The replay's first day this data dir was started with (`universe.json`); `asked`
        on a fresh data dir. A restart with another `--from` keeps the first one (the
        watched universe and the chain's listings come from it) and says so."""
        stored = self._stored_universe()
        if stored is None:
            return asked
        raw = stored["market_start"]
        first = None if raw is None else dt.date.fromisoformat(raw)
        if first != asked:
            log.warning(
                "market start kept",
                extra={"event": "market_start_kept", "data_dir_start": raw,
                       "asked": None if asked is None else asked.isoformat()},
            )  # fmt: skip
        return first

    def _stored_universe(self) -> dict[str, Any] | None:
        """`universe.json` as written at the first start (None on a fresh data dir); a file
        that is not what this release wrote is a ConfigError naming it."""
        path = self.work_dir / UNIVERSE_FILE
        if not path.exists():
            return None
        try:
            stored = json.loads(path.read_text())
            raw, codes = stored["market_start"], stored["codes"]
            if raw is not None:
                dt.date.fromisoformat(raw)
            if not isinstance(codes, list) or not codes:
                raise ValueError("no codes")
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path} is damaged ({exc}); restore it from a backup") from exc
        return dict(stored)

    def _universe(self, derived: list[str]) -> list[str]:
        """The watched codes as first stored in the data dir (`derived` on a fresh one)."""
        stored = self._stored_universe()
        if stored is not None:
            return [str(c) for c in stored["codes"]]
        path = self.work_dir / UNIVERSE_FILE
        start = None if self._market_start is None else self._market_start.isoformat()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"market_start": start, "codes": derived}))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        return derived

    def _load_bank(self) -> SimulatedBank:
        """The simulated custodian bank as last saved (a new one on first start)."""
        if self._bank_file.exists():
            return SimulatedBank.load(self._bank_file)
        return SimulatedBank(BANK_ACCOUNT)

    def _import_leftover(self) -> None:
        """A statement the bank closed before a crash that custody may not have imported:
        import it now (importing the same statement twice changes nothing)."""
        if self.bank.unimported is None:
            return
        self.custody.import_statement(self.bank.unimported.encode())
        self.bank.unimported = None
        self.bank.save(self._bank_file)

    def _import_statement(self) -> None:
        """The bank closes its statement of what it booked since the last one; custody
        imports it (`_close_statement`, `_book_statement`)."""
        self._book_statement(self._close_statement())

    def _close_statement(self) -> _Closed:
        """The bank's statement closed and saved as not imported yet (from here a restart
        imports it, `_import_leftover`). First a statement closed before and not imported
        yet is imported (the close's payouts in parts: a deposit between two of them)."""
        if self.bank.unimported is not None:
            self._imported(self.custody.import_statement(self.bank.unimported.encode()))
        at = dt.datetime.combine(self.market.today, dt.time(17, 0), tzinfo=SHANGHAI)
        self._statement_booked = False
        before = copy.deepcopy(self.bank)
        saved = self._bank_file.read_bytes() if self._bank_file.exists() else None
        data = self.bank.close_statement(at=at)
        self.bank.unimported = data.decode()
        self.bank.save(self._bank_file)  # from here a restart imports it (`_import_leftover`)
        return _Closed(data, before, saved)

    def _book_statement(self, closed: _Closed) -> None:
        """Custody imports the statement `_close_statement` closed (the bank's file says so
        once the ledger has it); a statement custody refuses, booking nothing, the bank
        takes back (as it was before `_close_statement`)."""
        data = closed.data
        self._statement_booked = True
        try:
            report = self.custody.import_statement(data)
        except CrowdLevError:  # custody refused it, booking nothing: the bank takes it back
            self.bank = closed.bank_before
            if closed.file_before is None:
                self._bank_file.unlink()
            else:
                self._bank_file.write_bytes(closed.file_before)
            self._statement_booked = False
            raise
        self._imported(report)

    def _imported(self, report: ImportReport) -> None:
        """After custody imported the bank's unimported statement (`report`)."""
        # the bank's file says "imported" only once the ledger has it durably (inside a group
        # commit the group commits here; a crash before would otherwise lose the booking
        # while the file forgets the statement)
        barrier(self.engine)
        self.bank.unimported = None
        self.bank.save(self._bank_file)
        stats = self.bridge.process()
        if report.suspense_fen or stats.failed:
            self.pause(
                f"custody: {report.suspense_fen} fen to suspense, {stats.failed} bridge failures"
            )

    def withdraw(self, user_id: int, amount_fen: int) -> dict[str, Any]:
        """Pay wallet cash out: the bridge burns it on chain and reserves the payout in the
        custody ledger; the payout leaves in the day's pain.001 file to the bank."""
        self._positive(amount_fen)
        with self.lock:
            self._require_open()
            self._enrolled(user_id)
            # a command's payout id (= burn reference) is derived from its key: a retry finds
            # the same bridge operation and completes it instead of burning again
            payout_id = self._cmd.ref if self._cmd is not None else new_id()
            self.bridge.redeem(investor_id(user_id), amount_fen, payout_id=payout_id)
            self._line(user_id, "withdrawal", -amount_fen)
            self._after()
            return {"user_id": user_id, "wallet_fen": self.wallet_fen(user_id)}

    def withdraw_batch(
        self,
        items: list[Withdrawal],
        after: Callable[[list[Withdrawal]], None] | None = None,
    ) -> list[tuple[int, Any, bool] | Exception]:
        """Withdrawal commands as one batch, each exactly once per (owner, key) as `execute`
        runs it (per item: (status, body, replayed), or the error that command raised):

        1. the commands' rows started in one write (a new key, or a resumed one), then per
           command, in order, the checks of `withdraw` and its bridge op recorded (the
           recovery point: the burn's reference is the command's); the balance check counts
           the burns recorded before it in the batch;
        2. one barrier (those recovery points are durable), then the burns back to back
           (`Bridge.burn_batch`), then the payouts reserved in the ledger;
        3. the statement lines, `after` (once, with the withdrawals done: the API's audit
           entries), and every command's result saved in one transaction with the record.
           Each response's wallet is what it would have been had the batch run one command
           at a time.

        A crash anywhere leaves each command running with its op recorded (or neither): a
        restart (`Bridge.process`) or the command's retry completes its burn once."""
        out: list[tuple[int, Any, bool] | Exception | None] = [None] * len(items)
        t0 = time.perf_counter()
        with self.lock:
            started: list[tuple[int, Command]] = []
            pending: dict[str, int] = {}
            fresh: set[int] = set()  # ops recorded new by this batch
            wallets: dict[int, int] = {}
            begun = self.commands.start_many([w.spec for w in items])
            for i, (w, one) in enumerate(zip(items, begun, strict=True)):
                fields = {"event": "command", "owner_id": w.spec.owner_id, "key": w.spec.key,
                          "path": w.spec.path, "batch": len(items), **w.log_fields}  # fmt: skip
                if isinstance(one, CrowdLevError):  # the key was used for another request
                    out[i] = one
                    continue
                cmd, stored = one
                if stored is not None:
                    log.info("command replayed", extra={**fields, "status": stored.status_code,
                                                        "outcome": "replayed"})  # fmt: skip
                    out[i] = (stored.status_code, stored.body, True)
                    continue
                assert cmd is not None
                self._cmd = cmd
                try:
                    if cmd.resumed:
                        self._resolve(cmd)
                    self._positive(w.amount_fen)
                    self._require_open()
                    self._enrolled(w.user_id)
                    if self.bridge.prepare_burn(investor_id(w.user_id), w.amount_fen,
                                                payout_id=cmd.ref, pending=pending):  # fmt: skip
                        fresh.add(cmd.ref)
                    # the wallet before the batch's burns (the check's read, cached per block)
                    wallets.setdefault(w.user_id, self.wallet_fen(w.user_id))
                except CrowdLevError as err:
                    out[i] = self._refused(cmd, err, fields, t0)
                    continue
                except Exception as exc:
                    self._resolve(cmd)
                    log.exception("command failed; a retry resumes it",
                                  extra={**fields, "outcome": "failed"})  # fmt: skip
                    out[i] = exc
                    continue
                finally:
                    self._cmd = None
                started.append((i, cmd))
            if started:
                self._burn_batch(items, started, fresh, wallets, out, t0, after)
        assert all(x is not None for x in out), "dev: every item answered"
        return [x for x in out if x is not None]

    def _refused(
        self, cmd: Command, err: CrowdLevError, fields: dict[str, Any], t0: float
    ) -> CrowdLevError:
        """As `execute` handles a typed error: a 5xx leaves the command to resume, a refusal
        is stored as its result."""
        if err.http_status >= 500:
            self._resolve(cmd)
            log.warning("command deferred", extra={**fields, "outcome": err.code})
            return err
        self._commit(cmd, err.http_status, {"details": {}, **err.to_dict()})
        log.info("command refused", extra={**fields, "status": err.http_status,
                 "outcome": err.code, "ms": _ms(t0)})  # fmt: skip
        return err

    def _burn_batch(
        self,
        items: list[Withdrawal],
        started: list[tuple[int, Command]],
        fresh: set[int],
        wallets: dict[int, int],
        out: list[tuple[int, Any, bool] | Exception | None],
        t0: float,
        after: Callable[[list[Withdrawal]], None] | None,
    ) -> None:
        try:  # one barrier for the batch's recovery points, then the burns
            outcome = self.bridge.burn_batch([cmd.ref for _, cmd in started], fresh)
        except Exception as exc:  # unexpected: every command of the batch resumes on retry
            log.exception("a batch of withdrawals failed; a retry resumes each",
                          extra={"event": "command", "outcome": "failed"})  # fmt: skip
            if isinstance(exc, CrowdLevError) and exc.http_status < 500:
                exc = RuntimeError(f"after the burns: {exc}")  # not a refusal: burns happened
            for i, _ in started:
                out[i] = exc
            return
        done: list[tuple[int, Command, bool]] = []
        for i, cmd in started:
            w = items[i]
            fields = {"event": "command", "owner_id": w.spec.owner_id, "key": w.spec.key,
                      "path": w.spec.path, "resumed": cmd.resumed, "batch": len(items),
                      **w.log_fields}  # fmt: skip
            if outcome[cmd.ref] == "paused":  # not sent: the command waits for the chain
                err = PlatformPaused(f"chain is paused; bridge op {cmd.ref:032x} waits")
                out[i] = self._refused(cmd, err, fields, t0)
                continue
            self._cmd = cmd
            try:
                self._line(w.user_id, "withdrawal", -w.amount_fen)
            finally:
                self._cmd = None
            done.append((i, cmd, outcome[cmd.ref] == "burned"))
        if not done:
            return
        try:
            if after is not None:
                after([items[i] for i, *_ in done])
        except Exception as exc:  # nothing stored: each command resumes on its retry
            log.exception("a batch of withdrawals failed; a retry resumes each",
                          extra={"event": "command", "outcome": "failed"})  # fmt: skip
            for i, *_ in done:
                out[i] = exc
            return
        # each response's wallet as if the batch ran one command at a time: the wallet before
        # the batch less what this batch burned up to and including that command
        results: list[tuple[int, Command, int, Any]] = []
        for i, cmd, burned in done:
            w = items[i]
            if burned:
                wallets[w.user_id] -= w.amount_fen
            status, body = w.respond({"user_id": w.user_id, "wallet_fen": wallets[w.user_id]})
            results.append((i, cmd, status, body))

        def finish(conn: sa.Connection) -> None:
            for _, cmd, status, body in results:
                CommandStore.finish(conn, cmd.spec, status, body)

        try:
            # no custody mirror here: a burn is no transfer between two holders (the mirror
            # skips it; the next sync, or the reconciliation's, moves its cursor past it)
            self._sync()
            # a withdrawal does not touch the simulated bank (its payout leaves at day's end)
            self.save(also=finish, bank=False)
        except Exception as exc:  # nothing stored: each command resumes on its retry
            log.exception("a batch of withdrawals failed; a retry resumes each",
                          extra={"event": "command", "outcome": "failed"})  # fmt: skip
            for i, *_ in results:
                out[i] = exc
            return
        for i, cmd, status, body in results:
            out[i] = (status, body, False)
            log.info("command done", extra={"event": "command", "owner_id": cmd.spec.owner_id,
                     "key": cmd.spec.key, "path": cmd.spec.path, "resumed": cmd.resumed,
                     "status": status, "outcome": "done", "batch": len(items),
                     "ms": _ms(t0), **items[i].log_fields})  # fmt: skip

    def wallet_fen(self, user_id: int) -> int:
        if user_id not in self.s.enrolled:
            return 0
        return self.fin.wallet_fen(user_id)

    # ------------------------------------------------------------- subscribe / redeem

    def subscribe(self, user_id: int, tranche: Tranche, amount_fen: int) -> Request:
        """The cash moves into the pool's escrow now; units are issued at the epoch close."""
        self._positive(amount_fen)
        with self.lock:
            self._require_open()
            self._enrolled(user_id)
            self._chain_once(
                "subscribe",
                POOL,
                "Queued",
                user_id,
                lambda: self.fin.subscribe(user_id, SENIOR_OF[tranche], amount_fen),
            )
            req = Request(self._next_id(), user_id, tranche, amount_fen, self.market.today)
            self._line(user_id, "subscription_requested", -amount_fen, tranche=tranche.value)
            self._after()
            return req

    def redeem(self, user_id: int, tranche: Tranche, units: int) -> Request:
        self._positive(units, "units")
        with self.lock:
            self._require_open()
            self._enrolled(user_id)
            self._chain_once(
                "redeem",
                POOL,
                "Queued",
                user_id,
                lambda: self.fin.redeem(user_id, SENIOR_OF[tranche], units),
            )
            req = Request(self._next_id(), user_id, tranche, units, self.market.today)
            self._line(user_id, "redemption_requested", 0, tranche=tranche.value, units=units)
            self._after()
            return req

    def _next_id(self) -> int:
        n = self.s.next_id
        self.s.next_id += 1
        return n

    def holdings(self, user_id: int) -> dict[str, Any]:
        """Units, NAV and value per tranche, and what is still queued, read from the pool."""
        with self.lock:
            enrolled = user_id in self.s.enrolled
            who = self.fin.address(user_id) if enrolled else None
            rows = []
            for t in Tranche:
                units = self.fin.units(user_id, SENIOR_OF[t]) if enrolled else 0
                rows.append({"tranche": t, "units": units, "nav_e4": self.nav_e4(t),
                             "value_fen": self._units_value(t, units)})  # fmt: skip
            queued = []
            for q, (t, kind) in QUEUES.items():
                amount = int(self.chain.call(POOL, "queued", q, who)) if who else 0
                if amount:
                    queued.append({"id": q, "tranche": t, "kind": kind, "amount": amount})
            return {"holdings": rows, "queued": queued}

    def _tranche(self, t: Tranche) -> tuple[int, int]:
        """(NAV fen, unit supply) of a tranche."""
        senior, junior = self.fin.navs()
        nav = senior if t is Tranche.SENIOR else junior
        supply = int(self.chain.call(SHARE[SENIOR_OF[t]], "totalSupply"))
        return nav, supply

    def nav_e4(self, t: Tranche) -> int:
        """NAV per unit ×10⁴ (1.0000 at the first subscription)."""
        nav, supply = self._tranche(t)
        return 10_000 if supply == 0 else nav * VIRTUAL_SHARES * 10_000 // supply

    def _units_value(self, t: Tranche, units: int) -> int:
        nav, supply = self._tranche(t)
        return 0 if supply == 0 else units * nav // supply

    # ------------------------------------------------------------- 2. margin account

    def open_margin_account(
        self, owner_id: int, tier: int, granted_tier: int | None
    ) -> MarginAccount:
        tiers = read_params(self.chain).tiers  # as RiskParams defines them now
        if tier not in tiers:
            raise InvalidInput(f"tier must be one of {sorted(tiers)}, got {tier}")
        if granted_tier is None:
            raise Forbidden("borrower has no approved KYC and credit tier yet")
        if tier > granted_tier:
            raise Forbidden(f"tier {tier} exceeds the granted credit tier {granted_tier}")
        with self.lock:
            self._require_open()
            self._enrolled(owner_id)
            have = self._account_of(owner_id)
            if have is not None:  # one engine account per borrower: opening again is a no-op
                if have.tier != tier:
                    raise Conflict(
                        f"user {owner_id} already has margin account {have.id} at tier {have.tier}"
                    )
                return have
            self.fin.open_account(owner_id, tier)
            acc = MarginAccount(self._next_id(), owner_id, tier)
            self.s.accounts[acc.id] = acc
            self._pending.accounts.append(asdict(acc))
            self._event("account_opened", f"margin account {acc.id} tier {tier}", acc.id)
            self._after()
            return acc

    def account(self, account_id: int) -> MarginAccount:
        acc = self.s.accounts.get(account_id)
        if acc is None:
            raise NotFound(f"margin account {account_id} not found")
        return acc

    @property
    def accounts(self) -> dict[int, MarginAccount]:
        return self.s.accounts

    def _account_of(self, user_id: int) -> MarginAccount | None:
        return next((a for a in self.s.accounts.values() if a.owner_id == user_id), None)

    def account_view(self, acc: MarginAccount) -> AccountView:
        return self.fin.account(acc.owner_id)

    def tier_terms(self, tier: int) -> LeverageTier:
        """A tier's lines and rate as `RiskParams` holds them now (the operator may have
        changed them since deployment)."""
        return read_tier(self.chain, tier)

    def status(self, view: AccountView, tier: int) -> AccountStatus:
        return self.status_in(view, self.tier_terms(tier))

    @staticmethod
    def status_in(view: AccountView, terms: LeverageTier) -> AccountStatus:
        if view.locked or view.open_liquidation:
            return AccountStatus.LIQUIDATING
        if view.ratio_bps is not None and view.ratio_bps < terms.warning_ratio_bps:
            return AccountStatus.WARNING
        return AccountStatus.HEALTHY

    def positions(self, acc: MarginAccount) -> list[dict[str, Any]]:
        who = self.fin.address(acc.owner_id)
        out = []
        for raw in self.chain.call(ENGINE, "codes_of", who):
            code = code_from_chain(int(raw))
            qty = int(self.chain.call(ENGINE, "positions", who, int(raw)))
            if qty == 0:
                continue
            q = self.quote(code)  # no bar today: halted at its last close
            out.append({"code": code, "quantity": qty,
                        "sellable": int(self.chain.call(ENGINE, "sellable", who, int(raw))),
                        "price_fen": q.price_fen, "market_value_fen": qty * q.price_fen,
                        "halted": q.halted})  # fmt: skip
        return out

    def quote(self, code: str) -> Quote:
        """The replayed price (a security without a bar today: halted at its last close)."""
        return self.market.quote_or_last(code)

    def fund_account(self, account_id: int, amount_fen: int, *, reserve: bool) -> MarginAccount:
        """Wallet cash into the account's margin (保证金) or its top-up reserve."""
        self._positive(amount_fen)
        with self.lock:
            self._require_open()
            acc = self.account(account_id)
            self._chain_once(
                "fund",
                ENGINE,
                "Deposited",
                acc.owner_id,
                lambda: self.fin.deposit(acc.owner_id, amount_fen, reserve=reserve),
            )
            kind = "reserve_deposit" if reserve else "margin_deposit"
            self._line(acc.owner_id, kind, -amount_fen, account_id=acc.id)
            self._after()
            return acc

    def withdraw_from_account(
        self, account_id: int, amount_fen: int, *, reserve: bool
    ) -> MarginAccount:
        """Back to the wallet; the engine keeps the ratio above its withdrawal floor."""
        self._positive(amount_fen)
        with self.lock:
            self._require_open()
            acc = self.account(account_id)
            self._chain_once(
                "withdraw",
                ENGINE,
                "Withdrawn",
                acc.owner_id,
                lambda: self.fin.withdraw(acc.owner_id, amount_fen, reserve=reserve),
            )
            self._line(acc.owner_id, "account_withdrawal", amount_fen, account_id=acc.id)
            self._after()
            return acc

    def repay(self, account_id: int, amount_fen: int) -> MarginAccount:
        """From the account's cash; allowed while the platform is paused (invariant 10)."""
        self._positive(amount_fen)
        with self.lock:
            acc = self.account(account_id)
            done = self._cmd is not None and self._cmd.progress.get("repay", {}).get("seq")
            debt = self.fin.account(acc.owner_id).debt_fen
            if amount_fen > debt and not done:
                raise RuleViolation(f"repay {amount_fen} fen exceeds the debt {debt} fen",
                                    rule="repay_above_debt", amount_fen=amount_fen,
                                    debt_fen=debt)  # fmt: skip
            self._chain_once(
                "repay",
                ENGINE,
                "Repaid",
                acc.owner_id,
                lambda: self.fin.repay(acc.owner_id, amount_fen, from_wallet=False),
            )
            self._line(acc.owner_id, "repayment", -amount_fen, account_id=acc.id)
            self._after()
            return acc

    # ----------------------------------------------------------------- 3. trade

    def buy(self, account_id: int, code: str, quantity: int, limit_price_fen: int) -> Order:
        return self._order(account_id, code, quantity, limit_price_fen, buy=True)

    def sell(self, account_id: int, code: str, quantity: int, limit_price_fen: int) -> Order:
        return self._order(account_id, code, quantity, limit_price_fen, buy=False)

    def _order(self, account_id: int, code: str, qty: int, limit: int, *, buy: bool) -> Order:
        """Request the order on chain (the engine's pre-trade checks, cash reserved, financing
        drawn); the broker places it at the next tick and fills settle on chain."""
        sec = Security.parse(code)
        code = sec.code
        with self.lock:
            acc = self.account(account_id)
            if self._cmd is None or self._cmd.progress.get("order", {}).get("seq") is None:
                self._check_order(acc, code, qty, limit, buy=buy)
            request = self.fin.request_buy if buy else self.fin.request_sell
            placed: list[int] = []
            sent = self._chain_once(
                "order", ORDERBOOK, "OrderRequested", acc.owner_id,
                lambda: placed.append(request(acc.owner_id, code, qty, limit)),
            )  # fmt: skip
            oid = placed[0] if sent is None else int(sent["order_id"])
            drawn = read_order(self.chain, oid).drawn_fen if buy else 0
            if oid not in self.s.orders:  # recorded with its financing by `_apply`
                self._financing[oid] = drawn
            self._after()
            order = self.s.orders[oid]
            if order.financing_fen != drawn:  # re-derived after a crash: financing unknown
                order.financing_fen = drawn
                self._pending.order_event(oid, "financed", None, value=drawn)
            return order

    def _check_order(
        self, acc: MarginAccount, code: str, qty: int, limit: int, *, buy: bool
    ) -> None:
        """The exchange's order rules at entry (kept for a clearer message than the broker's
        rejection at placement); the engine checks the margin rules."""
        if buy:
            self._require_open()
        if code not in self.codes:
            raise RuleViolation(f"{code} is not in the platform's financed universe",
                                rule="universe", code=code)  # fmt: skip
        q = self.quote(code)
        if q.halted:
            raise RuleViolation(f"{code} is halted on {self.market.today}", rule="halted",
                                code=code, date=self.market.today.isoformat())  # fmt: skip
        # the exchange's order rules (band, lots; the broker would reject the order at
        # placement); the engine checks the margin rules
        sellable = 0 if buy else self.fin.sellable(acc.owner_id, code)
        band = PriceBand(q.limit_down_fen, q.limit_up_fen, None)
        try:
            check_order(Side.BUY if buy else Side.SELL, qty, limit, band, holding=sellable)
        except RuleViolation as err:
            if not buy and qty > sellable:
                raise RuleViolation(
                    f"{err.message} (T+1: bought today sells tomorrow)",
                    **{**err.details, "rule": "sellable_t1"},
                ) from err
            raise

    def orders_of(self, account_id: int) -> list[Order]:
        with self.lock:
            return [o for o in reversed(self.s.orders.values()) if o.account_id == account_id]

    @property
    def orders(self) -> list[Order]:
        return list(self.s.orders.values())

    # ----------------------------------------------- 4. the market, monitor and keeper

    def tick(self) -> dict[str, Any]:
        """One replay step: open the day if needed (oracle bands, overnight orders placed),
        else the next intraday tick (prices → oracle → monitor → keeper → exchange → fills);
        after the last tick of a day, its end of day.

        The tick runs in parts (`_tick_parts`: an intraday step as `TradingSession.step_parts`
        cuts it; a day's close as `_end_of_day_parts` cuts it, then the next day's open and
        its first step), each under the lock; between two parts `between_parts` (when set:
        the platform process's writer serves the wallet commands queued meanwhile) runs
        without it, and `last_part` names the part just done. While a step is in parts the
        record names the tick before it as the last one committed (`save`), while a close
        is, the day's last tick, and a day counts as open only once its first step is done,
        so a restart in between resumes the interrupted part from the session's progress
        file (and the close's, `flows/day_close.py`)."""
        with self.lock:
            budget = self.tick_part_budget_s if self.between_parts is not None else None
            self.fin.session.broker.part_budget_s = budget
            self.fin.session.keeper.part_budget_s = budget
        for _ in self._tick_parts():
            hook = self.between_parts
            if hook is not None:
                hook()
        with self.lock:
            return {"date": self.market.today.isoformat(), "step": self.market.step}

    def _locked(self, parts: Iterator[str]) -> Iterator[None]:
        """Each of `parts` under the lock (`last_part`: the name it yields), a yield between
        two of them without it."""
        while True:
            with self.lock:
                try:
                    self.last_part = next(parts)
                except StopIteration:
                    return
            yield

    def _tick_parts(self) -> Iterator[None]:
        """The tick's parts. An intraday tick: the session's step in parts, the record naming
        the tick before as the last committed one meanwhile. A day's open: the session's
        open, then its first step in parts (the day counts as open once they are done: a
        restart in between opens it again, resuming from the progress file). A day's close:
        the end of day in parts (its last part commits it), then the next day's open in
        parts."""
        with self.lock:
            if self.s.replay_done:
                kind = "none"
            elif not self._day_open:
                kind = "open"
            elif self.market.at_close():
                kind = "close"
            else:
                kind = "step"
                self.market.advance()
                self._mid_tick = True
        if kind == "close":
            yield from self._locked(f"close:{n}" for n in self._end_of_day_parts())
            with self.lock:
                self.last_part = "close:commit"  # committed: the next day is the one to open
            if not self.replay_done:
                yield
                kind = "open"
        if kind in ("open", "step"):
            try:
                with self.lock:
                    parts: Iterator[None] = (
                        self._open_day_parts() if kind == "open" else self.fin.session.step_parts()
                    )
                session = self.fin.session
                yield from self._locked(f"{kind}:{session.part}" for _ in parts)
            finally:
                with self.lock:
                    self._mid_tick = False
                    self.last_part = f"{kind}:{self.fin.session.part}"  # the step's last part
            yield
            # the custody mirror and the record follow the tick's chain events, a part of its
            # own (after a step with many fills it is long); the tick's parts are done: a
            # command's commit here commits the tick as the save below does
            with self.lock:
                self._after(save=False)
                self.last_part = f"{kind}:sync"
            yield
        with self.lock:
            if kind in ("open", "step"):
                self.last_part = f"{kind}:save"
            t0 = time.monotonic()
            self._after(save=False)
            self.save(bank=False)  # the last committed tick: a restart resumes after it
            self.tick_save_s = time.monotonic() - t0
            log.debug("tick", extra={"event": "tick", "trade_date": self.market.today.isoformat(),
                                     "step": self.market.step})  # fmt: skip

    @property
    def day_open(self) -> bool:
        """A trading session is open (the oracle has the day's prices)."""
        return self._day_open

    @property
    def replay_done(self) -> bool:
        """The market data's last trading day has closed: `tick` does nothing more."""
        return self.s.replay_done

    def _open_day_parts(self) -> Iterator[None]:
        """The day's open, then its first step, in parts (`_tick_parts`)."""
        day = self.market.days[self.market.day_index]
        self.market.seek(day.date, 0)
        opened = yield from self.fin.session.open_parts(day)
        if opened.regime is not None:
            self._regime_changed(opened.regime)
        yield
        yield from self.fin.session.step_parts()
        self._day_open = True
        self.s.market_day = day.date.isoformat()

    def _regime_changed(self, p: RegimePoint) -> None:
        """The session set the regime published at the last close (the whole market of the
        configured bar file, risk/regime.py) on chain before the day's first order: in a
        stressed regime the OrderBook refuses new financing."""
        self._event(
            "regime_changed",
            f"market regime {p.regime.value} from the {p.date} close "
            f"(indicator {p.indicator_bps / 100:.0f}% of the threshold; "
            f"{', '.join(p.reasons) or 'calm again'})",
        )

    def waiting_liquidations(self) -> list[dict[str, Any]]:
        """Liquidation sells that cannot fill now: sealed limit-down, halted, or T+1."""
        return self._waiting(self.figures.accounts())

    def _waiting(
        self, figures: dict[int, tuple[AccountView, tuple[Position, ...]]]
    ) -> list[dict[str, Any]]:
        out = []
        for acc in self.s.accounts.values():
            view, held = figures[acc.owner_id]
            if not (view.locked or view.open_liquidation):
                continue
            for pos in held:
                q = self.quote(pos.code)
                reason = (
                    "halted" if q.halted
                    else "sealed limit-down" if q.at_limit_down
                    else "T+1 locked" if pos.sellable == 0
                    else ""
                )  # fmt: skip
                if reason:
                    out.append({"account_id": acc.id, "code": pos.code, "quantity": pos.quantity,
                                "reason": reason, "price_fen": q.price_fen})  # fmt: skip
        return out

    # -------------------------------------------------------- the chain's events → record

    def _sync(self) -> None:
        """Turn the engine's and the pool's new events into orders, statement lines and the
        risk panel's feed."""
        evs = sorted(
            [*margin_events(self.chain, since=self.s.cursor),
             *self.chain.events(POOL, "Executed", since=self.s.cursor)],
            key=lambda e: e.seq,
        )  # fmt: skip
        day = self.market.today.isoformat()
        for e in evs:
            self._apply(e.event, e.args, e.seq)
            self._pending.chain_event(e.seq, e.contract, e.event, day, e.args)
            self.s.cursor = max(self.s.cursor, e.seq)

    def _apply(self, name: str, a: Any, seq: int | None = None) -> None:
        owner = self._by_address.get(str(a.get("account", a.get("investor", ""))).lower())
        acc = self._account_of(owner) if owner is not None else None
        acc_id = acc.id if acc else None
        day = self.market.today.isoformat()
        if name in ("OrderRequested", "LiquidationOrder") and acc_id is not None:
            oid = int(a["order_id"])
            liq = name == "LiquidationOrder"
            order = Order(
                oid, acc_id, "buy" if a.get("is_buy") else "sell", code_from_chain(int(a["code"])),
                int(a["qty"]), int(a["min_price_fen"] if liq else a["limit_price_fen"]), day,
                liquidation=liq, financing_fen=self._financing.pop(oid, 0),
            )  # fmt: skip
            self.s.orders[oid] = order
            self._pending.order(order)
        elif name == "Filled":
            o = self.s.orders.get(int(a["order_id"]))
            if o is None:
                return
            qty, price, fee = int(a["qty"]), int(a["price_fen"]), int(a["fee_fen"])
            o.filled_qty += qty
            o.filled_value_fen += qty * price
            o.fees_fen += fee
            self._pending.order_event(o.id, "fill", seq, qty, qty * price, fee)
            acct = self.s.accounts[o.account_id]
            gross = qty * price
            kind = "liquidation_sell" if o.liquidation else o.side
            amount = -(gross + fee) if o.side == "buy" else gross - fee
            self._line(acct.owner_id, kind, amount, account_id=o.account_id, code=o.code,
                       quantity=qty, price_fen=price, order_id=o.id)  # fmt: skip
        elif name == "OrderClosed":
            o = self.s.orders.get(int(a["order_id"]))
            if o is not None:
                o.closed = True
                self._pending.order_event(o.id, "closed", seq)
        elif name == "MarginWarning" and acc_id is not None:
            self._event("margin_warning", f"ratio {int(a['ratio_bps']) / 100:.1f}%", acc_id)
        elif name == "ToppedUp" and acc is not None:
            amount = int(a["amount_fen"])
            self._event("auto_top_up", f"{format_yuan(amount)} 元 from reserve", acc_id)
            self._line(acc.owner_id, "auto_top_up", 0, account_id=acc_id, moved_fen=amount)
        elif name == "LiquidationStarted" and acc_id is not None:
            if acc_id in self._liquidating:  # a re-mark or next round of the same liquidation
                log.debug("liquidation re-marked", extra={"event": "liquidation_remarked",
                                                          "account_id": acc_id})  # fmt: skip
                return
            self._liquidating.add(acc_id)
            self._event("liquidation_started", f"ratio {int(a['ratio_bps']) / 100:.1f}%", acc_id)
        elif name == "LiquidationEnded" and acc_id is not None:
            self._liquidating.discard(acc_id)
            short = int(a["shortfall_fen"])
            self._event("liquidation_done", f"shortfall {format_yuan(short)} 元", acc_id)
        elif name == "Executed" and owner is not None:
            tranche, kind = QUEUES[int(a["queue"])]
            if kind == "subscribe":
                units, fen = int(a["amount_out"]), int(a["amount_in"])
                self._line(owner, "subscribed", 0, tranche=tranche.value, units=units, paid_fen=fen)
            else:
                units, fen = int(a["amount_in"]), int(a["amount_out"])
                self._line(owner, "redeemed", 0, tranche=tranche.value, units=units, paid_fen=fen)

    # ----------------------------------------------------------- 5. end of day / epoch

    def end_of_day(self) -> dict[str, Any]:
        """Finish the trading day (the remaining ticks; unfilled orders expire), close the
        pool's epoch (interest distributed, losses marked, queues executed), pay executed
        redemptions into the investors' wallets, send the day's payouts to the bank and
        import its statement, snapshot the liabilities, reconcile and save — whole, under the
        lock (`tick` runs it in parts, `_end_of_day_parts`). A restart inside a traded day's
        close runs it again, exactly (`flows/day_close.py`)."""
        with self.lock:
            parts = self._end_of_day_parts()
            while True:
                try:
                    next(parts)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]

    def _end_of_day_parts(self) -> Generator[str, None, dict[str, Any]]:
        """`end_of_day` in parts, each run under the lock; it yields the name of the part
        just done: the remaining ticks' parts, each expired order's release and the rest of
        the session's close ("session", `TradingSession.close_parts`), the epoch's close
        ("epoch"), the collects of redemption proceeds and the valuation of liabilities user
        by user, a part ending once it took `close_part_budget_s` of this thread's CPU
        ("collect", "liabilities"), the payouts' export, the bank's execution, its statement
        and custody's import ("payouts:export", "payouts:bank", "payouts:statement",
        "payouts"; `_settle_payouts_parts`), the proof-of-liabilities
        snapshot ("proofs"), the reconciliation ("reconcile"); the last part (NAV points,
        risk snapshot, the next day) commits the close and returns its figures.

        Between two parts the writer serves queued wallet commands (`tick`). Until the last
        part commits, the record names the day's last tick as the last one committed (a
        command's commit too: `_closing`), so a restart at any point closes the day again,
        exactly (`flows/day_close.py`); what a part writes to the record is what a command
        may commit as well (statement lines and orders derived from the chain after the
        cursor, the reconciliation); the close's own rows (NAV points, risk snapshot, the
        next day) are added in the last part. Liabilities are valued per user between
        commands, each on the chain as it is then; a user whose statement changed after being
        valued (`_line`: a command between the parts) is valued again in the snapshot's part
        (the interest a debt accrued over the blocks commands mined meanwhile is not)."""
        traded = self._day_open
        today = self.market.today.isoformat()
        close = DayClose.of(self._close_file, today) if traded else None
        # the pool does not close an epoch while paused: interest keeps accruing on the
        # engine's index and is distributed at the first close after the resume
        paused = bool(self.chain.call(ENGINE, "paused")) or self.gateway.is_paused()
        epoch = EpochClose.SKIP if paused else EpochClose.WAIT
        closed: EpochClosed | None
        if traded:
            self._closing = True
        try:
            if traded:
                session = self.fin.session.close_parts(epoch)
                while True:
                    try:
                        next(session)
                    except StopIteration as done:
                        closed = done.value
                        break
                    yield "session"
                self._day_open = False  # (a failure before: the next tick closes again)
            else:
                closed = self.fin.session.close_epoch(epoch)
            if paused:
                self._event("epoch_deferred", "epoch close deferred: the platform is paused")
            yield "epoch"
            users = list(self.s.enrolled)

            def collect(uid: int) -> None:
                if int(self.chain.call(POOL, "claimable_fen", self.fin.address(uid))):
                    self.fin.collect(uid)

            yield from self._per_user("collect", users, collect)
            yield from self._settle_payouts_parts(close)
            yield "payouts"
            if not self._proof_written(close):
                self._touched = set()
                owed: dict[int, int] = {}

                def value(uid: int) -> None:
                    owed[uid] = self._liability(uid)

                yield from self._per_user("liabilities", users, value)
                # valued again: changed since (a command between the parts), or new
                again = (self._touched & owed.keys()) | (set(self.s.enrolled) - owed.keys())
                owed.update((uid, self._liability(uid)) for uid in again)
                self._touched = None
                self.snapshot_liabilities(close, owed)
                yield "proofs"
            nxt: dt.date | None = None
            if traded and self.market.day_index < len(self.market.days) - 1:
                nxt = self.market.days[self.market.day_index + 1].date
            # (dated the day to open next, as the whole close did)
            self.reconcile(trade_date=nxt if traded else None)
            yield "reconcile"
            for t in Tranche:
                hist = self.s.nav_history[t.value]
                point = (today, self.nav_e4(t))
                if hist and hist[-1][0] == point[0]:
                    hist[-1] = point  # one point per trade date (the demo's opening epoch)
                else:
                    hist.append(point)
                self._pending.nav_points.append(
                    {"tranche": t.value, "trade_date": point[0], "nav_e4": point[1]}
                )
            self._after(save=False)  # saved below
            interest = (closed.interest if closed else None) or {}
            out = {
                "date": today,
                "interest_fen": int(interest.get("interest_fen", 0)),
                "senior_fen": int(interest.get("senior_fen", 0)),
                "junior_fen": int(interest.get("junior_fen", 0)),
                "insurance_fen": int(interest.get("insurance_fen", 0)),
                "platform_fee_fen": int(interest.get("platform_fee_fen", 0)),
                "executed": closed.executed if closed else 0,
            }
            if traded:
                self._closing = False
                if nxt is not None:
                    self.market.seek(nxt, 0)
                    self.s.market_day = nxt.isoformat()
                else:
                    self.s.market_day = None
                    self.s.replay_done = True
            snap = self._risk_snapshot()
            self._pending.risk_snapshots.append(
                {"trade_date": snap["trade_date"], "step": snap["step"], "at_s": snap["at_s"],
                 "body": record.to_json(snap)}
            )  # fmt: skip
            self.save()
            return out
        finally:  # (a close cut short stays `_closing`: the record keeps its last tick)
            self._touched = None

    def _per_user(self, name: str, users: list[int], work: Callable[[int], None]) -> Iterator[str]:
        """`work` for each user, `name` yielded once a part has taken `close_part_budget_s`
        of this thread's CPU, and after the last user."""
        t0 = time.thread_time()
        for i, uid in enumerate(users):
            work(uid)
            if time.thread_time() - t0 >= self.close_part_budget_s or i == len(users) - 1:
                yield name
                t0 = time.thread_time()
        if not users:
            yield name

    def _settle_payouts(self, close: DayClose | None = None) -> None:
        """pain.001 for the requested payouts → the bank executes it → its camt.053 settles
        the reserved payouts in the custody ledger; whole (`_settle_payouts_parts`)."""
        for _ in self._settle_payouts_parts(close):
            pass

    def _settle_payouts_parts(self, close: DayClose | None = None) -> Iterator[str]:
        """`_settle_payouts` in parts (the end of day's; the writer serves wallet commands
        between two): the export ("payouts:export"), the bank's execution, saved ("payouts:bank"),
        the bank's statement closed, saved ("payouts:statement"), then custody's import
        (the caller's next part). `close`: a traded day's close, whose file's MsgId is
        recorded before the export (a restart sends the same file again if the bank has not
        executed it, and nothing if it has; its statement is closed if the bank has not yet).

        A deposit between two parts imports the bank's statement itself: after the bank's
        execution, the statement it closes holds the payouts (the close then finds nothing
        booked to close, `open_entries`); after the close of the statement, it imports that
        one first (`_close_statement`), and the close's import finds it imported. Each
        booking is in one statement, imported once."""
        at = dt.datetime.combine(self.market.today, dt.time(16, 0), tzinfo=SHANGHAI)
        mid = None
        executed = False
        if close is not None:
            if close.message_id is None:
                close.message_id = payment_message_id(at)
                close.write(self._close_file)
            elif close.message_id in self.bank.executed_messages:
                executed = True  # paid (a restart): its statement, unless closed, is closed
            mid = close.message_id
        if not executed:
            data = self.custody.export_payouts(at=at, execution_date=self.market.today,
                                               message_id=mid)  # fmt: skip
            if data is None:
                return
            yield "payouts:export"
            self.bank.execute_payment_file(data, day=self.market.today)
            self.bank.save(self._bank_file)  # executed: a restart does not send it again
            yield "payouts:bank"
        if not self.bank.open_entries:
            return  # a command between the parts imported them (or a restart did)
        closed = self._close_statement()
        yield "payouts:statement"
        if self.bank.unimported == closed.data.decode():  # not imported by a command since
            self._book_statement(closed)

    # ------------------------------------------------------ 7. reconciliation, pause

    def reconcile(self, *, trade_date: dt.date | None = None) -> dict[str, Any]:
        """Chain ↔ custody: every mint/burn reference once with its ledger twin, CashToken
        supply = custody liabilities, every address's balance = its custody account; a break
        pauses CashToken on chain and the platform (fail closed). `trade_date`: the report's
        (the market's day by default)."""
        with self.lock:
            self.mirror.sync()
            addresses = {investor_id(u): self.fin.address(u) for u in self.s.enrolled}
            rep = self.reconciler.run(self.gateway, pauser=self.gateway, addresses=addresses)
            breaks = [f"{b.kind.value}: {b.detail}" for b in rep.breaks]
            names = ("senior_claim_fen", "junior_claim_fen", "interest_pending_fen")
            claims = sum(int(self.chain.call(POOL, n)) for n in names)
            assets = int(self.chain.call(POOL, "idle_fen")) + int(
                self.chain.call(POOL, "principal_out_fen")
            )
            if claims != assets:
                breaks.append(f"pool claims {claims} fen ≠ pool assets {assets} fen")
            report = {
                "chain": {
                    "chain": self.chain.kind,
                    "supply_fen": self.gateway.cash_supply_fen(),
                    "custody_cash_fen": self.custody.bank_cash_fen(),
                    "references": rep.checked.get("chain_movements", 0),
                },
                "at": _now_iso(),
                "trade_date": (trade_date or self.market.today).isoformat(),
                "status": "ok" if not breaks else "break",
                "breaks": breaks,
                "accounts_checked": rep.checked.get("mirrored_accounts", 0),
                "pool_assets_fen": assets,
                "claims_fen": claims,
            }
            self.s.last_reconciliation = report
            if breaks and self.s.paused_reason is None:
                self.pause(f"reconciliation break ({len(breaks)})")
            return report

    def pause(self, reason: str) -> None:
        """Operator: stop new risk (buys, borrowing, pool entries, withdrawals) on chain."""
        with self.lock:
            if not bool(self.chain.call(ENGINE, "paused")):
                self.chain.send(ENGINE, "pause", actor="operator")
            self.s.paused_reason = reason
            self._event("paused", reason)

    def resume(self) -> None:
        """Operator: resume; refused while CashToken is paused by a break that a clean
        reconciliation run has not cleared."""
        with self.lock:
            if self.gateway.is_paused():
                self.reconcile()
                self.reconciler.resume(self.gateway, operator="operator")
            if bool(self.chain.call(ENGINE, "paused")):
                self.chain.send(ENGINE, "unpause", actor="operator")
            self.s.paused_reason = None
            self._event("resumed", "platform resumed")

    # ------------------------------------------------------------- proofs, figures

    def liabilities(self) -> dict[int, int]:
        """What the platform owes each user (`_liability`)."""
        return {uid: self._liability(uid) for uid in self.s.enrolled}

    def _liability(self, uid: int) -> int:
        """What the platform owes a user: wallet, claimable and queued cash, tranche holdings
        at NAV, and a borrower's equity (cash, reserve and positions less debt)."""
        who = self.fin.address(uid)
        total = self.fin.wallet_fen(uid) + int(self.chain.call(POOL, "claimable_fen", who))
        for q in (2, 3):
            total += int(self.chain.call(POOL, "queued", q, who))
        for t in Tranche:
            total += self._units_value(t, self.fin.units(uid, SENIOR_OF[t]))
        acc = self._account_of(uid)
        if acc is not None:
            v = self.fin.account(uid)
            gross = (
                v.cash_fen
                + v.reserve_fen
                + v.pending_fen
                + sum(p["market_value_fen"] for p in self.positions(acc))
            )
            total += max(0, gross - v.debt_fen)
        return total

    def latest_epoch(self) -> int | None:
        try:
            return self.proofs.latest_epoch()
        except NotFound:
            return None

    def _proof_written(self, close: DayClose | None) -> bool:
        """The proof-of-liabilities snapshot of a traded day's close was written (before a
        restart)."""
        return (
            close is not None
            and close.proof_epoch is not None
            and self.proofs.root(close.proof_epoch, missing_ok=True) is not None
        )

    def snapshot_liabilities(
        self, close: DayClose | None = None, owed: dict[int, int] | None = None
    ) -> None:
        """Freeze this epoch's liabilities into a Merkle-sum tree (audit.proofs). `close`: a
        traded day's close, whose epoch is recorded before the snapshot (once per close).
        `owed`: the liabilities valued already (`liabilities()` by default)."""
        if self._proof_written(close):
            return  # written before a restart
        epoch = (self.latest_epoch() or 0) + 1
        if close is not None:
            close.proof_epoch = epoch
            close.write(self._close_file)
        balances = owed if owed is not None else self.liabilities()
        self.proofs.snapshot(epoch, {str(u): b for u, b in balances.items()})

    def pool_figures(self) -> dict[str, int]:
        c = self.chain
        insurance = int(c.call("CashToken", "balanceOf", c.address_of("insurance")))
        return {
            "idle_fen": int(c.call(POOL, "idle_fen")),
            "principal_out_fen": int(c.call(POOL, "principal_out_fen")),
            "assets_fen": int(c.call(POOL, "total_assets_fen")),
            "utilisation_bps": int(c.call(POOL, "utilisation_bps")),
            "insurance_fen": insurance,
            "senior_loss_fen": int(c.call(POOL, "senior_loss_fen")),
            "senior_claim_fen": int(c.call(POOL, "senior_claim_fen")),
            "junior_claim_fen": int(c.call(POOL, "junior_claim_fen")),
        }

    def published_terms(self) -> dict[str, Any]:
        """Tiers, rates and limits as the contracts enforce them (not a copy of the config)."""
        c = self.chain
        params = self.figures.params()  # kept until an event of the chain that may change it
        tiers = [
            {"tier": n, "max_leverage": t.max_leverage, "initial_bps": t.initial_ratio_bps,
             "warning_bps": t.warning_ratio_bps, "liquidation_bps": t.liquidation_ratio_bps,
             "rate_apr_bps": t.rate_apr_bps}
            for n, t in sorted(params.tiers.items())
        ]  # fmt: skip
        senior, premium, fee, junior, util, _epoch = (int(x) for x in c.call(POOL, "rates"))
        return {
            "tiers": tiers,
            "fees": {
                "senior_target_apr_bps": senior,
                "insurance_premium_bps_of_interest": premium,
                "platform_fee_bps_of_interest": fee,
                "liquidation_penalty_bps_of_sold": params.limits.penalty_bps,
                # the Liquidator's NAV stop: closed in full below reference equity − this
                # share of reference assets (issue 13)
                "nav_stop_bps_of_reference_assets": int(c.call(LIQUIDATOR, "nav_stop_bps")),
                "nav_stop_below_ratio_bps": int(c.call(LIQUIDATOR, "nav_stop_below_bps")),
                "min_junior_ratio_bps": junior,
                "max_utilisation_bps": util,
            },
        }

    def published_policy(self) -> dict[str, Any]:
        """The regime-dependent risk parameters as `RiskParams` holds them (the transparency
        page): the regime the haircuts follow, each board's haircut and its stressed value
        (the definition's board haircuts at the chain's stressed scale), the ST haircuts,
        the liquidity cap share, and per security its published liquidity figure, cap, the
        platform's position and the headroom left for financed buys."""
        params = self.figures.params()
        scale, st = params.stressed_haircut_scale_bps, params.stressed_st_haircut_bps
        return {
            "regime_on_chain": "stressed" if params.stressed else "calm",
            "stressed_haircut_scale_bps": scale,
            "board_haircuts": {
                b.value: {"normal_bps": v,
                          "stressed_bps": RP.stressed_haircut_bps(v, scale_bps=scale)}
                for b, v in sorted(RP.HAIRCUT_BPS.items())
            },
            "st_haircut_bps": params.st_haircut_bps,
            "stressed_st_haircut_bps": min(params.st_haircut_bps * scale // RP.BPS, st),
            "liquidity_cap_bps": params.liquidity_cap_bps,
            "liquidity_adv_days": RP.LIQUIDITY_ADV_DAYS,
            "liquidity": [r.as_dict() for r in self.figures.liquidity()],
            "stressed_phase": self._stressed_phase(),
        }  # fmt: skip

    def _stressed_phase(self) -> dict[str, int]:
        """The phase-in of the stressed set (domain/params.py `STRESSED_PHASE_IN_DAYS`): today
        is its `day`-th stressed day (0: calm), and the line share and haircut scale the chain
        holds now against the full stressed set."""
        before = [pt for pt in published_history(str(self.settings.market_data))
                  if pt.date < self.market.today]  # fmt: skip
        return {
            "days": RP.STRESSED_PHASE_IN_DAYS,
            "day": stressed_run(before),
            "line_bps_now": int(self.chain.call(LIQUIDATOR, "stressed_line_bps")),
            "line_bps_full": RP.STRESSED_LINE_BPS,
            "scale_bps_now": self.figures.params().stressed_haircut_scale_bps,
            "scale_bps_full": RP.STRESSED_HAIRCUT_SCALE_BPS,
        }

    def risk_snapshot(self) -> dict[str, Any]:
        """The operator's risk panel (cached per block and event): the accounts' figures as
        `RiskFigures` keeps them (read again after every tick and every event naming the
        account; a debt may lack the interest of the seconds since), the pool's read now."""
        with self.lock:
            key = (self.chain.block_number(), self.market.day_index, self.market.step)
            if self._snap_cache is not None and self._snap_cache[0] == key:
                return {**self._snap_cache[1], "at_s": int(time.time())}
            snap = self._risk_snapshot()
            self._snap_cache = (key, snap)
            return snap

    def warm_views(self, budget_s: float) -> bool:
        """Read the stale figures of the market-wide views for about `budget_s` (at least one
        piece); True when none is left stale (`RiskFigures.warm`: the writer renders those
        views once this is done, each then costs the pool's figures, not the accounts')."""
        return self.figures.warm(budget_s)

    def _risk_snapshot(self) -> dict[str, Any]:
        accounts = []
        exposure: dict[str, int] = {}
        board_exposure: dict[str, int] = {}
        total_debt = 0
        figures = self.figures.accounts()
        tiers = self.figures.params().tiers
        for acc in self.s.accounts.values():
            tier = tiers[acc.tier]
            view, held = figures[acc.owner_id]
            total_debt += view.debt_fen
            accounts.append({
                "account_id": acc.id, "owner_id": acc.owner_id, "tier": acc.tier,
                "status": self.status_in(view, tier).value,
                "ratio_bps": view.ratio_bps,
                "debt_fen": view.debt_fen, "warning_bps": tier.warning_ratio_bps,
                "liquidation_bps": tier.liquidation_ratio_bps,
            })  # fmt: skip
            for pos in held:
                value = pos.quantity * self.quote(pos.code).price_fen
                exposure[pos.code] = exposure.get(pos.code, 0) + value
                board = Security.parse(pos.code).board.value
                board_exposure[board] = board_exposure.get(board, 0) + value
        pool = self.pool_figures()
        return {
            "trade_date": self.market.today.isoformat(),
            "step": self.market.step,
            "paused": self.s.paused_reason is not None,
            "paused_reason": self.s.paused_reason,
            "accounts": accounts,
            "waiting_liquidations": self._waiting(figures),
            "pool_cash_fen": pool["idle_fen"],
            "total_debt_fen": total_debt,
            "pool_assets_fen": pool["assets_fen"],
            "utilisation_bps": pool["utilisation_bps"],
            "insurance_fen": pool["insurance_fen"],
            "insurance_coverage_bps": 0
            if total_debt == 0
            else pool["insurance_fen"] * BPS // total_debt,
            "senior_nav_e4": self.nav_e4(Tranche.SENIOR),
            "junior_nav_e4": self.nav_e4(Tranche.JUNIOR),
            "senior_deficit_fen": pool["senior_loss_fen"],
            "exposure_by_security_fen": dict(sorted(exposure.items(), key=lambda kv: -kv[1])[:20]),
            "exposure_by_board_fen": board_exposure,
            "events": [asdict(e) for e in list(self.events)[-20:][::-1]],
            "at_s": int(time.time()),
        }

    def nav_history(self, t: Tranche) -> list[tuple[str, int]]:
        return list(self.s.nav_history[t.value])


# ---------------------------------------------------------------------- wiring helpers


def default_universe(market: MarketFeed, n: int = UNIVERSE_SIZE) -> list[str]:
    """The securities the platform finances by default: the first `n` codes trading on the
    replay's first day below 100 元 (the oracle, monitor and keeper cost grows with each)."""
    day = market.days[0]
    codes = [c for c, b in sorted(day.bars.items()) if not b.halted and b.prev_close < 10_000]
    return codes[:n]


def replay_genesis_s(market: MarketFeed) -> int:
    """The chain's start time for a replay: two days before its first trading day (00:00
    Shanghai), so that the first epoch close and the first open are both ahead of it."""
    first = dt.datetime.combine(market.days[0].date, dt.time(0), tzinfo=SHANGHAI)
    return int(first.timestamp()) - 2 * 86_400


def open_platform_chain(settings: Settings, market: MarketFeed) -> ChainPort:
    """The configured chain with the financing system deployed (on first use): embedded
    under `<data_dir>/chain` with development keys (users' keys derived on demand), or an RPC
    node with keys from the environment (`chain_dev_keys` for a dev node such as anvil)."""
    from crowdleverage.chain.deploy import (
        FINANCING_ACTORS,
        deploy_financing,
        deploy_system,
        manifest_path,
    )
    from crowdleverage.chain.factory import open_chain
    from crowdleverage.risk.world import SESSION_ORACLE, open_financing_chain

    genesis = replay_genesis_s(market)
    data_dir = settings.ensure_data_dir()  # the same place `crowdlev chain …` looks at
    if settings.chain == "embedded":
        return open_financing_chain(
            data_dir, [], genesis_time_s=genesis, seed=settings.seed, on_demand=True
        )
    chain = open_chain(settings, actors=FINANCING_ACTORS, dev_keys=settings.chain_dev_keys)
    if not manifest_path(data_dir).exists() and chain.block_time() > genesis:
        from crowdleverage.domain.errors import ConfigError

        raise ConfigError(
            f"the node's clock ({chain.block_time()}) is after the replay's start ({genesis},"
            f" {market.days[0].date}): the oracle, interest and epochs follow the replayed"
            f" market, so start a dev node at that time, e.g. `anvil --timestamp {genesis}`"
        )
    fund = getattr(chain, "fund", None)
    if settings.chain_dev_keys and fund is not None:
        fund(list(FINANCING_ACTORS), 10**21)  # a dev node: gas for the platform's actors
    if not manifest_path(data_dir).exists():
        deploy_system(chain, data_dir, SESSION_ORACLE)
    if "MarginEngine" not in chain.deployed():
        deploy_financing(chain, data_dir)
    return chain
