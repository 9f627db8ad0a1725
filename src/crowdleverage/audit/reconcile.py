"""Reconciliation of the dual record: chain ↔ custody ledger ↔ broker custody (DESIGN.md §5.7,
§8 invariants 1, 2 and 8).

Checks, each producing typed breaks:

| break | meaning |
|---|---|
| missing_mint | a deposit the ledger booked to an investor has no CashToken mint |
| double_mint | a reference appears in more than one mint/burn event |
| amount_mismatch | a mint/burn and its ledger twin disagree on the amount |
| unknown_reference | a mint/burn whose reference no ledger deposit/payout carries |
| orphan_ledger_entry | a ledger payout (burn twin) with no burn on chain |
| supply_drift | CashToken supply ≠ custody liabilities, or certificate supply ≠ broker custody |
| balance_mismatch | a mirrored investor's chain balance ≠ their custody balance |

A run with breaks is recorded and makes the platform fail closed: the `PausePort` pauses the
chain (no mints, burns or transfers) and `require_clean` refuses money movements off chain.
`resume` is refused until a later run is clean, i.e. until an operator has booked the
correcting entry (ledger or chain) that removes the break.

The chain side is read through `ChainReadPort`; `ChainGateway` implements it (and
`PausePort`) over any `ChainPort`, so the same checks run on the embedded chain and on an RPC node.
"""

from __future__ import annotations

import html
import json
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import sqlalchemy as sa

from crowdleverage.audit.log import AuditLog, metadata
from crowdleverage.custody import schema as s
from crowdleverage.custody.db import write_transaction
from crowdleverage.custody.indexer import MIRROR_CODE, mirror_accounts
from crowdleverage.custody.service import AccountCode, CustodyService, TransferCode
from crowdleverage.custody.types import PendingStatus
from crowdleverage.domain.errors import IntegrityFailure, PlatformPaused


class BreakKind(StrEnum):
    MISSING_MINT = "missing_mint"
    DOUBLE_MINT = "double_mint"
    AMOUNT_MISMATCH = "amount_mismatch"
    UNKNOWN_REFERENCE = "unknown_reference"
    ORPHAN_LEDGER_ENTRY = "orphan_ledger_entry"
    SUPPLY_DRIFT = "supply_drift"
    BALANCE_MISMATCH = "balance_mismatch"


@dataclass(frozen=True, slots=True)
class Break:
    kind: BreakKind
    detail: str
    reference: str | None = None  # 32 hex digits of the ledger transfer id / chain ref
    asset: str = "CNY"  # or a security code for certificate supply
    chain_value: int | None = None  # fen, or shares for certificates
    ledger_value: int | None = None


@dataclass(frozen=True, slots=True)
class CashMovement:
    kind: str  # "mint" | "burn"
    ref: int
    amount_fen: int
    holder: str
    tx_hash: str


class ChainReadPort(Protocol):
    def cash_movements(self) -> list[CashMovement]: ...

    def cash_supply_fen(self) -> int: ...

    def cash_balances_fen(self, addresses: Iterable[str]) -> dict[str, int]: ...

    def certificate_codes(self) -> set[str]: ...

    def certificate_supply(self, codes: Iterable[str]) -> dict[str, int]: ...


class PausePort(Protocol):
    def is_paused(self) -> bool: ...

    def pause(self, reason: str) -> None: ...

    def unpause(self) -> None: ...


@dataclass
class ReconReport:
    at_ns: int
    breaks: list[Break] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    paused: bool = False

    @property
    def ok(self) -> bool:
        return not self.breaks

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "clean" if self.ok else "breaks",
            "at_ns": self.at_ns,
            "checked": self.checked,
            "paused": self.paused,
            "breaks": [{**asdict(b), "kind": b.kind.value} for b in self.breaks],
        }

    def to_html(self) -> str:
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    b.kind.value,
                    b.asset,
                    b.reference or "",
                    b.chain_value,
                    b.ledger_value,
                    b.detail,
                )
            )
            + "</tr>"
            for b in self.breaks
        )
        status = "clean" if self.ok else f"{len(self.breaks)} break(s) — platform paused"
        checked = ", ".join(f"{html.escape(k)}: {v}" for k, v in self.checked.items())
        return (
            '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            "<title>CrowdLeverage reconciliation 对账</title>"
            "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px}"
            ".breaks{color:#b00}.clean{color:#070}</style></head><body>"
            f'<h1>对账 Reconciliation</h1><p class="{"clean" if self.ok else "breaks"}">'
            f"{html.escape(status)}</p><p>checked: {checked}</p>"
            "<table><tr><th>kind</th><th>asset</th><th>reference</th><th>chain</th>"
            f"<th>ledger</th><th>detail</th></tr>{rows}</table></body></html>"
        )


runs = sa.Table(
    "audit_recon_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at_ns", sa.BigInteger, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("n_breaks", sa.Integer, nullable=False),
    sa.Column("report_json", sa.Text, nullable=False),
)


@dataclass(frozen=True, slots=True)
class _Twin:
    investor_account: str
    amount_fen: int


class Reconciler:
    def __init__(self, custody: CustodyService, *, audit_log: AuditLog | None = None) -> None:
        self.custody = custody
        self.engine = custody.engine
        self.audit_log = audit_log

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    # --------------------------------------------------------------------------- checks

    def check(
        self,
        chain: ChainReadPort,
        *,
        addresses: dict[str, str] | None = None,
        broker_positions: dict[str, int] | None = None,
    ) -> ReconReport:
        """Compare without side effects. `addresses` maps investor id → chain address (the
        mirrored accounts); `broker_positions` maps security code → shares in broker custody
        (None: certificates are not checked)."""
        report = ReconReport(at_ns=time.time_ns())
        deposits, payouts, _ = self._ledger_twins()
        movements = chain.cash_movements()
        self._match_references(report, movements, deposits, payouts)
        liabilities = self._liabilities()
        supply = chain.cash_supply_fen()
        if supply != sum(liabilities.values()):
            report.breaks.append(
                Break(BreakKind.SUPPLY_DRIFT, "CashToken supply differs from custody liabilities",
                      chain_value=supply, ledger_value=sum(liabilities.values()))
            )  # fmt: skip
        if addresses:
            self._compare_balances(report, chain, addresses, liabilities)
        mirrored = self._compare_mirrors(report, chain, liabilities)
        if broker_positions is not None:
            self._compare_certificates(report, chain, broker_positions)
        report.checked = {
            "ledger_deposits": len(deposits),
            "ledger_payouts": len(payouts),
            "chain_movements": len(movements),
            "mirrored_accounts": len(addresses or {}) + mirrored,
            "securities": len(broker_positions or {}),
        }
        return report

    def _match_references(
        self,
        report: ReconReport,
        movements: list[CashMovement],
        deposits: dict[str, _Twin],
        payouts: dict[str, _Twin],
    ) -> None:
        by_ref: dict[str, list[CashMovement]] = defaultdict(list)
        for m in movements:
            by_ref[f"{m.ref:032x}" if m.ref < 1 << 128 else f"{m.ref:064x}"].append(m)
        for ref, ms in sorted(by_ref.items()):
            if len(ms) > 1:
                report.breaks.append(
                    Break(BreakKind.DOUBLE_MINT,
                          f"reference used by {len(ms)} chain movements"
                          f" ({', '.join(m.kind for m in ms)})",
                          reference=ref, chain_value=sum(m.amount_fen for m in ms))
                )  # fmt: skip
            first = ms[0]
            twins = deposits if first.kind == "mint" else payouts
            twin = twins.get(ref)
            if twin is None:
                report.breaks.append(
                    Break(BreakKind.UNKNOWN_REFERENCE,
                          f"{first.kind} (tx {first.tx_hash}) has no ledger twin",
                          reference=ref, chain_value=first.amount_fen)
                )  # fmt: skip
            elif twin.amount_fen != first.amount_fen:
                report.breaks.append(
                    Break(BreakKind.AMOUNT_MISMATCH, f"{first.kind} amount differs from the ledger",
                          reference=ref, chain_value=first.amount_fen, ledger_value=twin.amount_fen)
                )  # fmt: skip
        for ref, twin in sorted(deposits.items()):
            if ref not in by_ref:
                report.breaks.append(
                    Break(BreakKind.MISSING_MINT, "ledger deposit was never minted",
                          reference=ref, ledger_value=twin.amount_fen)
                )  # fmt: skip
        for ref, twin in sorted(payouts.items()):
            if ref not in by_ref:
                report.breaks.append(
                    Break(BreakKind.ORPHAN_LEDGER_ENTRY, "ledger payout has no burn on chain",
                          reference=ref, ledger_value=twin.amount_fen)
                )  # fmt: skip

    def _ledger_twins(self) -> tuple[dict[str, _Twin], dict[str, _Twin], set[str]]:
        """Deposits (mint twins) and live payouts (burn twins) from the immutable transfers.

        A deposit is a DEPOSIT transfer, or a CORRECTION without reference, crediting an
        investor. A CORRECTION with a reference (user_data_128) adjusts that reference's twin:
        + when it credits an investor, − when it debits one; a twin adjusted to 0 (a reversed
        deposit) expects no mint."""
        t, a, p = s.transfers, s.accounts, s.pending
        no_ref = "0" * 32
        with self.engine.connect() as conn:
            investor_accounts = set(
                conn.execute(sa.select(a.c.id).where(a.c.code == AccountCode.INVESTOR)).scalars()
            )
            dep_rows = conn.execute(
                sa.select(t.c.id, t.c.debit_account_id, t.c.credit_account_id, t.c.amount,
                          t.c.code, t.c.user_data_128)
                .where(t.c.code.in_([TransferCode.DEPOSIT, TransferCode.CORRECTION]))
                .order_by(t.c.timestamp)
            ).all()  # fmt: skip
            pay_rows = conn.execute(
                sa.select(t.c.id, t.c.debit_account_id, t.c.amount)
                .join(p, p.c.id == t.c.id)
                .where(
                    t.c.code == TransferCode.PAYOUT,
                    p.c.status.in_([PendingStatus.PENDING.value, PendingStatus.POSTED.value]),
                )
            ).all()
        amounts: dict[str, int] = {}
        holder: dict[str, str] = {}
        for r in dep_rows:
            credits_inv = r.credit_account_id in investor_accounts
            if r.code == TransferCode.DEPOSIT or r.user_data_128 == no_ref:
                if credits_inv:
                    amounts[r.id] = amounts.get(r.id, 0) + r.amount
                    holder[r.id] = r.credit_account_id
                continue
            ref = r.user_data_128
            if credits_inv:
                amounts[ref] = amounts.get(ref, 0) + r.amount
                holder.setdefault(ref, r.credit_account_id)
            elif r.debit_account_id in investor_accounts:
                amounts[ref] = amounts.get(ref, 0) - r.amount
                holder.setdefault(ref, r.debit_account_id)
        deposits = {ref: _Twin(holder[ref], amt) for ref, amt in amounts.items() if amt != 0}
        payouts = {r.id: _Twin(r.debit_account_id, r.amount) for r in pay_rows}
        return deposits, payouts, investor_accounts

    def _liabilities(self) -> dict[str, int]:
        """Available balance (posted credits − posted and reserved debits) per investor and
        mirrored account: a payout is reserved after its burn, so this is what CashToken
        should hold."""
        a = s.accounts
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    a.c.id, a.c.credits_posted - a.c.debits_posted - a.c.debits_pending
                ).where(a.c.code.in_([AccountCode.INVESTOR, MIRROR_CODE]))
            ).all()
        return {r[0]: int(r[1]) for r in rows}

    def _compare_balances(
        self,
        report: ReconReport,
        chain: ChainReadPort,
        addresses: dict[str, str],
        liabilities: dict[str, int],
    ) -> None:
        on_chain = chain.cash_balances_fen(addresses.values())
        for investor_id, addr in sorted(addresses.items()):
            acc = f"{self.custody.investor_account_id(investor_id):032x}"
            ledger = liabilities.get(acc, 0)
            if on_chain.get(addr, 0) != ledger:
                report.breaks.append(
                    Break(BreakKind.BALANCE_MISMATCH, f"investor {investor_id} ({addr})",
                          chain_value=on_chain.get(addr, 0), ledger_value=ledger)
                )  # fmt: skip

    def _compare_mirrors(
        self, report: ReconReport, chain: ChainReadPort, liabilities: dict[str, int]
    ) -> int:
        """Every non-investor address the indexer mirrors: chain balance = ledger balance."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(mirror_accounts)).all()
        if not rows:
            return 0
        on_chain = chain.cash_balances_fen(r.address for r in rows)
        for r in rows:
            ledger = liabilities.get(r.ledger_account_id, 0)
            if on_chain.get(r.address, 0) != ledger:
                report.breaks.append(
                    Break(BreakKind.BALANCE_MISMATCH, f"mirrored account {r.address}",
                          chain_value=on_chain.get(r.address, 0), ledger_value=ledger)
                )  # fmt: skip
        return len(rows)

    @staticmethod
    def _compare_certificates(
        report: ReconReport, chain: ChainReadPort, broker_positions: dict[str, int]
    ) -> None:
        codes = sorted(set(broker_positions) | chain.certificate_codes())
        supply = chain.certificate_supply(codes)
        for code in codes:
            if supply.get(code, 0) != broker_positions.get(code, 0):
                report.breaks.append(
                    Break(BreakKind.SUPPLY_DRIFT, "certificate supply differs from broker custody",
                          asset=code, chain_value=supply.get(code, 0),
                          ledger_value=broker_positions.get(code, 0))
                )  # fmt: skip

    # ------------------------------------------------------------------- fail closed

    def run(
        self,
        chain: ChainReadPort,
        *,
        pauser: PausePort | None = None,
        addresses: dict[str, str] | None = None,
        broker_positions: dict[str, int] | None = None,
    ) -> ReconReport:
        """Check, record the run, and fail closed on any break (pause on chain)."""
        report = self.check(chain, addresses=addresses, broker_positions=broker_positions)
        if report.breaks and pauser is not None:
            if not pauser.is_paused():
                kinds = sorted({b.kind.value for b in report.breaks})
                pauser.pause(f"reconciliation break: {', '.join(kinds)}")
            report.paused = True
        with write_transaction(self.engine) as conn:
            conn.execute(
                runs.insert(),
                {"at_ns": report.at_ns, "ok": report.ok, "n_breaks": len(report.breaks),
                 "report_json": json.dumps(report.to_dict(), ensure_ascii=False)},
            )  # fmt: skip
        if self.audit_log is not None:
            self.audit_log.append(
                "system:reconciler", "reconcile",
                {"ok": report.ok, "breaks": [b.kind.value for b in report.breaks]},
            )  # fmt: skip
        return report

    def latest(self) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).order_by(runs.c.id.desc()).limit(1)).first()
        return json.loads(row.report_json) if row is not None else None

    def require_clean(self) -> None:
        """Guard for money movements (mint, borrow, redeem): refuse after a break."""
        last = self.latest()
        if last is not None and last["status"] != "clean":
            raise PlatformPaused(
                f"reconciliation found {len(last['breaks'])} break(s); the platform is paused"
                " until an operator corrects them and reconciliation is clean"
            )

    def resume(self, pauser: PausePort, *, operator: str) -> None:
        """Operator: unpause — only after a clean reconciliation run."""
        last = self.latest()
        if last is None or last["status"] != "clean":
            raise IntegrityFailure("cannot resume: the latest reconciliation is not clean")
        if pauser.is_paused():
            pauser.unpause()
        if self.audit_log is not None:
            self.audit_log.append(operator, "resume_after_reconciliation", {"at_ns": last["at_ns"]})


class ChainGateway:
    """`ChainReadPort` and `PausePort` over a ChainPort (embedded or RPC) with the deployed
    CashToken and ShareCertificates; pausing uses the operator role."""

    def __init__(self, port: Any, *, operator: str = "operator") -> None:
        self.port = port
        self.operator = operator

    def cash_movements(self) -> list[CashMovement]:
        out = []
        for ev, kind, holder in (("Minted", "mint", "to"), ("Burned", "burn", "holder")):
            for e in self.port.events("CashToken", ev):
                out.append(
                    CashMovement(kind, int(e.args["ref"], 16), int(e.args["amount_fen"]),
                                 e.args[holder], e.tx_hash)
                )  # fmt: skip
        return out

    def cash_supply_fen(self) -> int:
        return int(self.port.call("CashToken", "totalSupply"))

    def cash_balances_fen(self, addresses: Iterable[str]) -> dict[str, int]:
        return {a: int(self.port.call("CashToken", "balanceOf", a)) for a in addresses}

    def certificate_codes(self) -> set[str]:
        from crowdleverage.chain.codes import code_from_chain

        return {
            code_from_chain(int(e.args["code"]))
            for e in self.port.events("ShareCertificates", "Minted")
        }

    def certificate_supply(self, codes: Iterable[str]) -> dict[str, int]:
        from crowdleverage.chain.codes import code_to_chain

        return {
            c: int(self.port.call("ShareCertificates", "total_supply", code_to_chain(c)))
            for c in codes
        }

    def is_paused(self) -> bool:
        return bool(self.port.call("CashToken", "paused"))

    def pause(self, reason: str) -> None:
        for contract in ("CashToken", "ShareCertificates"):
            if not self.port.call(contract, "paused"):
                self.port.send(contract, "pause", actor=self.operator)

    def unpause(self) -> None:
        for contract in ("CashToken", "ShareCertificates"):
            if self.port.call(contract, "paused"):
                self.port.send(contract, "unpause", actor=self.operator)
