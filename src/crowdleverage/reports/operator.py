"""Operator views: an account's drill-down, the waiting (stuck) liquidations with why and since
when, and the end-of-day report. Plain functions over the platform's record (and the
notification store, which keeps when each liquidation started: the keeper re-marks a waiting
liquidation at every tick, the store keeps the first mark only)."""

from __future__ import annotations

from typing import Any

from crowdleverage.flows.model import Tranche
from crowdleverage.flows.platform import Platform
from crowdleverage.reports.notify import Notifier

REASONS = {"halted": "reason_halted", "sealed limit-down": "reason_sealed",
           "T+1 locked": "reason_t1"}  # fmt: skip


def account_drilldown(p: Platform, account_id: int, *, lines: int = 100) -> dict[str, Any]:
    """The account (engine figures, positions), its orders and its owner's latest lines."""
    from crowdleverage.api.views import account_out, order_out

    with p.lock:
        acc = p.account(account_id)  # NotFound for an unknown id
        out = account_out(p, acc).model_dump(mode="json")
        orders = [order_out(o).model_dump(mode="json") for o in p.orders_of(account_id)]
        history = list(p.history.get(acc.owner_id, []))
        events = [
            {"seq": e.seq, "at": e.at, "kind": e.kind, "message": e.message}
            for e in p.events
            if e.account_id == account_id
        ]
        wallet = p.wallet_fen(acc.owner_id)
    return {
        "account": out,
        "wallet_fen": wallet,
        "orders": orders[:100],
        "lines": list(reversed(history))[:lines],
        "events": events[::-1][:50],
    }


def _condition_since(p: Platform, code: str, reason: str) -> str | None:
    """The first trading day of the current run of `reason` (halted, sealed) for `code`."""
    days = p.market.days[: p.market.day_index + 1]
    since = None
    for day in reversed(days):
        bar = day.bars.get(code)
        if reason == "halted":
            held = bar is None or bar.halted
        elif reason == "sealed limit-down":
            band = bar.band if bar is not None else None
            held = (
                bar is not None and band is not None and band.limit_down_fen is not None
                and bar.close <= band.limit_down_fen
            )  # fmt: skip
        else:
            return p.market.today.isoformat()
        if not held:
            break
        since = day.date.isoformat()
    return since


def stuck_liquidations(p: Platform, notifier: Notifier) -> list[dict[str, Any]]:
    """One row per liquidation sell that cannot fill now: the account, the position, why it
    waits (halted, sealed limit-down, T+1) and since when (the reason's first day; the
    liquidation's first notification)."""
    started = notifier.liquidation_since()
    with p.lock:
        waiting = p.waiting_liquidations()
        rows = []
        for w in waiting:
            liq = started.get(int(w["account_id"]), {})
            rows.append({
                **w, "reason_key": REASONS.get(w["reason"], w["reason"]),
                "reason_since": _condition_since(p, w["code"], w["reason"]),
                "liquidation_since": liq.get("trade_date"),
                "liquidation_since_at": liq.get("at"),
            })  # fmt: skip
    return rows


def end_of_day_report(p: Platform, notifier: Notifier, trade_date: str | None) -> dict[str, Any]:
    """A trading day's figures: the lines booked (count and sum per kind), orders placed and
    how they ended, notifications, the NAV points, and the platform's state now."""
    with p.lock:
        day = trade_date or p.market.today.isoformat()
        kinds: dict[str, dict[str, int]] = {}
        for lines in p.history.values():
            for x in lines:
                if x["trade_date"] == day:
                    k = kinds.setdefault(x["kind"], {"count": 0, "amount_fen": 0})
                    k["count"] += 1
                    k["amount_fen"] += int(x["amount_fen"])
        orders = [o for o in p.orders if o.trade_date == day]
        by_status: dict[str, int] = {}
        for o in orders:
            by_status[o.status] = by_status.get(o.status, 0) + 1
        navs = {t.value: next((v for d, v in p.nav_history(t) if d == day), None) for t in Tranche}
        snap = p.risk_snapshot()
        rec = p.last_reconciliation
        epoch = p.latest_epoch()
        root = p.proofs.root(epoch) if epoch is not None else None
    statuses: dict[str, int] = {}
    for a in snap["accounts"]:
        statuses[a["status"]] = statuses.get(a["status"], 0) + 1
    return {
        "trade_date": day,
        "lines": dict(sorted(kinds.items())),
        "orders": len(orders),
        "orders_by_status": by_status,
        "liquidation_orders": sum(o.liquidation for o in orders),
        "filled_value_fen": sum(o.filled_value_fen for o in orders),
        "fees_fen": sum(o.fees_fen for o in orders),
        "notifications": notifier.counts_on(day),
        "nav_e4": navs,
        "accounts_by_status": statuses,
        "total_debt_fen": snap["total_debt_fen"],
        "utilisation_bps": snap["utilisation_bps"],
        "insurance_fen": snap["insurance_fen"],
        "waiting_liquidations": len(snap["waiting_liquidations"]),
        "paused_reason": snap["paused_reason"],
        "reconciliation": None if rec is None
        else {"status": rec["status"], "trade_date": rec["trade_date"], "breaks": rec["breaks"]},
        "proof_root": None if root is None else {"epoch": epoch, "root_hash": root[0],
                                                 "total_fen": root[1]},
    }  # fmt: skip
