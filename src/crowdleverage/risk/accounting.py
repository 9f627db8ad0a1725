"""Honest end-of-window accounting of a replay (DESIGN.md §6, §11).

Every borrower's result is deposits against final equity; what a borrower could not cover is
followed down the loss waterfall; every fen of loss lands in exactly one layer, and a check
says whether the layers sum to the total.

Valuation at the end of the window (conservative):

- a position whose last bar is tradable is worth quantity × close;
- a position whose last bar closed sealed at limit-down or is halted cannot be sold at the
  close: it is worth quantity × the *next* limit-down price (close × (1 − limit), rounded
  down) and is shown apart as "unsellable" — one more sealed day is assumed, no more.

Per borrower: equity = cash (free and pending) + reserve + positions − debt (principal and
accrued interest). A liquidation that ended in a shortfall wrote the unrecoverable principal
off; that principal is still the borrower's loss: economic equity = equity − written off.
Loss = deposits − economic equity (negative: a gain).

Attribution of a borrower's loss L, in the waterfall's order:
borrower margin (up to the margin deposited) → borrower reserve (up to the reserve deposited)
→ beyond deposits, the deficit: for a liquidation that ended, as the chain booked it (the
liquidation's own penalty, the insurance fund, junior, senior — from the events); for an
account still open (liquidating or not) with negative equity, as the waterfall *would* book it
now: the penalty it paid so far, the insurance fund's balance left, junior, senior (marked
"provisional"). Interest forgiven on a written-off debt is lost income, not a layer.

Money is integer fen; percentages (analytics) are floats.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crowdleverage.market.bars import Bar

LAYERS = ("borrower_margin", "borrower_reserve", "penalty", "insurance", "junior", "senior")
BPS = 10_000
YEAR_DAYS = 365


@dataclass(frozen=True, slots=True)
class WriteOff:
    """A liquidation that ended in a shortfall, as the chain booked it."""

    principal_fen: int
    penalty_fen: int  # of the insurance payment, what came from the liquidation's own penalty
    insurance_fen: int  # the rest of the insurance payment
    junior_fen: int
    senior_fen: int

    @property
    def parts_fen(self) -> int:
        return self.penalty_fen + self.insurance_fen + self.junior_fen + self.senior_fen


@dataclass(frozen=True, slots=True)
class BorrowerEnd:
    """One borrower at the end of the window (from the chain's views and events)."""

    name: str
    tier: int
    margin_deposit_fen: int
    reserve_deposit_fen: int
    cash_fen: int  # free cash + cash pending in buy orders
    reserve_fen: int  # reserve left
    debt_fen: int  # principal and accrued interest, rounded up
    principal_fen: int
    positions: dict[str, int]  # code → shares
    liquidating: bool = False
    penalty_open_fen: int = 0  # penalties paid in the liquidation still open
    write_offs: tuple[WriteOff, ...] = ()


@dataclass(frozen=True, slots=True)
class Mark:
    """How a security is valued at the end."""

    price_fen: int
    sellable: bool


def end_marks(last_bars: dict[str, Bar]) -> dict[str, Mark]:
    """Conservative marks from each code's last bar in the window (see the module doc)."""
    out: dict[str, Mark] = {}
    for code, bar in last_bars.items():
        stuck = bar.halted or bar.sealed_down
        if not stuck:
            out[code] = Mark(bar.close, True)
            continue
        bps = bar.band.limit_bps if bar.band is not None else None
        cut = bps if bps is not None else 1_000
        out[code] = Mark(bar.close * (BPS - cut) // BPS, False)
    return out


@dataclass
class BorrowerResult:
    name: str
    tier: int
    deposits_fen: int
    reserve_used_fen: int
    positions_fen: int  # conservative value of what is still held
    unsellable_fen: int  # the part of it that could not be sold at the end
    equity_fen: int  # economic: written-off principal counted against the borrower
    loss_fen: int  # deposits − equity (negative: a gain)
    liquidating: bool
    written_off_fen: int
    layers_fen: dict[str, int] = field(default_factory=dict)
    provisional_fen: int = 0  # of the deficit, the part attributed as the waterfall would

    @property
    def loss_pct(self) -> float:
        return 100.0 * self.loss_fen / self.deposits_fen if self.deposits_fen else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "loss_pct": round(self.loss_pct, 2)}


def settle_borrower(
    b: BorrowerEnd, marks: dict[str, Mark], *, insurance_left_fen: int, junior_left_fen: int
) -> BorrowerResult:
    """One borrower's result and attribution; the open deficit goes down what is left of
    the insurance fund and the junior tranche (the caller passes them in, worst first)."""
    value = unsellable = 0
    for code, qty in b.positions.items():
        m = marks[code]
        v = qty * m.price_fen
        value += v
        if not m.sellable:
            unsellable += v
    written_off = sum(w.principal_fen for w in b.write_offs)
    equity = b.cash_fen + b.reserve_fen + value - b.debt_fen - written_off
    deposits = b.margin_deposit_fen + b.reserve_deposit_fen
    loss = deposits - equity
    layers = dict.fromkeys(LAYERS, 0)
    provisional = 0
    if loss > 0:
        layers["borrower_margin"] = min(loss, b.margin_deposit_fen)
        layers["borrower_reserve"] = min(loss - layers["borrower_margin"], b.reserve_deposit_fen)
        for w in b.write_offs:  # booked on chain
            layers["penalty"] += w.penalty_fen
            layers["insurance"] += w.insurance_fen
            layers["junior"] += w.junior_fen
            layers["senior"] += w.senior_fen
        open_deficit = max(0, -(equity + written_off))  # negative equity not yet written off
        if open_deficit:
            provisional = open_deficit
            # the fund pays first; the liquidation's own penalty is the first part of it
            pay = min(open_deficit, insurance_left_fen)
            from_penalty = min(pay, b.penalty_open_fen)
            layers["penalty"] += from_penalty
            layers["insurance"] += pay - from_penalty
            rest = open_deficit - pay
            take = min(rest, junior_left_fen)
            layers["junior"] += take
            rest -= take
            layers["senior"] += rest
    return BorrowerResult(
        name=b.name,
        tier=b.tier,
        deposits_fen=deposits,
        reserve_used_fen=b.reserve_deposit_fen - b.reserve_fen,
        positions_fen=value,
        unsellable_fen=unsellable,
        equity_fen=equity,
        loss_fen=loss,
        liquidating=b.liquidating,
        written_off_fen=written_off,
        layers_fen=layers,
        provisional_fen=provisional,
    )


@dataclass
class Accounting:
    borrowers: list[BorrowerResult]
    layers_fen: dict[str, int]
    provisional_fen: int  # of the layers, what an open deficit would take (not yet booked)
    total_loss_fen: int  # Σ losses of the borrowers who lost
    attribution_ok: bool
    problems: list[str]
    open_liquidations: int
    unsellable_fen: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "borrowers": [b.as_dict() for b in self.borrowers],
            "layers_fen": self.layers_fen,
            "provisional_fen": self.provisional_fen,
            "total_loss_fen": self.total_loss_fen,
            "attribution_ok": self.attribution_ok,
            "problems": self.problems,
            "open_liquidations": self.open_liquidations,
            "unsellable_fen": self.unsellable_fen,
        }


def settle(
    borrowers: list[BorrowerEnd],
    marks: dict[str, Mark],
    *,
    insurance_fen: int,
    junior_claim_fen: int,
) -> Accounting:
    """Every borrower's result; open deficits consume the insurance fund's balance and the
    junior claim (before provisions) left, the deepest deficit first (the order does not
    change the total)."""
    problems: list[str] = []
    for b in borrowers:
        for w in b.write_offs:
            if w.parts_fen != w.principal_fen:
                problems.append(
                    f"{b.name}: write-off {w.principal_fen} fen booked as {w.parts_fen} fen"
                )

    def depth(b: BorrowerEnd) -> int:
        return (
            sum(q * marks[c].price_fen for c, q in b.positions.items())
            + b.cash_fen
            + (b.reserve_fen - b.debt_fen)
        )

    ins_left, jun_left = insurance_fen, junior_claim_fen
    results: dict[str, BorrowerResult] = {}
    for b in sorted(borrowers, key=depth):
        r = settle_borrower(b, marks, insurance_left_fen=ins_left, junior_left_fen=jun_left)
        if r.provisional_fen:
            booked = {k: sum(getattr(w, f"{k}_fen") for w in b.write_offs)
                      for k in ("penalty", "insurance", "junior")}  # fmt: skip
            ins_left -= sum(r.layers_fen[k] - booked[k] for k in ("penalty", "insurance"))
            jun_left -= r.layers_fen["junior"] - booked["junior"]
        results[b.name] = r
    ordered = [results[b.name] for b in borrowers]
    totals: Counter[str] = Counter()
    for r in ordered:
        totals.update(r.layers_fen)
        if r.loss_fen > 0 and sum(r.layers_fen.values()) != r.loss_fen:
            problems.append(
                f"{r.name}: loss {r.loss_fen} fen, layers {sum(r.layers_fen.values())} fen"
            )
    layers = {k: totals.get(k, 0) for k in LAYERS}
    total = sum(r.loss_fen for r in ordered if r.loss_fen > 0)
    if sum(layers.values()) != total:
        problems.append(f"layers sum to {sum(layers.values())} fen, losses to {total} fen")
    return Accounting(
        borrowers=ordered,
        layers_fen=layers,
        provisional_fen=sum(r.provisional_fen for r in ordered),
        total_loss_fen=total,
        attribution_ok=not problems,
        problems=problems,
        open_liquidations=sum(r.liquidating for r in ordered),
        unsellable_fen=sum(r.unsellable_fen for r in ordered),
    )


# ── summaries ────────────────────────────────────────────────────────────────────────────


def tier_table(results: list[BorrowerResult]) -> dict[int, dict[str, float]]:
    """Per tier: median, p90 and worst of loss %, and medians of the amounts (元)."""
    out: dict[int, dict[str, float]] = {}
    for tier in sorted({r.tier for r in results}):
        rs = [r for r in results if r.tier == tier]
        loss = np.array([r.loss_pct for r in rs])
        dep = np.array([r.deposits_fen for r in rs], dtype=np.float64) / 100
        eq = np.array([r.equity_fen for r in rs], dtype=np.float64) / 100
        res = np.array([r.reserve_used_fen for r in rs], dtype=np.float64) / 100
        out[tier] = {
            "borrowers": len(rs),
            "loss_pct_median": round(float(np.median(loss)), 2),
            "loss_pct_p90": round(float(np.percentile(loss, 90)), 2),
            "loss_pct_worst": round(float(loss.max()), 2),
            "deposits_yuan_median": round(float(np.median(dep)), 2),
            "deposits_yuan_p90": round(float(np.percentile(dep, 90)), 2),
            "deposits_yuan_max": round(float(dep.max()), 2),
            "equity_yuan_median": round(float(np.median(eq)), 2),
            "equity_yuan_p10": round(float(np.percentile(eq, 10)), 2),
            "equity_yuan_worst": round(float(eq.min()), 2),
            "reserve_used_yuan_median": round(float(np.median(res)), 2),
            "reserve_used_yuan_p90": round(float(np.percentile(res, 90)), 2),
            "reserve_used_yuan_max": round(float(res.max()), 2),
            "deposits_yuan_total": round(float(dep.sum()), 2),
            "loss_pct_of_total_deposits": round(
                float(100 * sum(r.loss_fen for r in rs) / max(1, sum(r.deposits_fen for r in rs))),
                2,
            ),
        }
    return out


@dataclass(frozen=True, slots=True)
class TrancheReturn:
    tranche: str
    invested_fen: int
    nav_fen: int  # the pool's NAV: interest distributed, losses and provisions deducted
    accrued_fen: int  # its share of interest accrued on open debts, not yet paid
    return_booked_pct: float
    return_with_accrued_pct: float
    annualised_with_accrued_pct: float


def tranche_returns(
    *,
    senior_invested_fen: int,
    junior_invested_fen: int,
    senior_nav_fen: int,
    junior_nav_fen: int,
    accrued_interest_fen: int,
    senior_apr_bps: int,
    premium_bps: int,
    fee_bps: int,
    start: dt.date,
    end: dt.date,
) -> list[TrancheReturn]:
    """Each tranche's return over the window, as booked and with the interest accrued on
    open debts split the way the pool's epoch close would (senior up to its target, premium
    and fee, junior the rest), rounded down for the investors."""
    days = max((end - start).days, 1)
    senior_due = senior_invested_fen * senior_apr_bps * days // (BPS * YEAR_DAYS)
    senior_gap = max(senior_due - (senior_nav_fen - senior_invested_fen), 0)
    to_senior = min(accrued_interest_fen, senior_gap)
    rest = accrued_interest_fen - to_senior
    rest -= min(rest, accrued_interest_fen * (premium_bps + fee_bps) // BPS)
    out = []
    for name, inv, nav, acc in (
        ("senior", senior_invested_fen, senior_nav_fen, to_senior),
        ("junior", junior_invested_fen, junior_nav_fen, rest),
    ):
        booked = 100.0 * (nav - inv) / inv if inv else 0.0
        withacc = 100.0 * (nav + acc - inv) / inv if inv else 0.0
        annual = withacc * YEAR_DAYS / days
        out.append(TrancheReturn(name, inv, nav, acc, round(booked, 3), round(withacc, 3),
                                 round(annual, 2)))  # fmt: skip
    return out
