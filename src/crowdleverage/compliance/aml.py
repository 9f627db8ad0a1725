"""AML transaction monitoring rules over custody ledger entries and chain events.

The rules are pure functions of a list of `Transaction`s and the customers' KYC facts; the
service turns their `Alert`s into cases. Thresholds are configurable (`AmlConfig`); the defaults
follow the PBoC rules on large-value and suspicious transaction reports (中国人民银行令〔2016〕
第3号): cash of 50,000 CNY or more in a day; transfers of a natural person's account of 500,000
CNY or more in a day (domestic) or 200,000 CNY or more (cross-border).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from rapidfuzz import fuzz

from crowdleverage.compliance.normalize import name_forms
from crowdleverage.domain.errors import InvalidInput


class TxnKind(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRADE = "trade"  # buy or sell value through the broker
    SUBSCRIBE = "subscribe"
    REDEEM = "redeem"


class Channel(StrEnum):
    TRANSFER = "transfer"
    CASH = "cash"
    CROSS_BORDER = "cross_border"


@dataclass(frozen=True, slots=True)
class Transaction:
    txn_id: str  # the ledger transfer id or chain event id (idempotency key)
    identity_id: str
    kind: TxnKind
    amount_fen: int
    at: datetime  # timezone-aware
    channel: Channel = Channel.TRANSFER
    payer_name: str | None = None  # for deposits: the remitter on the bank statement
    payer_account_sha256: str | None = None
    source: str = "custody"  # "custody" ledger or "chain" event

    def __post_init__(self) -> None:
        if self.amount_fen <= 0:
            raise InvalidInput(f"transaction {self.txn_id}: amount_fen must be positive")
        if self.at.tzinfo is None:
            raise InvalidInput(f"transaction {self.txn_id}: time must carry a timezone")


@dataclass(frozen=True, slots=True)
class Customer:
    identity_id: str
    name: str
    account_sha256s: frozenset[str]  # the customer's own registered bank accounts


@dataclass(frozen=True, slots=True)
class AmlConfig:
    cash_large_fen: int = 5_000_000  # 5万元 cash per day
    transfer_large_fen: int = 50_000_000  # 50万元 per day, natural person, domestic
    cross_border_large_fen: int = 20_000_000  # 20万元 per day, cross-border
    structuring_band_bps: int = 1_000  # "just under": within 10% below the threshold
    structuring_min_count: int = 3
    structuring_window: timedelta = timedelta(days=7)
    rapid_window: timedelta = timedelta(hours=72)
    rapid_out_ratio_bps: int = 8_000  # ≥ 80% of the deposit leaves again
    rapid_max_trade_ratio_bps: int = 2_000  # with ≤ 20% of it traded
    rapid_min_deposit_fen: int = 1_000_000  # ignore deposits under 1万元
    velocity_window: timedelta = timedelta(hours=24)
    velocity_max_count: int = 10  # money movements in the window
    velocity_baseline_days: int = 30
    velocity_min_history: timedelta = timedelta(days=14)  # no baseline without history
    velocity_amount_multiple: int = 10  # window total vs average daily total of the baseline
    velocity_min_amount_fen: int = 10_000_000  # only amounts above 10万元 count as unusual
    payer_name_min_score: int = 90
    freeze_on: frozenset[str] = field(default_factory=lambda: frozenset({"structuring"}))

    def large_threshold_fen(self, channel: Channel) -> int:
        return {
            Channel.CASH: self.cash_large_fen,
            Channel.TRANSFER: self.transfer_large_fen,
            Channel.CROSS_BORDER: self.cross_border_large_fen,
        }[channel]


@dataclass(frozen=True, slots=True)
class Alert:
    rule: str
    identity_id: str
    txn_ids: tuple[str, ...]
    total_amount_fen: int
    first_at: datetime
    last_at: datetime
    description: str
    dedup_key: str

    def details(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "txn_ids": list(self.txn_ids),
            "total_amount_fen": self.total_amount_fen,
            "first_txn_at": self.first_at.isoformat(),
            "last_txn_at": self.last_at.isoformat(),
            "description": self.description,
        }


_MONEY_MOVES = (TxnKind.DEPOSIT, TxnKind.WITHDRAWAL)


def _alert(rule: str, txns: Sequence[Transaction], description: str, key: str) -> Alert:
    return Alert(
        rule,
        txns[0].identity_id,
        tuple(t.txn_id for t in txns),
        sum(t.amount_fen for t in txns),
        min(t.at for t in txns),
        max(t.at for t in txns),
        description,
        f"aml:{rule}:{txns[0].identity_id}:{key}",
    )


def large_value(txns: Sequence[Transaction], cfg: AmlConfig) -> list[Alert]:
    """Per customer, day (Asia/Shanghai) and channel: single or daily total at or above the
    reporting threshold."""
    groups: dict[tuple[str, str, Channel], list[Transaction]] = defaultdict(list)
    for t in txns:
        if t.kind in _MONEY_MOVES:
            day = (t.at + timedelta(hours=8)).date().isoformat()  # reporting day, UTC+8
            groups[(t.identity_id, day, t.channel)].append(t)
    out: list[Alert] = []
    for (_, day, channel), group in sorted(groups.items()):
        total = sum(t.amount_fen for t in group)
        limit = cfg.large_threshold_fen(channel)
        if total >= limit:
            desc = f"{channel.value} total {total} fen on {day} ≥ large-value threshold {limit} fen"
            out.append(_alert("large_value", group, desc, f"{day}:{channel.value}"))
    return out


def structuring(txns: Sequence[Transaction], cfg: AmlConfig) -> list[Alert]:
    """Several deposits just under the reporting threshold inside a window, together over it."""
    out: list[Alert] = []
    for deps in _by_customer(txns, (TxnKind.DEPOSIT,)).values():
        for channel in Channel:
            limit = cfg.large_threshold_fen(channel)
            floor = limit - limit * cfg.structuring_band_bps // 10_000
            near = [t for t in deps if t.channel == channel and floor <= t.amount_fen < limit]
            i = 0
            while i < len(near):
                window = [t for t in near[i:] if t.at - near[i].at <= cfg.structuring_window]
                total = sum(t.amount_fen for t in window)
                if len(window) >= cfg.structuring_min_count and total >= limit:
                    desc = (
                        f"{len(window)} {channel.value} deposits of {floor}..{limit - 1} fen "
                        f"within {cfg.structuring_window}, total {total} fen ≥ {limit} fen"
                    )
                    out.append(_alert("structuring", window, desc, window[0].txn_id))
                    i += len(window)
                else:
                    i += 1
    return out


def rapid_in_out(txns: Sequence[Transaction], cfg: AmlConfig) -> list[Alert]:
    """A deposit mostly withdrawn again within the window, with little trading in between."""
    out: list[Alert] = []
    for items in _by_customer(txns, tuple(TxnKind)).values():
        used: set[str] = set()
        for dep in items:
            if dep.kind != TxnKind.DEPOSIT or dep.amount_fen < cfg.rapid_min_deposit_fen:
                continue
            end = dep.at + cfg.rapid_window
            later = [t for t in items if dep.at <= t.at <= end and t.txn_id != dep.txn_id]
            outs = [t for t in later if t.kind == TxnKind.WITHDRAWAL and t.txn_id not in used]
            out_fen = sum(t.amount_fen for t in outs)
            if not outs or out_fen * 10_000 < dep.amount_fen * cfg.rapid_out_ratio_bps:
                continue
            last_out = max(t.at for t in outs)
            traded = sum(
                t.amount_fen
                for t in later
                if t.kind in (TxnKind.TRADE, TxnKind.SUBSCRIBE) and t.at <= last_out
            )
            if traded * 10_000 > dep.amount_fen * cfg.rapid_max_trade_ratio_bps:
                continue
            used.update(t.txn_id for t in outs)
            desc = (
                f"deposit of {dep.amount_fen} fen, {out_fen} fen withdrawn within "
                f"{last_out - dep.at}, only {traded} fen traded"
            )
            out.append(_alert("rapid_in_out", [dep, *outs], desc, dep.txn_id))
    return out


def velocity(txns: Sequence[Transaction], cfg: AmlConfig) -> list[Alert]:
    """Too many money movements in the window, or an amount far above the customer's usual."""
    out: list[Alert] = []
    for moves in _by_customer(txns, _MONEY_MOVES).values():
        i = 0
        while i < len(moves):
            start = moves[i].at
            window = [t for t in moves[i:] if t.at - start < cfg.velocity_window]
            total = sum(t.amount_fen for t in window)
            base_from = start - timedelta(days=cfg.velocity_baseline_days)
            history = [t for t in moves[:i] if t.at >= base_from]
            avg_day = sum(t.amount_fen for t in history) // cfg.velocity_baseline_days
            reason = ""
            if len(window) > cfg.velocity_max_count:
                reason = f"{len(window)} money movements within {cfg.velocity_window}"
            elif (
                history
                and moves[0].at <= start - cfg.velocity_min_history
                and total >= cfg.velocity_min_amount_fen
                and total > avg_day * cfg.velocity_amount_multiple
            ):
                reason = (
                    f"{total} fen within {cfg.velocity_window}, over "
                    f"{cfg.velocity_amount_multiple}x the {cfg.velocity_baseline_days}-day "
                    f"daily average {avg_day} fen"
                )
            if reason:
                out.append(_alert("velocity", window, reason, window[0].txn_id))
                i += len(window)
            else:
                i += 1
    return out


def third_party_payer(
    txns: Sequence[Transaction], customers: Mapping[str, Customer], cfg: AmlConfig
) -> list[Alert]:
    """A deposit paid from an account that is not the customer's, or by someone else."""
    out: list[Alert] = []
    for t in txns:
        if t.kind != TxnKind.DEPOSIT:
            continue
        cust = customers.get(t.identity_id)
        if cust is None:
            continue
        reasons = []
        if t.payer_account_sha256 and t.payer_account_sha256 not in cust.account_sha256s:
            reasons.append("payer account is not a registered account of the customer")
        if t.payer_name and not same_person(t.payer_name, cust.name, cfg.payer_name_min_score):
            reasons.append(f"payer name {t.payer_name!r} differs from customer {cust.name!r}")
        if reasons:
            out.append(_alert("third_party_payer", [t], "; ".join(reasons), t.txn_id))
    return out


def same_person(a: str, b: str, min_score: int) -> bool:
    """Names equal up to order, case, punctuation, script (王小明 / Wang Xiaoming)."""
    fa, fb = name_forms(a), name_forms(b)
    return any(
        max(fuzz.ratio(x.sorted_key, y.sorted_key), fuzz.ratio(x.compact_key, y.compact_key))
        >= min_score
        for x in fa
        for y in fb
    )


def _by_customer(
    txns: Iterable[Transaction], kinds: tuple[TxnKind, ...]
) -> dict[str, list[Transaction]]:
    groups: dict[str, list[Transaction]] = defaultdict(list)
    for t in txns:
        if t.kind in kinds:
            groups[t.identity_id].append(t)
    for g in groups.values():
        g.sort(key=lambda t: (t.at, t.txn_id))
    return dict(groups)


RULES = ("large_value", "structuring", "rapid_in_out", "velocity", "third_party_payer")


def run_rules(
    txns: Sequence[Transaction],
    customers: Mapping[str, Customer],
    cfg: AmlConfig | None = None,
    rules: Iterable[str] = RULES,
) -> list[Alert]:
    cfg = cfg or AmlConfig()
    seen: set[str] = set()
    for t in txns:
        if t.txn_id in seen:
            raise InvalidInput(f"transaction id {t.txn_id} appears twice")
        seen.add(t.txn_id)
    out: list[Alert] = []
    for rule in rules:
        if rule == "large_value":
            out += large_value(txns, cfg)
        elif rule == "structuring":
            out += structuring(txns, cfg)
        elif rule == "rapid_in_out":
            out += rapid_in_out(txns, cfg)
        elif rule == "velocity":
            out += velocity(txns, cfg)
        elif rule == "third_party_payer":
            out += third_party_payer(txns, customers, cfg)
        else:
            raise InvalidInput(f"unknown AML rule {rule!r}; known: {', '.join(RULES)}")
    return out
