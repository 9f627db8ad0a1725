"""Wallets, custody deposits, investor subscriptions and redemptions, statements, proofs."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from crowdleverage.api import schemas as S
from crowdleverage.api.deps import (
    ApiState,
    PageParams,
    UserIdPath,
    check_owner,
    current_user,
    idem,
    page_params,
    require,
    state,
)
from crowdleverage.api.idempotency import Idempotent
from crowdleverage.api.security import Role, User
from crowdleverage.api.views import holdings_out, red_out, statement_line, sub_out
from crowdleverage.domain.errors import ComplianceBlock, Forbidden

router = APIRouter(tags=["money"])

WALLET_STAFF = (Role.OPERATOR, Role.CUSTODIAN, Role.AUDITOR)
HOLDER_ROLES = (Role.INVESTOR, Role.BORROWER)


def _holder(user: User, user_id: UserIdPath, st: ApiState, *, staff: tuple[Role, ...]) -> User:
    """The wallet holder `user_id` as seen by `user` (403 wrong role, 404 not theirs)."""
    if user.role not in (*HOLDER_ROLES, *staff):
        raise Forbidden(f"role {user.role.value} has no access to wallets")
    check_owner(user, user_id, staff, f"user {user_id}")
    target = st.users.get(user_id)
    if target.role not in HOLDER_ROLES:
        from crowdleverage.domain.errors import NotFound

        raise NotFound(f"user {user_id} has no wallet")
    return target


def _kyc(target: User, st: ApiState) -> None:
    """Approved KYC, or refused; an approved user is enrolled (custody client account and
    verified identity on chain) on first use."""
    if target.kyc_status != "approved":
        raise ComplianceBlock(f"user {target.id} has no approved KYC (status {target.kyc_status})")
    st.platform.enroll(target.id, target.role.value)


@router.get("/users/{user_id}/wallet", response_model=S.WalletOut)
def wallet(
    user_id: UserIdPath, user: User = Depends(current_user), st: ApiState = Depends(state)
) -> S.WalletOut:
    _holder(user, user_id, st, staff=WALLET_STAFF)
    return S.WalletOut(user_id=user_id, wallet_fen=st.platform.wallet_fen(user_id))


@router.get("/users/{user_id}/statement", response_model=S.Page[S.StatementLine])
def statement(
    user_id: UserIdPath,
    page: PageParams = Depends(page_params),
    user: User = Depends(current_user),
    st: ApiState = Depends(state),
) -> S.Page[S.StatementLine]:
    """Cash history, newest first."""
    _holder(user, user_id, st, staff=WALLET_STAFF)
    with st.platform.lock:
        lines = list(reversed(st.platform.history.get(user_id, [])))
    chunk = lines[page.offset : page.offset + page.limit]
    return S.Page[S.StatementLine](
        items=[statement_line(x) for x in chunk],
        total=len(lines),
        limit=page.limit,
        offset=page.offset,
    )


@router.post(
    "/users/{user_id}/withdrawals",
    response_model=S.WalletOut,
    responses={422: {"model": S.ErrorOut}, 409: {"model": S.ErrorOut}},
)
def withdraw(
    user_id: UserIdPath,
    body: S.AmountIn,
    user: User = Depends(require(Role.INVESTOR, Role.BORROWER)),
    key: Idempotent = Depends(idem),
    st: ApiState = Depends(state),
) -> JSONResponse:
    """Pay wallet cash out to the holder's bank account."""
    target = _holder(user, user_id, st, staff=())
    _kyc(target, st)

    def work() -> S.WalletOut:
        out = st.platform.withdraw(user_id, body.amount_fen)
        st.audit.append(user.username, "withdrawal", {"user_id": user_id, **body.model_dump()})
        return S.WalletOut(**out)

    return key.run(user.id, body, work)


@router.post("/custody/deposits", response_model=S.WalletOut, status_code=201)
def custody_deposit(
    body: S.DepositIn,
    user: User = Depends(require(Role.CUSTODIAN)),
    key: Idempotent = Depends(idem),
    st: ApiState = Depends(state),
) -> JSONResponse:
    """The custodian bank reports an incoming transfer (a camt.053 statement line); the
    bank reference posts at most once."""
    target = st.users.get(body.user_id)
    if target.role not in HOLDER_ROLES:
        from crowdleverage.domain.errors import InvalidInput

        raise InvalidInput(f"user {body.user_id} is a {target.role.value}, not a wallet holder")
    _kyc(target, st)

    def work() -> S.WalletOut:
        out = st.platform.deposit(body.user_id, body.amount_fen, body.bank_reference)
        st.audit.append(user.username, "deposit", body.model_dump())
        return S.WalletOut(**out)

    return key.run(user.id, body, work, status_code=201)


INVESTOR_STAFF = (Role.OPERATOR, Role.AUDITOR)


def _investor(user: User, user_id: UserIdPath, st: ApiState, staff: tuple[Role, ...]) -> User:
    if user.role not in (Role.INVESTOR, *staff):
        raise Forbidden(f"role {user.role.value} has no access to investor holdings")
    check_owner(user, user_id, staff, f"investor {user_id}")
    target = st.users.get(user_id)
    if target.role is not Role.INVESTOR:
        from crowdleverage.domain.errors import NotFound

        raise NotFound(f"investor {user_id} not found")
    return target


@router.get("/investors/{user_id}/holdings", response_model=S.HoldingsOut)
def holdings(
    user_id: UserIdPath, user: User = Depends(current_user), st: ApiState = Depends(state)
) -> S.HoldingsOut:
    _investor(user, user_id, st, INVESTOR_STAFF)
    with st.platform.lock:
        return holdings_out(st.platform, user_id)


@router.post(
    "/investors/{user_id}/subscriptions", response_model=S.SubscriptionOut, status_code=201
)
def subscribe(
    user_id: UserIdPath,
    body: S.SubscribeIn,
    user: User = Depends(require(Role.INVESTOR)),
    key: Idempotent = Depends(idem),
    st: ApiState = Depends(state),
) -> JSONResponse:
    """Move wallet cash into the pool's escrow for a tranche (TranchePool.subscribe); units
    are issued at the epoch close, senior only while the junior ratio allows."""
    _kyc(_investor(user, user_id, st, ()), st)

    def work() -> S.SubscriptionOut:
        sub = st.platform.subscribe(user_id, body.tranche, body.amount_fen)
        st.audit.append(user.username, "subscribe", {"user_id": user_id, **body.model_dump()})
        return sub_out(sub)

    return key.run(user.id, body, work, status_code=201)


@router.post("/investors/{user_id}/redemptions", response_model=S.RedemptionOut, status_code=201)
def redeem(
    user_id: UserIdPath,
    body: S.RedeemIn,
    user: User = Depends(require(Role.INVESTOR)),
    key: Idempotent = Depends(idem),
    st: ApiState = Depends(state),
) -> JSONResponse:
    """Queue a redemption; it executes at the epoch close at the marked NAV, senior first,
    within the liquidity buffer and the minimum junior ratio."""
    _kyc(_investor(user, user_id, st, ()), st)

    def work() -> S.RedemptionOut:
        red = st.platform.redeem(user_id, body.tranche, body.units)
        st.audit.append(user.username, "redeem", {"user_id": user_id, **body.model_dump()})
        return red_out(red)

    return key.run(user.id, body, work, status_code=201)


@router.get("/users/{user_id}/proof", response_model=S.UserProofOut)
def my_proof(
    user_id: UserIdPath, user: User = Depends(current_user), st: ApiState = Depends(state)
) -> S.UserProofOut:
    """The holder's inclusion proof in the latest epoch's Merkle-sum tree of liabilities."""
    _holder(user, user_id, st, staff=(Role.AUDITOR,))
    p = st.platform
    epoch = p.latest_epoch()
    if epoch is None:
        from crowdleverage.domain.errors import NotFound

        raise NotFound("no proof-of-liabilities epoch has been closed yet")
    return S.UserProofOut(**p.proofs.prove(epoch, str(user_id)))
