"""The broker applies corporate actions to the margin accounts it holds shares for.

At the **ex-date open** (after the oracle's day open, before the first tick), for every account
holding the security at the record date's close, the broker

1. journals the entitlement (shares held, shares after, gross cash, tax) — the holdings at the
   ex-date open are the record date's closing holdings: nothing trades in between;
2. raises the position to `holdings × (1 + shares per share)` through the engine's BROKER hook
   `adjust_position(who, code, new_qty, ref)` (the engine scales the T+1 lock and the added
   certificates are minted to it under the same one-use reference).

On the **pay date** (the ex-date for Shenzhen stocks) it credits the net cash dividend through
`credit_cash(who, amount_fen, ref)`, the CashToken moving from the broker in the same call
(approved just before). Tax is withheld by holding period at the rates in force on the pay
date (market.corporate_actions.entitlement); without a lot history the shares count as bought
on the record date, the shortest holding and the highest rate (the platform never under-
withholds).

Each leg carries a deterministic reference per (security, ex-date, leg, account), so applying
an action twice — a restart, a replay of the same day — is refused by the chain and recognised
here (`applied` in the journal, or the chain's used-reference check) rather than doubled.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from crowdleverage.chain.codes import code_to_chain
from crowdleverage.chain.port import ChainPort
from crowdleverage.market.corporate_actions import CorporateAction, Lot, entitlement

HOLDER = "MarginEngine"  # the contract holding accounts' cash and positions

LotSource = Callable[[str, CorporateAction, int], Sequence[Lot]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entitlements (
    code TEXT NOT NULL, ex_date TEXT NOT NULL, account TEXT NOT NULL,
    qty INTEGER NOT NULL, new_qty INTEGER NOT NULL, gross_fen INTEGER NOT NULL,
    tax_fen INTEGER NOT NULL, unwithheld_fen INTEGER NOT NULL,
    shares TEXT NOT NULL, cash TEXT NOT NULL,
    PRIMARY KEY (code, ex_date, account)
);
CREATE TABLE IF NOT EXISTS snapshots (
    code TEXT NOT NULL, ex_date TEXT NOT NULL, PRIMARY KEY (code, ex_date)
);
"""


def record_date_lots(account: str, action: CorporateAction, qty: int) -> Sequence[Lot]:
    """No lot history: every share counts as bought on the record date (highest rate)."""
    return [Lot(qty, action.record_date)]


@dataclass
class ApplyReport:
    day: dt.date
    positions_adjusted: int = 0
    shares_added: int = 0
    cash_credited: int = 0
    net_cash_fen: int = 0
    tax_fen: int = 0
    already_applied: int = 0
    accounts: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "day": self.day.isoformat(),
            "positions_adjusted": self.positions_adjusted,
            "shares_added": self.shares_added,
            "cash_credited": self.cash_credited,
            "net_cash_fen": self.net_cash_fen,
            "tax_fen": self.tax_fen,
            "already_applied": self.already_applied,
        }


class CorporateActionAgent:
    """Applies `actions` for the broker actor, journaled in SQLite (one file)."""

    def __init__(
        self,
        chain: ChainPort,
        actions: Iterable[CorporateAction],
        journal: Path,
        *,
        actor: str = "broker",
        holder: str = HOLDER,
        lots: LotSource = record_date_lots,
    ) -> None:
        self.chain = chain
        self.actions = sorted(actions, key=lambda a: (a.ex_date, a.code))
        self.actor = actor
        self.holder = holder
        self.lots = lots
        journal.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(journal, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # ── the day ─────────────────────────────────────────────────────────────────────────

    def open_day(self, day: dt.date, accounts: Iterable[str]) -> ApplyReport:
        """Ex-dates of `day`: journal entitlements and adjust positions; then pay dates of
        `day`: credit net cash. Call after the oracle's day open, before the first tick."""
        report = ApplyReport(day)
        who = list(accounts)
        for action in self.actions:
            if action.ex_date == day:
                self._entitle(action, who)
                if action.adds_shares:
                    self._adjust(action, report)
        for action in self.actions:
            if action.pay_date == day and action.pays_cash:
                self._pay(action, report)
        return report

    def _entitle(self, action: CorporateAction, accounts: list[str]) -> None:
        """Snapshot the record date's holdings once per action, in one transaction: a second
        call (a restart, the same day replayed) keeps the first snapshot, so shares bought on
        the ex-date never earn the action."""
        key = (action.code, action.ex_date.isoformat())
        if self._db.execute(
            "SELECT 1 FROM snapshots WHERE code = ? AND ex_date = ?", key
        ).fetchone():
            return
        code = code_to_chain(action.code)
        held = [(a, int(self.chain.call(self.holder, "positions", a, code))) for a in accounts]
        self._db.execute("BEGIN")
        for account, qty in held:
            if qty == 0:
                continue
            e = entitlement(action, self.lots(account, action, qty))
            self._db.execute(
                "INSERT INTO entitlements VALUES (?,?,?,?,?,?,?,?, ?, ?)",
                (*key, account, e.qty, e.new_qty, e.gross_cash_fen, e.tax_fen,
                 e.tax_unwithheld_fen, "due" if action.adds_shares else "none",
                 "due" if action.pays_cash else "none"),
            )  # fmt: skip
        self._db.execute("INSERT INTO snapshots VALUES (?, ?)", key)
        self._db.execute("COMMIT")

    def _rows(self, action: CorporateAction, leg: str) -> list[tuple[str, int, int, int, int]]:
        return [
            (str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]))
            for r in self._db.execute(
                f"SELECT account, qty, new_qty, gross_fen, tax_fen FROM entitlements "
                f"WHERE code = ? AND ex_date = ? AND {leg} = 'due' ORDER BY account",
                (action.code, action.ex_date.isoformat()),
            ).fetchall()
        ]

    def _set(self, action: CorporateAction, account: str, leg: str, status: str) -> None:
        assert leg in ("shares", "cash")
        self._db.execute(
            f"UPDATE entitlements SET {leg} = ? WHERE code = ? AND ex_date = ? AND account = ?",
            (status, action.code, action.ex_date.isoformat(), account),
        )

    def _adjust(self, action: CorporateAction, report: ApplyReport) -> None:
        """`adjust_position` on the engine, then the added certificates minted to the engine
        with the same reference (`mint_adjustment`, its own namespace); each step is skipped
        when the chain has its reference already (a crash between the two)."""
        code = code_to_chain(action.code)
        engine = self.chain.address_of("engine")
        for account, qty, new_qty, _gross, _tax in self._rows(action, "shares"):
            ref = action.reference(account, "shares")
            if new_qty > qty:
                today = int(self.chain.call("PriceOracle", "trading_day"))
                day, lock = (int(x) for x in self.chain.call(self.holder, "lots", account, code))
                lock = lock if day == today else 0  # 0 at an ex-date open: locks are older
                if self._ref_used(ref):
                    report.already_applied += 1
                    added_lock = lock - lock * qty // new_qty  # the engine scaled it already
                else:
                    self.chain.send(
                        self.holder, "adjust_position", account, code, new_qty, ref,
                        actor=self.actor,
                    )  # fmt: skip
                    added_lock = lock * new_qty // qty - lock  # as the engine scales it
                    report.positions_adjusted += 1
                    report.shares_added += new_qty - qty
                    report.accounts.setdefault(account, {})[action.code] = new_qty - qty
                if not self.chain.call("ShareCertificates", "ref_used", ref):
                    self.chain.send(
                        "ShareCertificates", "mint_adjustment", engine, code, new_qty - qty,
                        added_lock, ref, actor=self.actor,
                    )  # fmt: skip
            self._set(action, account, "shares", "applied")

    def _pay(self, action: CorporateAction, report: ApplyReport) -> None:
        for account, _qty, _new, gross, tax in self._rows(action, "cash"):
            ref = action.reference(account, "cash")
            net = gross - tax
            if self._ref_used(ref):
                report.already_applied += 1
            elif net > 0:
                holder = self.chain.address_of("engine")
                self.chain.send("CashToken", "approve", holder, net, actor=self.actor)
                self.chain.send(self.holder, "credit_cash", account, net, ref, actor=self.actor)
                report.cash_credited += 1
                report.net_cash_fen += net
                report.tax_fen += tax
            self._set(action, account, "cash", "applied")

    def _ref_used(self, ref: bytes) -> bool:
        return bool(self.chain.call(self.holder, "action_ref_used", ref))

    def shares_added(self, account: str) -> dict[str, int]:
        """Shares the broker's custody received for `account` from applied actions, by code
        (the broker's own record beside its fills: custody = fills + these)."""
        rows = self._db.execute(
            "SELECT code, SUM(new_qty - qty) FROM entitlements "
            "WHERE account = ? AND shares = 'applied' GROUP BY code",
            (account,),
        ).fetchall()
        return {str(code): int(n) for code, n in rows if n}

    def entitlements(self, action: CorporateAction) -> list[dict[str, object]]:
        rows = self._db.execute(
            "SELECT account, qty, new_qty, gross_fen, tax_fen, unwithheld_fen, shares, cash "
            "FROM entitlements WHERE code = ? AND ex_date = ? ORDER BY account",
            (action.code, action.ex_date.isoformat()),
        ).fetchall()
        keys = ("account", "qty", "new_qty", "gross_fen", "tax_fen", "unwithheld_fen",
                "shares", "cash")  # fmt: skip
        return [dict(zip(keys, r, strict=True)) for r in rows]
