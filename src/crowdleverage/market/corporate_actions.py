"""Corporate actions (除权除息): the file format and its strict loader, the exchange's ex-rights
reference price, a holder's entitlement, dividend tax by holding period, and inference of
actions from bar files.

The file is CSV, UTF-8, header required, any column order, one row per security and ex-date:

    code,ex_date,record_date,pay_date,bonus_per_10,transfer_per_10,cash_per_10_yuan,source

- code: a six-digit A-share code (indices have no corporate actions).
- ex_date (除权除息日): an XSHG trading day; holdings change at its open.
- record_date (股权登记日): the trading day before ex_date (holders at its close are entitled).
- pay_date (派息日): the day cash dividends reach holders, an XSHG trading day on or after
  ex_date (CSDC Shenzhen pays on the ex-date itself).
- bonus_per_10 (送股) and transfer_per_10 (转增): shares added per 10 held, as the notices
  publish them ("每10股转增8.000000股"); cash_per_10_yuan (派息): cash per 10 shares in 元,
  **before tax**, as published ("每10股派1.000000元人民币现金(含税)"). Non-negative decimals with
  at most six decimal places; at least one of the three is positive.
- source: where the row comes from, never empty: `published: <notice URL>` or
  `inferred: <bar file> (...)`.

Rights issues (配股) are not supported: subscribing is the holder's decision and payment, not
an entitlement the custodian can apply; the loader has no column for them.

Malformed input is rejected whole with the file, the line and the reason; nothing is loaded.

Arithmetic is in integers. Per-10 figures are held in millionths (`*_u`). Rounding:
- the reference price is rounded half-up to the fen, the A-share price tick (the exchanges'
  rule; checked against every ex-date of the shipped unadjusted sample, e.g. 000056 on
  2016-07-08: 25.57 / 2 = 12.785 → 12.79, the exchange's published previous close);
- new holdings are rounded down (fractional shares are not credited: CSDC allocates the
  fractions of all holders by size, 零碎股, which a broker cannot reproduce per account);
- gross cash is rounded down to the fen and tax up (the borrower never receives more than due).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

from crowdleverage.domain.errors import DataFileError, InvalidInput, OutOfRange
from crowdleverage.market.bars import Bar, classify_code, read_text_file, with_band
from crowdleverage.market.calendar import xshg

COLUMNS = (
    "code",
    "ex_date",
    "record_date",
    "pay_date",
    "bonus_per_10",
    "transfer_per_10",
    "cash_per_10_yuan",
    "source",
)
MICRO = 1_000_000  # per-10 figures carry at most six decimals, as the CSDC notices
TEN_U = 10 * MICRO  # "per 10 shares" in millionths
PAR_YUAN = 1  # par value of an A share: the taxable amount of a bonus share (送股)
_SOURCE_RE = re.compile(r"^(published|inferred): \S.*$")


@dataclass(frozen=True, slots=True)
class CorporateAction:
    code: str
    ex_date: dt.date
    record_date: dt.date
    pay_date: dt.date
    bonus_per_10_u: int  # 送股 per 10 shares, millionths
    transfer_per_10_u: int  # 转增 per 10 shares, millionths
    cash_per_10_u: int  # 元 per 10 shares before tax, millionths (= fen per share × 1000)
    source: str

    @property
    def key(self) -> tuple[str, dt.date]:
        return self.code, self.ex_date

    @property
    def adds_shares(self) -> bool:
        return self.bonus_per_10_u + self.transfer_per_10_u > 0

    @property
    def pays_cash(self) -> bool:
        return self.cash_per_10_u > 0

    @property
    def cash_per_share_fen_x1000(self) -> int:
        """Cash per share before tax in thousandths of a fen (exact)."""
        return self.cash_per_10_u  # 元/10 × 10^6 = fen/share × 10^3

    def new_quantity(self, qty: int) -> int:
        """Holdings after the bonus and transfer shares, rounded down."""
        if qty < 0:
            raise InvalidInput("a holding cannot be negative")
        return qty * (TEN_U + self.bonus_per_10_u + self.transfer_per_10_u) // TEN_U

    def bonus_shares(self, qty: int) -> int:
        """Bonus shares (送股, taxable at par) among the shares added, rounded down."""
        return qty * self.bonus_per_10_u // TEN_U

    def gross_cash_fen(self, qty: int) -> int:
        """Cash dividend before tax for `qty` shares held at the record date, rounded down."""
        return qty * self.cash_per_10_u // (TEN_U // 100)

    def reference_price_fen(self, prev_close_fen: int) -> int:
        """除权除息参考价 = (previous close − cash per share) / (1 + shares added per share),
        half-up to the fen."""
        if prev_close_fen <= 0:
            raise InvalidInput(f"previous close must be positive, got {prev_close_fen} fen")
        # (P − D) / (1 + r) with D = cash_u / 10^5 fen and r = (b + t) / TEN_U:
        num = (prev_close_fen * 100_000 - self.cash_per_10_u) * TEN_U
        den = 100_000 * (TEN_U + self.bonus_per_10_u + self.transfer_per_10_u)
        if num <= 0:
            raise OutOfRange(
                f"{self.code} on {self.ex_date}: the dividend is not below the previous close "
                f"{prev_close_fen} fen"
            )
        return (2 * num + den) // (2 * den)

    def reference(self, account: str, leg: str) -> bytes:
        """The deterministic one-use chain reference of this action for one account and leg
        ("shares" or "cash"): applying the same leg twice is refused by the chain."""
        if leg not in ("shares", "cash"):
            raise InvalidInput(f"unknown corporate-action leg {leg!r}")
        text = f"corporate-action:{self.code}:{self.ex_date.isoformat()}:{leg}:{account.lower()}"
        return hashlib.sha256(text.encode()).digest()

    def row(self) -> list[str]:
        return [
            self.code,
            self.ex_date.isoformat(),
            self.record_date.isoformat(),
            self.pay_date.isoformat(),
            _fmt_u(self.bonus_per_10_u),
            _fmt_u(self.transfer_per_10_u),
            _fmt_u(self.cash_per_10_u),
            self.source,
        ]

    def as_dict(self) -> dict[str, object]:
        return dict(zip(COLUMNS, self.row(), strict=True))


def _fmt_u(value_u: int) -> str:
    d = Decimal(value_u) / MICRO
    text = f"{d:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _micro(value: str, column: str) -> int:
    v = value.strip()
    if v == "":
        return 0
    try:
        d = Decimal(v)
    except InvalidOperation as exc:
        raise ValueError(f"{column} {value!r} is not a number") from exc
    if not d.is_finite() or d < 0:
        raise ValueError(f"{column} {value!r} must be a non-negative number")
    scaled = d * MICRO
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{column} {value!r} has more than six decimal places")
    return int(scaled)


def _day(value: str, column: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"{column} {value!r} is not YYYY-MM-DD") from exc


def parse_row(rec: dict[str, str]) -> CorporateAction:
    """One CSV record → CorporateAction, or ValueError with the reason."""
    try:
        code, is_index = classify_code(rec["code"])
    except InvalidInput as exc:
        raise ValueError(exc.message) from exc
    if is_index:
        raise ValueError(f"{code} is an index: indices have no corporate actions")
    ex, record, pay = (_day(rec[c], c) for c in ("ex_date", "record_date", "pay_date"))
    cal = xshg()
    for col, day in (("ex_date", ex), ("record_date", record), ("pay_date", pay)):
        if not cal.is_trading_day(day):
            raise ValueError(f"{col} {day} is not an XSHG trading day")
    if record != cal.previous_trading_day(ex):
        raise ValueError(
            f"record_date {record} must be the trading day before ex_date {ex} "
            f"({cal.previous_trading_day(ex)})"
        )
    if pay < ex:
        raise ValueError(f"pay_date {pay} is before ex_date {ex}")
    bonus = _micro(rec["bonus_per_10"], "bonus_per_10")
    transfer = _micro(rec["transfer_per_10"], "transfer_per_10")
    cash = _micro(rec["cash_per_10_yuan"], "cash_per_10_yuan")
    if bonus + transfer + cash == 0:
        raise ValueError("no bonus, transfer or cash: not a corporate action")
    source = rec["source"].strip()
    if not _SOURCE_RE.match(source):
        raise ValueError("source must read 'published: <notice>' or 'inferred: <how>'")
    return CorporateAction(code, ex, record, pay, bonus, transfer, cash, source)


def read_actions(path: Path | str) -> list[CorporateAction]:
    """Load a corporate-action file, all or nothing, sorted by (ex_date, code)."""
    return parse_actions(read_text_file(path), str(path))


def parse_actions(text: str, name: str = "<corporate actions>") -> list[CorporateAction]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataFileError(name, 1, f"missing column(s): {', '.join(missing)}")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise DataFileError(name, 1, f"unknown column(s): {', '.join(unknown)}")
    reader.fieldnames = header
    out: list[CorporateAction] = []
    seen: set[tuple[str, dt.date]] = set()
    for rec in reader:
        line = reader.line_num
        if None in rec or any(v is None for v in rec.values()):
            raise DataFileError(name, line, "wrong number of fields")
        try:
            action = parse_row(rec)
        except ValueError as exc:
            raise DataFileError(name, line, str(exc)) from exc
        if action.key in seen:
            raise DataFileError(name, line, f"duplicate row for {action.code} on {action.ex_date}")
        seen.add(action.key)
        out.append(action)
    if not out:
        raise DataFileError(name, None, "no rows")
    out.sort(key=lambda a: (a.ex_date, a.code))
    return out


def write_actions(actions: Iterable[CorporateAction], path: Path | str) -> int:
    p = Path(path)
    tmp = p.with_suffix(p.suffix + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for a in sorted(actions, key=lambda a: (a.ex_date, a.code)):
            w.writerow(a.row())
            n += 1
    tmp.replace(p)
    return n


# ── the reference price in the market data ────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class ReferenceCheck:
    """An action against the bar file: the previous trading day's close, the reference price
    the action implies, and the previous close the bar file carries on the ex-date."""

    action: CorporateAction
    prev_close_fen: int | None  # None: the code has no bar before the ex-date
    reference_fen: int | None
    bar_prev_close_fen: int | None  # None: no bar on the ex-date

    @property
    def status(self) -> str:
        if self.bar_prev_close_fen is None or self.reference_fen is None:
            return "no-bars"
        if self.bar_prev_close_fen == self.reference_fen:
            return "matches"
        if self.bar_prev_close_fen == self.prev_close_fen:
            return "unadjusted"  # the file carries the plain previous close
        return "differs"

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.action.code,
            "ex_date": self.action.ex_date.isoformat(),
            "prev_close_fen": self.prev_close_fen,
            "reference_fen": self.reference_fen,
            "bar_prev_close_fen": self.bar_prev_close_fen,
            "status": self.status,
        }


def _series(bars: Iterable[Bar]) -> dict[str, list[Bar]]:
    per: dict[str, list[Bar]] = {}
    for b in bars:
        if not b.is_index:
            per.setdefault(b.code, []).append(b)
    for s in per.values():
        s.sort(key=lambda b: b.date)
    return per


def check_references(
    bars: Sequence[Bar], actions: Sequence[CorporateAction]
) -> list[ReferenceCheck]:
    per = _series(bars)
    out = []
    for a in actions:
        series = per.get(a.code, [])
        on = next((b for b in series if b.date == a.ex_date), None)
        before = [b for b in series if b.date < a.ex_date]
        prev = before[-1].close if before else None
        ref = a.reference_price_fen(prev) if prev is not None else None
        out.append(ReferenceCheck(a, prev, ref, on.prev_close if on else None))
    return out


def with_reference_prices(bars: Sequence[Bar], actions: Sequence[CorporateAction]) -> list[Bar]:
    """The bars with each ex-date's previous close set to the ex-rights reference price (and
    the day's band recomputed from it), so that the oracle opens the ex-date at the reference
    price. A bar that already carries it (unadjusted exchange data) is kept; one that carries
    neither the previous close nor the reference price is an error (the data and the action
    disagree). Apply actions to unadjusted data only: forward-adjusted (前复权) series already
    absorb them."""
    checks = {c.action.key: c for c in check_references(bars, actions)}
    out = []
    for b in bars:
        c = checks.get((b.code, b.date))
        if c is not None and c.status == "differs":
            raise InvalidInput(
                f"{b.code} on {b.date}: the bar's previous close {b.prev_close} fen is neither "
                f"the previous close {c.prev_close_fen} nor the reference price "
                f"{c.reference_fen} of the corporate action ({c.action.source})"
            )
        if c is not None and c.status == "unadjusted" and c.reference_fen is not None:
            b = with_band(replace(b, prev_close=c.reference_fen, band=None))
        out.append(b)
    return out


# ── inference from bar files ──────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Proposal:
    """A day whose previous close (as the bar file carries it) differs from the previous
    trading day's close: a candidate ex-date, for review."""

    code: str
    ex_date: dt.date
    prev_close_fen: int  # the previous bar's close
    reference_fen: int  # the ex-date bar's previous close
    kind: str  # "shares", "shares+cash", "cash", "increase"
    shares_per_10: int | None  # whole shares per 10 that best explain the drop
    cash_per_share_fen: int | None  # the cash per share left to explain, rounded half-up
    known: bool = False  # covered by an action of the given file

    @property
    def factor(self) -> float:
        return self.reference_fen / self.prev_close_fen

    @property
    def change_bps(self) -> int:
        return int((self.reference_fen - self.prev_close_fen) * 10_000 / self.prev_close_fen)

    @property
    def note(self) -> str:
        if self.kind == "increase":
            return "reference above the previous close: not a bonus or dividend (data fix?)"
        parts = []
        if self.shares_per_10:
            parts.append(f"looks like {self.shares_per_10} bonus/transfer shares per 10")
        if self.cash_per_share_fen:
            parts.append(f"cash ≈ {self.cash_per_share_fen} fen per share")
        text = " + ".join(parts)
        if self.kind == "shares+cash":
            text += " (a share ratio and cash cannot be told apart from prices alone)"
        return text + "; check the notice"

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "ex_date": self.ex_date.isoformat(),
            "prev_close_fen": self.prev_close_fen,
            "reference_fen": self.reference_fen,
            "factor": round(self.factor, 6),
            "change_bps": self.change_bps,
            "kind": self.kind,
            "shares_per_10": self.shares_per_10,
            "cash_per_share_fen": self.cash_per_share_fen,
            "known": self.known,
            "note": self.note,
        }


MAX_SHARES_PER_10 = 30


def explain(prev_close_fen: int, reference_fen: int) -> tuple[str, int | None, int | None]:
    """(kind, whole shares per 10, cash per share in fen) explaining a reference price below
    the previous close: the most shares per 10 that leave a non-negative cash part (within
    the reference's half-fen rounding), then the cash."""
    p, r = prev_close_fen, reference_fen
    if r >= p:
        return "increase", None, None
    best = 0
    for k in range(1, MAX_SHARES_PER_10 + 1):
        # cash left D = P − R × (1 + k/10); R is rounded, so allow −½ fen × (1 + k/10)
        d10 = 10 * p - r * (10 + k)  # = 10 × D
        if 2 * d10 >= -(10 + k):
            best = k
    d10 = 10 * p - r * (10 + best)
    cash = max(0, (d10 + 5) // 10)
    if best == 0:
        return "cash", None, cash
    return ("shares+cash" if cash > 0 else "shares"), best, cash or None


def infer_actions(
    bars: Sequence[Bar], known: Sequence[CorporateAction] = (), min_change_bps: int = 0
) -> list[Proposal]:
    """Days where a code's previous close differs from its previous bar's close, sorted by
    (date, code). `min_change_bps` drops smaller differences (e.g. rounding of adjusted data)."""
    keys = {a.key for a in known}
    out = []
    for code, series in _series(bars).items():
        for prev, bar in itertools.pairwise(series):
            if bar.prev_close == prev.close:
                continue
            kind, shares, cash = explain(prev.close, bar.prev_close)
            p = Proposal(
                code, bar.date, prev.close, bar.prev_close, kind, shares, cash,
                (code, bar.date) in keys,
            )  # fmt: skip
            if abs(p.change_bps) >= min_change_bps:
                out.append(p)
    out.sort(key=lambda p: (p.ex_date, p.code))
    return out


# ── dividend tax (股息红利差别化个人所得税) ────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class TaxRegime:
    """Individual dividend tax on listed A shares by holding period, in force from a date."""

    effective_from: dt.date
    notice: str
    up_to_1_month_bps: int  # held 1 month or less (含1个月)
    up_to_1_year_bps: int  # held over 1 month, up to 1 year (含1年)
    over_1_year_bps: int  # held over 1 year


# The circulars are cited by number (their text was not in the reference index); the rates
# are confirmed by companies' implementation notices, which state the tax per 10 shares by
# holding period:
# - 拓日新能 002218, 2015-05-28 (0.50 元/10): withheld 0.025 (5%), top-up 0.075 (≤ 1 month)
#   or 0.025 (1 month–1 year), none over a year → 20% / 10% / 5%
#   (vip.stock.finance.sina.com.cn/corp/view/vCB_AllBulletinDetail.php?id=1795527&stockid=002218);
#   圣阳股份 002580, 2015-05-04, the same schedule on 1.00 元/10;
# - 万年青 000789, 2016-05-19 (1.00 元/10): top-up 0.20 (≤ 1 month), 0.10 (1 month–1 year),
#   none over a year, nothing withheld → 20% / 10% / 0% (xkdiek.com/Print.aspx?id=146130).
# Practice since 2013 taxes at the sale by the holding period then; the platform settles at
# payment on the holding period to the pay date (never less than the short-holding rate
# without a lot history), so a borrower who holds on may be over-withheld; no refund is
# computed.
TAX_REGIMES = (
    # 财税〔2012〕85号: 20% taxed at 100% / 50% / 25% of the dividend
    TaxRegime(dt.date(2013, 1, 1), "财税〔2012〕85号", 2_000, 1_000, 500),
    # 财税〔2015〕101号: held over a year exempt, from 2015-09-08
    TaxRegime(dt.date(2015, 9, 8), "财税〔2015〕101号", 2_000, 1_000, 0),
)


def _add_months(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")


def regime_on(day: dt.date) -> TaxRegime:
    live = [r for r in TAX_REGIMES if r.effective_from <= day]
    if not live:
        raise OutOfRange(
            f"no dividend tax regime is defined before {TAX_REGIMES[0].effective_from}"
        )
    return live[-1]


def tax_rate_bps(acquired: dt.date, paid: dt.date) -> int:
    """The rate in force on `paid` for shares acquired on `acquired`, held until `paid`."""
    if acquired > paid:
        raise InvalidInput(f"shares acquired on {acquired} are not held on {paid}")
    r = regime_on(paid)
    if paid <= _add_months(acquired, 1):
        return r.up_to_1_month_bps
    if paid <= _add_months(acquired, 12):
        return r.up_to_1_year_bps
    return r.over_1_year_bps


@dataclass(frozen=True, slots=True)
class Lot:
    """Shares of one security held since a date (first in, first out)."""

    qty: int
    acquired: dt.date


@dataclass(frozen=True, slots=True)
class Entitlement:
    """What one account receives from one action for `qty` shares held at the record date."""

    qty: int
    new_qty: int
    gross_cash_fen: int
    tax_fen: int  # withheld from the cash
    tax_unwithheld_fen: int  # due on bonus shares beyond the cash (not collected here)

    @property
    def net_cash_fen(self) -> int:
        return self.gross_cash_fen - self.tax_fen


def entitlement(
    action: CorporateAction, lots: Sequence[Lot], paid: dt.date | None = None
) -> Entitlement:
    """Shares and net cash for the lots held at the record date. Tax applies to the cash and
    to bonus shares at par, lot by lot at the rate of each lot's holding period on the pay
    date, rounded up; transfer shares (转增, from capital reserve) are not taxed."""
    paid = paid or action.pay_date
    qty = sum(lot.qty for lot in lots)
    gross = action.gross_cash_fen(qty)
    due = 0
    for lot in lots:
        rate = tax_rate_bps(lot.acquired, paid)
        # taxable 元 per 10 shares (cash + bonus shares at par) × qty, in millionths:
        # fen = taxable_x / 10^5
        taxable_x = lot.qty * (action.cash_per_10_u + action.bonus_per_10_u * PAR_YUAN)
        due += -(-taxable_x * rate // (100_000 * 10_000))
    tax = min(due, gross)
    return Entitlement(qty, action.new_quantity(qty), gross, tax, due - tax)
