"""Platform objects → response models."""

from __future__ import annotations

from typing import Any

from crowdleverage.api import schemas as S
from crowdleverage.api.security import User
from crowdleverage.flows.platform import MarginAccount, Order, Platform, Request


def user_out(u: User) -> S.UserOut:
    return S.UserOut(
        id=u.id,
        username=u.username,
        role=u.role,
        display_name=u.display_name,
        kyc_status=u.kyc_status,
        credit_tier=u.credit_tier,
    )


def sub_out(r: Request) -> S.SubscriptionOut:
    return S.SubscriptionOut(
        id=r.id,
        tranche=r.tranche,
        amount_fen=r.amount,
        requested_on=r.requested_on.isoformat(),
        status="queued",
    )


def red_out(r: Request) -> S.RedemptionOut:
    return S.RedemptionOut(
        id=r.id,
        tranche=r.tranche,
        units=r.amount,
        requested_on=r.requested_on.isoformat(),
        status="queued",
    )


def order_out(o: Order) -> S.OrderOut:
    return S.OrderOut(
        id=o.id,
        account_id=o.account_id,
        side=o.side,
        code=o.code,
        quantity=o.quantity,
        limit_price_fen=o.limit_price_fen,
        status=o.status,
        filled_quantity=o.filled_qty,
        fill_price_fen=o.fill_price_fen,
        fees_fen=o.fees_fen,
        financing_fen=o.financing_fen,
        liquidation=o.liquidation,
        trade_date=o.trade_date,
    )


def holdings_out(p: Platform, user_id: int) -> S.HoldingsOut:
    h = p.holdings(user_id)
    today = p.market.today.isoformat()
    return S.HoldingsOut(
        user_id=user_id,
        wallet_fen=p.wallet_fen(user_id),
        holdings=[S.HoldingOut(**row) for row in h["holdings"]],
        queued_subscriptions=[
            S.SubscriptionOut(id=q["id"], tranche=q["tranche"], amount_fen=q["amount"],
                              requested_on=today, status="queued")
            for q in h["queued"] if q["kind"] == "subscribe"
        ],
        queued_redemptions=[
            S.RedemptionOut(id=q["id"], tranche=q["tranche"], units=q["amount"],
                            requested_on=today, status="queued")
            for q in h["queued"] if q["kind"] == "redeem"
        ],
    )  # fmt: skip


def account_out(p: Platform, acc: MarginAccount) -> S.MarginAccountOut:
    """The engine's account (cash, reserve, debt, ratio) and positions at replayed prices."""
    with p.lock:
        # read fresh (not the figures `flows.risk_figures` keeps between blocks: the page's
        # ratio must match the engine's to the fen, `test_margin_page_line_prices_...`)
        tier = p.tier_terms(acc.tier)  # as RiskParams holds it now
        view = p.account_view(acc)
        positions = [S.PositionOut(**pos) for pos in p.positions(acc)]
        return S.MarginAccountOut(
            id=acc.id,
            owner_id=acc.owner_id,
            tier=acc.tier,
            status=p.status(view, acc.tier).value,
            cash_fen=view.cash_fen,
            reserve_fen=view.reserve_fen,
            pending_fen=view.pending_fen,
            debt_fen=view.debt_fen,
            market_value_fen=sum(x.market_value_fen for x in positions),
            ratio_bps=view.ratio_bps,
            initial_bps=tier.initial_ratio_bps,
            warning_bps=tier.warning_ratio_bps,
            liquidation_bps=tier.liquidation_ratio_bps,
            positions=positions,
        )


def statement_line(line: dict[str, Any]) -> S.StatementLine:
    base = {"at", "trade_date", "kind", "amount_fen"}
    return S.StatementLine(
        at=line["at"],
        trade_date=line["trade_date"],
        kind=line["kind"],
        amount_fen=line["amount_fen"],
        details={k: v for k, v in line.items() if k not in base},
    )


def max_drawdown_bps(navs: list[int]) -> int:
    """Largest peak-to-trough fall, in bps of the peak (rounded up: never understated)."""
    peak, worst = 0, 0
    for v in navs:
        peak = max(peak, v)
        if peak:
            worst = max(worst, -(-(peak - v) * 10_000 // peak))
    return worst
