"""Platform objects → response models."""

from __future__ import annotations

from typing import Any

from crowdleverage.api import schemas as S
from crowdleverage.api.security import User
from crowdleverage.domain import params as P
from crowdleverage.flows.book import Kind
from crowdleverage.flows.model import MarginAccount, Order, Redemption, Subscription
from crowdleverage.flows.platform import Platform


def user_out(u: User) -> S.UserOut:
    return S.UserOut(
        id=u.id,
        username=u.username,
        role=u.role,
        display_name=u.display_name,
        kyc_status=u.kyc_status,
        credit_tier=u.credit_tier,
    )


def sub_out(s: Subscription) -> S.SubscriptionOut:
    return S.SubscriptionOut(
        id=s.id,
        tranche=s.tranche,
        amount_fen=s.amount_fen,
        requested_on=s.requested_on.isoformat(),
        status="queued",
    )


def red_out(r: Redemption) -> S.RedemptionOut:
    return S.RedemptionOut(
        id=r.id,
        tranche=r.tranche,
        units=r.units,
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
        status=o.status.value,
        fill_price_fen=o.fill_price_fen,
        fees_fen=o.fees_fen,
        financing_fen=o.financing_fen,
        liquidation=o.liquidation,
        trade_date=o.trade_date.isoformat(),
    )


def account_out(p: Platform, acc: MarginAccount) -> S.MarginAccountOut:
    with p.lock:
        tier = P.TIERS[acc.tier]
        positions = []
        for pos in acc.positions.values():
            q = p.market.quote(pos.code)
            positions.append(
                S.PositionOut(
                    code=pos.code,
                    quantity=pos.quantity,
                    sellable=pos.sellable(p.market.today),
                    price_fen=q.price_fen,
                    market_value_fen=pos.quantity * q.price_fen,
                    cost_fen=pos.cost_fen,
                )
            )
        return S.MarginAccountOut(
            id=acc.id,
            owner_id=acc.owner_id,
            tier=acc.tier,
            status=acc.status.value,
            cash_fen=p.cash.balance(Kind.MARGIN, acc.id),
            reserve_fen=p.cash.balance(Kind.RESERVE, acc.id),
            debt_fen=acc.debt_fen,
            market_value_fen=p.market_value_fen(acc, haircut=False),
            ratio_bps=p.ratio_bps(acc),
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
