"""AML rules, each with a positive and a negative case; alerts become cases; STR export."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from crowdleverage.compliance import aml
from crowdleverage.compliance.aml import AmlConfig, Channel, Customer, Transaction, TxnKind
from crowdleverage.compliance.cases import CaseStatus, Resolution, reports_to_csv
from crowdleverage.compliance.kyc import sha256_text
from crowdleverage.compliance.ports import InMemoryIdentityRegistry
from crowdleverage.compliance.repository import make_engine
from crowdleverage.compliance.service import ComplianceService, KycApplication
from crowdleverage.domain.errors import Conflict, InvalidInput

T0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
CARD = "6222021234567890128"
CUST = Customer("kyc_1", "王小明", frozenset({sha256_text(CARD)}))
CUSTOMERS = {"kyc_1": CUST}
WAN = 1_000_000  # 1万元 in fen


def tx(n: int, kind: TxnKind, amount_fen: int, hours: float = 0, **kw: object) -> Transaction:
    return Transaction(
        f"t{n}",
        "kyc_1",
        kind,
        amount_fen,
        T0 + timedelta(hours=hours),
        **kw,  # type: ignore[arg-type]
    )


def rules(txns: list[Transaction], rule: str, cfg: AmlConfig | None = None) -> list[aml.Alert]:
    return aml.run_rules(txns, CUSTOMERS, cfg, rules=[rule])


def test_large_value_single_and_daily_total() -> None:
    single = rules([tx(1, TxnKind.DEPOSIT, 50 * WAN)], "large_value")
    daily = rules(
        [tx(1, TxnKind.DEPOSIT, 30 * WAN), tx(2, TxnKind.WITHDRAWAL, 20 * WAN, hours=5)],
        "large_value",
    )
    cash = rules([tx(1, TxnKind.DEPOSIT, 5 * WAN, channel=Channel.CASH)], "large_value")

    assert [a.txn_ids for a in single] == [("t1",)]
    assert daily[0].total_amount_fen == 50 * WAN and daily[0].txn_ids == ("t1", "t2")
    assert len(cash) == 1 and "cash" in cash[0].description


def test_large_value_negative_below_threshold_and_split_across_days() -> None:
    below = rules([tx(1, TxnKind.DEPOSIT, 50 * WAN - 1)], "large_value")
    # 30万 at 23:00 and 30万 at 01:00 Shanghai time fall on two reporting days.
    two_days = rules(
        [tx(1, TxnKind.DEPOSIT, 30 * WAN, hours=13), tx(2, TxnKind.DEPOSIT, 30 * WAN, hours=15)],
        "large_value",
    )
    trades = rules([tx(1, TxnKind.TRADE, 500 * WAN)], "large_value")

    assert below == two_days == trades == []


def test_structuring_positive() -> None:
    deposits = [tx(i, TxnKind.DEPOSIT, 48 * WAN, hours=24 * i) for i in range(1, 4)]

    alerts = rules(deposits, "structuring")

    assert len(alerts) == 1
    assert alerts[0].txn_ids == ("t1", "t2", "t3")
    assert alerts[0].total_amount_fen == 144 * WAN


def test_structuring_negative_too_few_too_spread_or_not_near() -> None:
    two = [tx(i, TxnKind.DEPOSIT, 48 * WAN, hours=24 * i) for i in range(1, 3)]
    spread = [tx(i, TxnKind.DEPOSIT, 48 * WAN, hours=24 * 5 * i) for i in range(1, 4)]
    small = [tx(i, TxnKind.DEPOSIT, 20 * WAN, hours=24 * i) for i in range(1, 4)]

    assert rules(two, "structuring") == []
    assert rules(spread, "structuring") == []
    assert rules(small, "structuring") == []


def test_rapid_in_out_positive_and_negative() -> None:
    churn = [tx(1, TxnKind.DEPOSIT, 20 * WAN), tx(2, TxnKind.WITHDRAWAL, 19 * WAN, hours=30)]
    traded = [*churn[:1], tx(3, TxnKind.TRADE, 15 * WAN, hours=2), churn[1]]
    slow = [churn[0], tx(2, TxnKind.WITHDRAWAL, 19 * WAN, hours=100)]
    partial = [churn[0], tx(2, TxnKind.WITHDRAWAL, 10 * WAN, hours=30)]

    alerts = rules(churn, "rapid_in_out")

    assert [a.txn_ids for a in alerts] == [("t1", "t2")]
    assert rules(traded, "rapid_in_out") == []
    assert rules(slow, "rapid_in_out") == []
    assert rules(partial, "rapid_in_out") == []


def test_velocity_count_and_amount_positive_and_negative() -> None:
    many = [tx(i, TxnKind.DEPOSIT, WAN, hours=i) for i in range(11)]
    fewer = many[:10]
    history = [tx(100 + d, TxnKind.DEPOSIT, 2 * WAN, hours=-24 * d) for d in range(1, 29)]
    spike = [*history, tx(1, TxnKind.DEPOSIT, 60 * WAN)]
    normal = [*history, tx(1, TxnKind.DEPOSIT, 3 * WAN)]
    no_baseline = [*history[:3], tx(1, TxnKind.DEPOSIT, 60 * WAN)]

    assert len(rules(many, "velocity")) == 1
    assert rules(fewer, "velocity") == []
    spike_alerts = rules(spike, "velocity")
    assert len(spike_alerts) == 1 and "daily average" in spike_alerts[0].description
    assert rules(normal, "velocity") == []
    assert rules(no_baseline, "velocity") == []  # three days of history is no baseline


def test_third_party_payer_positive_and_negative() -> None:
    own = tx(
        1, TxnKind.DEPOSIT, WAN, payer_name="Wang Xiaoming", payer_account_sha256=sha256_text(CARD)
    )
    own_chars = tx(2, TxnKind.DEPOSIT, WAN, payer_name="王小明")
    other_name = tx(3, TxnKind.DEPOSIT, WAN, payer_name="李娜")
    other_account = tx(4, TxnKind.DEPOSIT, WAN, payer_account_sha256=sha256_text("621700000"))

    alerts = rules([own, own_chars, other_name, other_account], "third_party_payer")

    assert [a.txn_ids for a in alerts] == [("t3",), ("t4",)]
    assert "differs from customer" in alerts[0].description
    assert "not a registered account" in alerts[1].description


def test_bad_transactions_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="must be positive"):
        tx(1, TxnKind.DEPOSIT, 0)
    with pytest.raises(InvalidInput, match="timezone"):
        Transaction("t", "kyc_1", TxnKind.DEPOSIT, 1, datetime(2026, 1, 5))
    with pytest.raises(InvalidInput, match="appears twice"):
        aml.run_rules([tx(1, TxnKind.DEPOSIT, 1), tx(1, TxnKind.DEPOSIT, 2)], CUSTOMERS)
    with pytest.raises(InvalidInput, match="unknown AML rule"):
        aml.run_rules([], CUSTOMERS, rules=["astrology"])


def test_alerts_become_cases_once_freeze_and_export(tmp_path: Path) -> None:
    registry = InMemoryIdentityRegistry()
    svc = ComplianceService(make_engine(f"sqlite:///{tmp_path / 'c.db'}"), registry)
    app = KycApplication(
        "0x" + "33" * 20, "王小明", "110105199001011232", "13800138000", CARD, date(2030, 1, 1)
    )
    ident = svc.onboard(app, now=T0).identity_id
    svc.verify(ident, actor="officer-li", now=T0)
    txns = [
        Transaction(f"d{i}", ident, TxnKind.DEPOSIT, 48 * WAN, T0 + timedelta(days=i))
        for i in range(3)
    ]

    first = svc.monitor(txns, now=T0)
    again = svc.monitor(txns, now=T0)

    assert [r["alert"]["rule"] for r in first] == ["structuring"]
    structuring = next(r for r in first if r["alert"]["rule"] == "structuring")
    assert structuring["new"] and not any(r["new"] for r in again)
    assert svc.identity(ident)["frozen"] is True  # structuring freezes at once
    assert not registry.is_active(app.address, int(T0.timestamp()))

    case_id = structuring["case_id"]
    with pytest.raises(Conflict):
        svc.report_case(case_id, actor="officer-li", grounds="x")  # must investigate first
    svc.investigate_case(case_id, actor="officer-li")
    svc.report_case(case_id, actor="officer-li", grounds="three deposits just under 50万元")
    svc.resolve_case(case_id, Resolution.CONFIRMED, actor="mlro-zhao", note="STR filed")

    reports = svc.str_export()
    assert len(reports) == 1
    assert reports[0]["txn_ids"] == ["d0", "d1", "d2"]
    assert reports[0]["total_amount_fen"] == 144 * WAN
    assert reports[0]["subject_id_masked"] == "110105********1232"
    assert reports[0]["grounds"] == "three deposits just under 50万元"
    assert svc.cases(ident)[-1].status == CaseStatus.CLOSED
    csv_text = reports_to_csv(reports)
    assert csv_text.splitlines()[1].startswith(f"{case_id},structuring,王小明,")
