"""Request and response models: exactly their fields (extra="forbid"), amounts in integer fen.
Every integer input is strict: a JSON integer, never a string ("1", "1_0"), a float (1.0) or a
boolean."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from crowdleverage.api.security import Role
from crowdleverage.flows.model import Tranche

T = TypeVar("T")

MAX_FEN = 10**15  # 10 万亿元: far above any pool; larger is a typo, not an order
AmountFen = Annotated[
    int, Field(strict=True, gt=0, le=MAX_FEN, description="amount in fen (0.01 CNY)")
]
Username = Annotated[str, Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
Password = Annotated[str, Field(min_length=8, max_length=128)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(Strict, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class ErrorOut(Strict):
    error: str
    message: str
    details: dict[str, object] | None = None


class TokenOut(Strict):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int


class RegisterIn(Strict):
    username: Username
    password: Password
    display_name: Annotated[str, Field(min_length=1, max_length=128)]
    role: Literal["investor", "borrower"]


class UserCreateIn(Strict):
    username: Username
    password: Password
    display_name: Annotated[str, Field(min_length=1, max_length=128)]
    role: Role


class UserOut(Strict):
    id: int
    username: str
    role: Role
    display_name: str
    kyc_status: str
    credit_tier: int | None


class KycIn(Strict):
    decision: Literal["approved", "rejected"]
    credit_tier: Annotated[int, Field(strict=True, ge=1, le=3)] | None = None


class DepositIn(Strict):
    user_id: Annotated[int, Field(strict=True, ge=1, le=2**31 - 1)]
    amount_fen: AmountFen
    bank_reference: Annotated[str, Field(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9\-_]+$")]


class AmountIn(Strict):
    amount_fen: AmountFen


class WalletOut(Strict):
    user_id: int
    wallet_fen: int


class StatementLine(Strict):
    at: str
    trade_date: str
    kind: str
    amount_fen: int
    details: dict[str, object]


class SubscribeIn(Strict):
    tranche: Tranche
    amount_fen: AmountFen


class RedeemIn(Strict):
    tranche: Tranche
    units: Annotated[int, Field(strict=True, gt=0, le=MAX_FEN)]


class SubscriptionOut(Strict):
    id: int
    tranche: Tranche
    amount_fen: int
    requested_on: str
    status: Literal["queued"]


class RedemptionOut(Strict):
    id: int
    tranche: Tranche
    units: int
    requested_on: str
    status: Literal["queued"]


class HoldingOut(Strict):
    tranche: Tranche
    units: int
    nav_e4: int
    value_fen: int


class HoldingsOut(Strict):
    user_id: int
    wallet_fen: int
    holdings: list[HoldingOut]
    queued_subscriptions: list[SubscriptionOut]
    queued_redemptions: list[RedemptionOut]


class ProofStepOut(Strict):
    side: Literal["left", "right"]
    hash: str
    sum_fen: int


class ProofLeafOut(Strict):
    investor_id: str
    balance_fen: int
    salt: str


class UserProofOut(Strict):
    """An inclusion proof in the epoch's Merkle-sum tree (audit.proofs.verify_proof checks it)."""

    kind: str
    epoch: int
    root_hash: str
    total_fen: int
    leaf_index: int
    tree_size: int
    leaf: ProofLeafOut
    path: list[ProofStepOut]


class OpenAccountIn(Strict):
    tier: Annotated[int, Field(strict=True, ge=1, le=3)]


class FundIn(Strict):
    amount_fen: AmountFen
    kind: Literal["margin", "reserve"] = "margin"


class OrderIn(Strict):
    side: Literal["BUY", "SELL"]
    code: Annotated[str, Field(pattern=r"^\d{6}$")]
    quantity: Annotated[int, Field(strict=True, gt=0, le=10**9)]
    limit_price_fen: Annotated[int, Field(strict=True, gt=0, le=10**8)]


class OrderOut(Strict):
    id: int
    account_id: int
    side: str
    code: str
    quantity: int
    limit_price_fen: int
    status: Literal["open", "partially_filled", "filled", "expired"]
    filled_quantity: int
    fill_price_fen: int | None  # average, rounded up
    fees_fen: int
    financing_fen: int
    liquidation: bool
    trade_date: str


class PositionOut(Strict):
    code: str
    quantity: int
    sellable: int
    price_fen: int
    market_value_fen: int
    halted: bool = False  # suspended today (or no bar): valued at its last close


class MarginAccountOut(Strict):
    id: int
    owner_id: int
    tier: int
    status: str
    cash_fen: int
    reserve_fen: int
    pending_fen: int  # reserved for open buy orders
    debt_fen: int
    market_value_fen: int
    ratio_bps: int | None
    initial_bps: int
    warning_bps: int
    liquidation_bps: int
    positions: list[PositionOut]


class PauseIn(Strict):
    reason: Annotated[str, Field(min_length=3, max_length=200)]


class TickIn(Strict):
    steps: Annotated[int, Field(strict=True, ge=1, le=40)] = 1  # 40 ticks: five trading days


class StatusOut(Strict):
    paused: bool
    paused_reason: str | None
    trade_date: str
    step: int


class ChainReconOut(Strict):
    chain: str
    supply_fen: int
    custody_cash_fen: int
    references: int


class ReconciliationOut(Strict):
    chain: ChainReconOut | None
    at: str
    trade_date: str
    status: Literal["ok", "break"]
    breaks: list[str]
    accounts_checked: int
    pool_assets_fen: int
    claims_fen: int


class ProofRootOut(Strict):
    epoch: int
    root_hash: str
    total_fen: int


class AuditEntryOut(Strict):
    seq: int
    ts_ns: int
    actor: str
    action: str
    details: dict[str, object]
    hash: str


class AuditLogOut(Strict):
    items: list[AuditEntryOut]
    total: int
    limit: int
    offset: int
    chain_valid: bool
    problems: list[str]


class EndOfDayOut(Strict):
    date: str
    interest_fen: int
    senior_fen: int
    junior_fen: int
    insurance_fen: int
    platform_fee_fen: int
    executed: int


class RiskAccountOut(Strict):
    account_id: int
    owner_id: int
    tier: int
    status: str
    ratio_bps: int | None
    debt_fen: int
    warning_bps: int
    liquidation_bps: int


class WaitingOut(Strict):
    account_id: int
    code: str
    quantity: int
    reason: str
    price_fen: int


class EventOut(Strict):
    seq: int
    at: str
    kind: str
    account_id: int | None
    message: str


class RiskOut(Strict):
    trade_date: str
    step: int
    paused: bool
    paused_reason: str | None
    accounts: list[RiskAccountOut]
    waiting_liquidations: list[WaitingOut]
    pool_cash_fen: int
    total_debt_fen: int
    pool_assets_fen: int
    utilisation_bps: int
    insurance_fen: int
    insurance_coverage_bps: int
    senior_nav_e4: int
    junior_nav_e4: int
    senior_deficit_fen: int
    exposure_by_security_fen: dict[str, int]
    exposure_by_board_fen: dict[str, int]
    events: list[EventOut]
    at_s: int


class TierOut(Strict):
    tier: int
    max_leverage: int
    initial_bps: int
    warning_bps: int
    liquidation_bps: int
    rate_apr_bps: int


class NavPoint(Strict):
    date: str
    nav_e4: int


class TrancheReportOut(Strict):
    tranche: Tranche
    nav_e4: int
    claim_fen: int
    history: list[NavPoint]
    max_drawdown_bps: int


class TransparencyOut(Strict):
    tiers: list[TierOut]
    fees: dict[str, int]
    tranches: list[TrancheReportOut]
    custodian: dict[str, str]
    reconciliation_status: str
    reconciliation_at: str | None
    cash_token_supply_fen: int | None
    proof_epoch: int | None
    proof_root_hash: str | None
    proof_total_fen: int | None
    accounts: int
    accounts_warning: int
    accounts_liquidating: int
    total_debt_fen: int
    utilisation_bps: int
    insurance_fen: int
    trade_date: str
    regime: dict[str, Any] | None = None  # market regime (risk/regime.py), last close
    stress: dict[str, Any] | None = None  # newest stored stress result (risk/stress/)
    strategy_brake: dict[str, Any] | None = None  # strategy accounts' liquidity brake
    # stressed haircuts, liquidity cap share and per-security headroom (RiskParams)
    risk_policy: dict[str, Any] | None = None
