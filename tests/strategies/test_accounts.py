"""Institutional strategy accounts: suitability, the ratio with off-platform legs, the waterfall."""

from __future__ import annotations

import datetime as dt

import pytest

from crowdleverage.domain.errors import ComplianceBlock, InvalidInput
from crowdleverage.strategies.accounts import (
    BrokerReport,
    InvestorClass,
    OffPlatformPosition,
    open_strategy_account,
    waterfall,
)

DAY = dt.date(2015, 9, 7)


def test_only_professional_investors_open_strategy_accounts() -> None:
    with pytest.raises(ComplianceBlock, match="professional investors only"):
        open_strategy_account("b1", InvestorClass.ORDINARY, 10_000_00)
    acct = open_strategy_account("b1", InvestorClass.PROFESSIONAL, 10_000_00)
    assert acct.cash_fen == 10_000_00 and acct.tier.name == "I"
    with pytest.raises(InvalidInput):
        open_strategy_account("b1", InvestorClass.PROFESSIONAL, 0)


def _futures(margin_fen: int) -> OffPlatformPosition:
    return OffPlatformPosition("CFFEX", "IF", -10, 3096.2, 0, margin_fen)


def test_ratio_counts_a_broker_gain_with_a_haircut_and_a_loss_in_full() -> None:
    acct = open_strategy_account("b1", InvestorClass.PROFESSIONAL, 1_000_000)
    acct.cash_fen, acct.debt_fen, acct.on_platform_value_fen = 100_000, 2_000_000, 2_500_000
    acct.broker = BrokerReport(DAY, 400_000, (_futures(300_000),))
    # (cash 100k + value 2.5m + 50% × 400k) / 2m = 140%
    assert acct.ratio_bps() == 14_000
    acct.broker = BrokerReport(DAY, -200_000, (_futures(300_000),))
    # a negative broker balance counts in full: (100k + 2.5m − 200k) / 2m = 120%
    assert acct.ratio_bps() == 12_000
    assert acct.broker.margin_fen == 300_000
    assert acct.equity_fen() == 100_000 + 2_500_000 - 200_000 - 2_000_000


def test_ratio_rounds_against_the_borrower_and_is_none_without_debt() -> None:
    acct = open_strategy_account("b1", InvestorClass.PROFESSIONAL, 1_000_000)
    assert acct.ratio_bps() is None
    acct.cash_fen, acct.debt_fen = 2, 3
    assert acct.ratio_bps() == 6_666  # 0.6666… rounded down


def test_waterfall_order_and_unabsorbed_remainder() -> None:
    layers = {
        "borrower_margin": 100,
        "borrower_reserve": 50,
        "penalty": 5,
        "insurance": 20,
        "junior": 200,
        "senior": 1_000,
    }
    out = waterfall(180, layers)
    assert out == {
        "borrower_margin": 100,
        "borrower_reserve": 50,
        "penalty": 5,
        "insurance": 20,
        "junior": 5,
        "senior": 0,
        "unabsorbed": 0,
    }
    assert waterfall(2_000, layers)["unabsorbed"] == 2_000 - 1_375
    assert waterfall(2_000, layers)["senior"] == 1_000
    with pytest.raises(InvalidInput):
        waterfall(-1, layers)
    with pytest.raises(InvalidInput, match="unknown waterfall layers"):
        waterfall(1, {"equity": 1})
