"""Statements (对账单) and confirmations (确认书) of a wallet holder, from the platform's record.

A statement covers the platform's statement lines (`Platform.history`) whose trade date lies in
the period, their totals per kind, and the wallet: every line has a *wallet effect* (what it did
to the user's CashToken wallet, which the custody ledger mirrors), so the opening wallet is the
sum of the effects before the period and the closing wallet the opening plus the period's
effects. Over the whole history the closing wallet equals the custody ledger's available
balance of the user (posted less payouts in transit): the statement shows both side by side.

Confirmations are one per statement line that moves money or shares (deposit, withdrawal,
subscription, redemption, margin transfers, repayment, fill, top-up) and one per order (its
liquidation orders are the liquidation confirmations); ids are stable (`L<n>`: the n-th line
of the user, append-only; `O<id>`: the engine's order id).

Plain functions over a `Platform` (the read side): they take `platform.lock` only while
copying what they need.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crowdleverage.domain.errors import InvalidInput, NotFound
from crowdleverage.domain.money import format_yuan
from crowdleverage.flows.platform import Platform, investor_id
from crowdleverage.web.i18n_reports import detail_label, detail_value, kind_label, tr

MAX_DAYS = 3_660  # a custom range spans at most ten years

# what a statement line did to the user's wallet (CashToken balance), by kind
WALLET_EFFECT: dict[str, Callable[[dict[str, Any]], int]] = {
    "deposit": lambda x: int(x["amount_fen"]),
    "withdrawal": lambda x: int(x["amount_fen"]),  # negative: burnt at the request
    "subscription_requested": lambda x: int(x["amount_fen"]),  # into the pool's escrow
    "redeemed": lambda x: int(x.get("paid_fen", 0)),  # collected into the wallet at the close
    "margin_deposit": lambda x: int(x["amount_fen"]),
    "reserve_deposit": lambda x: int(x["amount_fen"]),
    "account_withdrawal": lambda x: int(x["amount_fen"]),
}
CONFIRMED_KINDS = (
    "deposit", "withdrawal", "subscription_requested", "redemption_requested", "subscribed",
    "redeemed", "margin_deposit", "reserve_deposit", "account_withdrawal", "repayment", "buy",
    "sell", "liquidation_sell", "auto_top_up",
)  # fmt: skip


def wallet_effect_fen(line: dict[str, Any]) -> int:
    fn = WALLET_EFFECT.get(str(line["kind"]))
    return 0 if fn is None else fn(line)


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date  # inclusive

    @classmethod
    def month(cls, ym: str) -> Period:
        try:
            first = dt.date.fromisoformat(f"{ym}-01")
        except ValueError as exc:
            raise InvalidInput(f"month {ym!r} is not YYYY-MM") from exc
        last = calendar.monthrange(first.year, first.month)[1]
        return cls(first, first.replace(day=last))

    @classmethod
    def of(cls, start: str | None, end: str | None, month: str | None) -> Period:
        """From the query: `month=YYYY-MM`, or `start`/`end` (YYYY-MM-DD, inclusive)."""
        if month:
            if start or end:
                raise InvalidInput("give either month or start/end, not both")
            return cls.month(month)
        if not (start and end):
            raise InvalidInput("give month=YYYY-MM or both start and end (YYYY-MM-DD)")
        try:
            p = cls(dt.date.fromisoformat(start), dt.date.fromisoformat(end))
        except ValueError as exc:
            raise InvalidInput("start and end must be dates YYYY-MM-DD") from exc
        if p.end < p.start:
            raise InvalidInput(f"end {p.end} is before start {p.start}")
        if (p.end - p.start).days > MAX_DAYS:
            raise InvalidInput(f"a statement spans at most {MAX_DAYS} days")
        return p

    def label(self) -> str:
        return f"{self.start.isoformat()} — {self.end.isoformat()}"


@dataclass
class KindTotal:
    kind: str
    count: int = 0
    amount_fen: int = 0
    wallet_fen: int = 0


@dataclass
class Statement:
    user_id: int
    username: str
    period: Period
    lines: list[dict[str, Any]]  # in the period, oldest first, each with its confirmation id
    opening_wallet_fen: int
    closing_wallet_fen: int
    lines_total_fen: int
    wallet_change_fen: int
    totals: list[KindTotal] = field(default_factory=list)
    ledger_available_fen: int | None = None  # custody ledger now (only for a period to today)
    ledger_pending_out_fen: int | None = None
    generated_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "username": self.username,
            "start": self.period.start.isoformat(),
            "end": self.period.end.isoformat(),
            "opening_wallet_fen": self.opening_wallet_fen,
            "closing_wallet_fen": self.closing_wallet_fen,
            "lines_total_fen": self.lines_total_fen,
            "wallet_change_fen": self.wallet_change_fen,
            "ledger_available_fen": self.ledger_available_fen,
            "ledger_pending_out_fen": self.ledger_pending_out_fen,
            "totals": [t.__dict__ for t in self.totals],
            "lines": self.lines,
            "generated_at": self.generated_at,
        }


def _numbered(p: Platform, user_id: int) -> tuple[list[dict[str, Any]], str]:
    """A copy of the user's lines, each with its confirmation id, and today's trade date."""
    with p.lock:
        raw = list(p.history.get(user_id, []))
        today = p.market.today.isoformat()
    return [{**x, "confirmation_id": f"L{i + 1}"} for i, x in enumerate(raw)], today


def ledger_wallet(p: Platform, user_id: int) -> tuple[int, int]:
    """(available, payouts in transit) of the user's custody ledger account, in fen."""
    try:
        acc_id = p.custody.investor_account_id(investor_id(user_id))
    except NotFound:
        return 0, 0
    [acc] = p.ledger.lookup_accounts([acc_id])
    return acc.credits_posted - acc.debits_posted - acc.debits_pending, acc.debits_pending


def build_statement(p: Platform, user_id: int, username: str, period: Period) -> Statement:
    lines, today = _numbered(p, user_id)
    start, end = period.start.isoformat(), period.end.isoformat()
    before = [x for x in lines if x["trade_date"] < start]
    inside = [x for x in lines if start <= x["trade_date"] <= end]
    opening = sum(wallet_effect_fen(x) for x in before)
    totals: dict[str, KindTotal] = {}
    for x in inside:
        t = totals.setdefault(x["kind"], KindTotal(x["kind"]))
        t.count += 1
        t.amount_fen += int(x["amount_fen"])
        t.wallet_fen += wallet_effect_fen(x)
    change = sum(t.wallet_fen for t in totals.values())
    st = Statement(
        user_id=user_id,
        username=username,
        period=period,
        lines=inside,
        opening_wallet_fen=opening,
        closing_wallet_fen=opening + change,
        lines_total_fen=sum(int(x["amount_fen"]) for x in inside),
        wallet_change_fen=change,
        totals=sorted(totals.values(), key=lambda t: t.kind),
        generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    if end >= today:  # the period reaches today: the ledger's balance is its closing balance
        st.ledger_available_fen, st.ledger_pending_out_fen = ledger_wallet(p, user_id)
    return st


# ------------------------------------------------------------------------- confirmations


def _line_details(x: dict[str, Any]) -> dict[str, Any]:
    skip = {"at", "trade_date", "kind", "amount_fen", "confirmation_id", "cmd"}
    return {k: v for k, v in x.items() if k not in skip}


def confirmations(p: Platform, user_id: int) -> list[dict[str, Any]]:
    """Every confirmation of the user, newest first: one per money or share movement (line)
    and one per order of the user's margin account (liquidations included)."""
    lines, _ = _numbered(p, user_id)
    out = [
        {"id": x["confirmation_id"], "kind": x["kind"], "trade_date": x["trade_date"],
         "at": x["at"], "amount_fen": int(x["amount_fen"]), "details": _line_details(x)}
        for x in lines if x["kind"] in CONFIRMED_KINDS
    ]  # fmt: skip
    with p.lock:
        accounts = {a.id for a in p.accounts.values() if a.owner_id == user_id}
        orders = [o for o in p.orders if o.account_id in accounts]
        for o in orders:
            out.append({
                "id": f"O{o.id}", "kind": "liquidation" if o.liquidation else "order",
                "trade_date": o.trade_date, "at": o.trade_date,
                "amount_fen": -o.filled_value_fen - o.fees_fen if o.side == "buy"
                else o.filled_value_fen - o.fees_fen,
                "details": {"account_id": o.account_id, "side": o.side, "code": o.code,
                            "quantity": o.quantity, "limit_price_fen": o.limit_price_fen,
                            "filled_quantity": o.filled_qty, "fees_fen": o.fees_fen,
                            "status": o.status, "order_id": o.id},
            })  # fmt: skip
    out.sort(key=lambda c: (c["trade_date"], c["id"][0] == "L"), reverse=True)
    return out


def confirmation(p: Platform, user_id: int, conf_id: str) -> dict[str, Any]:
    for c in confirmations(p, user_id):
        if c["id"] == conf_id:
            return c
    raise NotFound(f"confirmation {conf_id} not found")


# ------------------------------------------------------------------------------ renderers


def _y(fen: int | None) -> str:
    return "" if fen is None else format_yuan(int(fen))


def _detail_text(d: dict[str, Any], lang: str) -> str:
    parts = []
    for k, v in d.items():
        value = (
            format_yuan(v)
            if k.endswith("_fen") and isinstance(v, int)
            else detail_value(lang, k, v)
        )
        parts.append(f"{detail_label(lang, k)}={value}")
    return "; ".join(parts)


def statement_csv(st: Statement, lang: str) -> str:
    """One CSV: a header block, the lines, the totals by kind; amounts in 元 to the fen."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([tr(lang, "statement_title"), st.username, st.period.label()])
    w.writerow([tr(lang, "opening_wallet"), _y(st.opening_wallet_fen)])
    w.writerow([])
    w.writerow([tr(lang, "confirmation_no"), tr(lang, "trade_date"), tr(lang, "kind"),
                tr(lang, "amount"), tr(lang, "wallet_effect"), tr(lang, "details")])  # fmt: skip
    for x in st.lines:
        w.writerow([x["confirmation_id"], x["trade_date"], kind_label(lang, x["kind"]),
                    _y(x["amount_fen"]), _y(wallet_effect_fen(x)),
                    _detail_text(_line_details(x), lang)])  # fmt: skip
    w.writerow([])
    w.writerow([tr(lang, "totals_by_kind"), tr(lang, "count"), tr(lang, "amount"),
                tr(lang, "wallet_effect")])  # fmt: skip
    for t in st.totals:
        w.writerow([kind_label(lang, t.kind), t.count, _y(t.amount_fen), _y(t.wallet_fen)])
    w.writerow([tr(lang, "lines_total"), len(st.lines), _y(st.lines_total_fen),
                _y(st.wallet_change_fen)])  # fmt: skip
    w.writerow([tr(lang, "closing_wallet"), _y(st.closing_wallet_fen)])
    if st.ledger_available_fen is not None:
        w.writerow([tr(lang, "ledger_available"), _y(st.ledger_available_fen)])
        w.writerow([tr(lang, "ledger_pending_out"), _y(st.ledger_pending_out_fen)])
    return buf.getvalue()


def confirmations_csv(items: list[dict[str, Any]], lang: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([tr(lang, "confirmation_no"), tr(lang, "trade_date"), tr(lang, "kind"),
                tr(lang, "amount"), tr(lang, "details")])  # fmt: skip
    for c in items:
        w.writerow([c["id"], c["trade_date"], kind_label(lang, c["kind"]), _y(c["amount_fen"]),
                    _detail_text(c["details"], lang)])  # fmt: skip
    return buf.getvalue()


def statement_pdf(st: Statement, lang: str) -> bytes:
    from crowdleverage.reports.pdf import Doc

    doc = Doc(f"{tr(lang, 'statement_title')} {st.username}")
    doc.title(tr(lang, "statement_title"))
    doc.pairs([
        (tr(lang, "customer"), f"{st.username} (#{st.user_id})"),
        (tr(lang, "period"), st.period.label()),
        (tr(lang, "generated_at"), st.generated_at),
        (tr(lang, "opening_wallet"), _y(st.opening_wallet_fen)),
        (tr(lang, "closing_wallet"), _y(st.closing_wallet_fen)),
        (tr(lang, "wallet_change"), _y(st.wallet_change_fen)),
        (tr(lang, "lines_total"), _y(st.lines_total_fen)),
    ])  # fmt: skip
    if st.ledger_available_fen is not None:
        doc.pairs([(tr(lang, "ledger_available"), _y(st.ledger_available_fen)),
                   (tr(lang, "ledger_pending_out"), _y(st.ledger_pending_out_fen))])  # fmt: skip
    doc.table(
        [tr(lang, "kind"), tr(lang, "count"), tr(lang, "amount"), tr(lang, "wallet_effect")],
        [[kind_label(lang, t.kind), str(t.count), _y(t.amount_fen), _y(t.wallet_fen)]
         for t in st.totals],
        widths=(0.4, 0.15, 0.225, 0.225),
    )  # fmt: skip
    doc.table(
        [tr(lang, "confirmation_no"), tr(lang, "trade_date"), tr(lang, "kind"),
         tr(lang, "amount"), tr(lang, "details")],
        [[x["confirmation_id"], x["trade_date"], kind_label(lang, x["kind"]),
          _y(x["amount_fen"]), _detail_text(_line_details(x), lang)] for x in st.lines],
        widths=(0.1, 0.14, 0.16, 0.16, 0.44),
    )  # fmt: skip
    doc.note(tr(lang, "statement_note"))
    return doc.render()


def confirmation_pdf(c: dict[str, Any], username: str, lang: str) -> bytes:
    from crowdleverage.reports.pdf import Doc

    doc = Doc(f"{tr(lang, 'confirmation')} {c['id']}")
    doc.title(f"{tr(lang, 'confirmation')} · {kind_label(lang, c['kind'])}")
    doc.pairs([
        (tr(lang, "confirmation_no"), c["id"]),
        (tr(lang, "customer"), username),
        (tr(lang, "trade_date"), c["trade_date"]),
        (tr(lang, "kind"), kind_label(lang, c["kind"])),
        (tr(lang, "amount"), _y(c["amount_fen"])),
        *[(detail_label(lang, k),
           format_yuan(v) if k.endswith("_fen") and isinstance(v, int)
           else detail_value(lang, k, v))
          for k, v in c["details"].items()],
    ])  # fmt: skip
    doc.note(tr(lang, "statement_note"))
    return doc.render()
