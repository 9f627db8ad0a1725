"""Borrowers' margin accounts: open, fund, trade, repay, withdraw; orders and positions."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from crowdleverage.api import schemas as S
from crowdleverage.api.deps import (
    AccountIdPath,
    ApiState,
    PageParams,
    check_owner,
    current_user,
    idem,
    page_params,
    require,
    state,
)
from crowdleverage.api.idempotency import Idempotent
from crowdleverage.api.security import Role, User
from crowdleverage.api.views import account_out, order_out
from crowdleverage.domain.errors import ComplianceBlock, Forbidden
from crowdleverage.flows.platform import MarginAccount

router = APIRouter(tags=["margin accounts"])

STAFF = (Role.OPERATOR, Role.AUDITOR, Role.BROKER)


def _account(
    user: User, account_id: AccountIdPath, st: ApiState, staff: tuple[Role, ...]
) -> MarginAccount:
    if user.role not in (Role.BORROWER, *staff):
        raise Forbidden(f"role {user.role.value} has no access to margin accounts")
    acc = st.platform.account(account_id)
    check_owner(user, acc.owner_id, staff, f"margin account {account_id}")
    return acc


@router.post("/margin-accounts", response_model=S.MarginAccountOut, status_code=201)
def open_account(
    body: S.OpenAccountIn,
    user: User = Depends(require(Role.BORROWER)),
    st: ApiState = Depends(state),
) -> S.MarginAccountOut:
    """Open a margin account at a tier up to the credit tier granted at KYC."""
    if user.kyc_status != "approved":
        raise ComplianceBlock(f"KYC is {user.kyc_status}; a margin account needs approval")
    st.platform.enroll(user.id, "borrower")
    acc = st.platform.open_margin_account(user.id, body.tier, user.credit_tier)
    st.audit.append(user.username, "account_opened", {"account_id": acc.id, "tier": body.tier})
    return account_out(st.platform, acc)


@router.get("/margin-accounts", response_model=S.Page[S.MarginAccountOut])
def list_accounts(
    page: PageParams = Depends(page_params),
    user: User = Depends(require(Role.BORROWER, *STAFF)),
    st: ApiState = Depends(state),
) -> S.Page[S.MarginAccountOut]:
    """All accounts for staff; a borrower's own accounts only."""
    p = st.platform
    with p.lock:
        accs = [a for a in p.accounts.values() if user.role in STAFF or a.owner_id == user.id]
        chunk = accs[page.offset : page.offset + page.limit]
        items = [account_out(p, a) for a in chunk]
    return S.Page[S.MarginAccountOut](
        items=items, total=len(accs), limit=page.limit, offset=page.offset
    )


@router.get("/margin-accounts/{account_id}", response_model=S.MarginAccountOut)
def get_account(
    account_id: AccountIdPath, user: User = Depends(current_user), st: ApiState = Depends(state)
) -> S.MarginAccountOut:
    return account_out(st.platform, _account(user, account_id, st, STAFF))


@router.post("/margin-accounts/{account_id}/deposits", response_model=S.MarginAccountOut)
def fund(
    account_id: AccountIdPath,
    body: S.FundIn,
    user: User = Depends(require(Role.BORROWER)),
    key: Idempotent = Depends(idem),
    st: ApiState = Depends(state),
) -> JSONResponse:
    """Move wallet cash into margin (保证金) or the top-up reserve (补仓准备金)."""
    acc = _account(user, account_id, st, ())

    def work() -> S.MarginAccountOut:
        st.platform.fund_account(acc.id, body.amount_fen, reserve=body.kind == "reserve")
        st.audit.append(user.username, "fund", {"account_id": acc.id, **body.model_dump()})
        return account_out(st.platform, acc)

    return key.run(user.id, body, work)


@router.post("/margin-accounts/{account_id}/withdrawals", response_model=S.MarginAccountOut)
def withdraw(
    account_id: AccountIdPath,
    body: S.FundIn,
    user: User = Depends(require(Role.BORROWER)),
    key: Idempotent = Depends(idem),
    st: ApiState = Depends(state),
) -> JSONResponse:
    """Back to the wallet, only while the ratio stays above max(initial, 300%) with debt."""
    acc = _account(user, account_id, st, ())

    def work() -> S.MarginAccountOut:
        st.platform.withdraw_from_account(acc.id, body.amount_fen, reserve=body.kind == "reserve")
        st.audit.append(
            user.username, "account_withdraw", {"account_id": acc.id, **body.model_dump()}
        )
        return account_out(st.platform, acc)

    return key.run(user.id, body, work)


@router.post("/margin-accounts/{account_id}/orders", response_model=S.OrderOut, status_code=201)
def place_order(
    account_id: AccountIdPath,
    body: S.OrderIn,
    user: User = Depends(require(Role.BORROWER)),
    key: Idempotent = Depends(idem),
    st: ApiState = Depends(state),
) -> JSONResponse:
    """A limit order requested on chain: the MarginEngine runs the pre-trade checks (ratio ≥
    initial after the trade, 1:N leverage, per-security and platform limits, pool liquidity),
    reserves the cash and draws the financing, or refuses with its reason (422). The broker
    places it on the exchange at the next tick; fills settle on chain (status `open` →
    `filled`/`partially_filled`, unfilled remainder `expired` at the close). Sells respect
    T+1 and cannot fill through a limit-down seal."""
    acc = _account(user, account_id, st, ())

    def work() -> S.OrderOut:
        p = st.platform
        if body.side == "BUY":
            order = p.buy(acc.id, body.code, body.quantity, body.limit_price_fen)
        else:
            order = p.sell(acc.id, body.code, body.quantity, body.limit_price_fen)
        st.audit.append(user.username, "order", {"account_id": acc.id, **body.model_dump()})
        return order_out(order)

    return key.run(user.id, body, work, status_code=201)


@router.get("/margin-accounts/{account_id}/orders", response_model=S.Page[S.OrderOut])
def orders(
    account_id: AccountIdPath,
    page: PageParams = Depends(page_params),
    user: User = Depends(current_user),
    st: ApiState = Depends(state),
) -> S.Page[S.OrderOut]:
    """Orders of the account, newest first."""
    acc = _account(user, account_id, st, STAFF)
    mine = st.platform.orders_of(acc.id)
    chunk = mine[page.offset : page.offset + page.limit]
    return S.Page[S.OrderOut](
        items=[order_out(o) for o in chunk], total=len(mine), limit=page.limit, offset=page.offset
    )


@router.post("/margin-accounts/{account_id}/repayments", response_model=S.MarginAccountOut)
def repay(
    account_id: AccountIdPath,
    body: S.AmountIn,
    user: User = Depends(require(Role.BORROWER)),
    key: Idempotent = Depends(idem),
    st: ApiState = Depends(state),
) -> JSONResponse:
    """Repay debt from the account's cash (always allowed, even while paused)."""
    acc = _account(user, account_id, st, ())

    def work() -> S.MarginAccountOut:
        st.platform.repay(acc.id, body.amount_fen)
        st.audit.append(user.username, "repay", {"account_id": acc.id, **body.model_dump()})
        return account_out(st.platform, acc)

    return key.run(user.id, body, work)


@router.get("/broker/orders", response_model=S.Page[S.OrderOut])
def broker_orders(
    page: PageParams = Depends(page_params),
    _: User = Depends(require(Role.BROKER, Role.OPERATOR, Role.AUDITOR)),
    st: ApiState = Depends(state),
) -> S.Page[S.OrderOut]:
    """Every order the broker executed or holds, newest first."""
    with st.platform.lock:
        allo = list(reversed(st.platform.orders))
    chunk = allo[page.offset : page.offset + page.limit]
    return S.Page[S.OrderOut](
        items=[order_out(o) for o in chunk], total=len(allo), limit=page.limit, offset=page.offset
    )
