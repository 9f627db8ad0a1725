"""Statements and confirmations, notifications (exactly once, mail through a real SMTP sink),
auditor attestations (valid and tampered) and the operator views, over the API of one demo
world that traded through a few replayed days."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from api_world import MARKET, World, make_world

from crowdleverage.api import demo
from crowdleverage.custody.db import write_transaction
from crowdleverage.domain.money import format_yuan
from crowdleverage.market.bars import read_bars
from crowdleverage.reports import attest
from crowdleverage.reports.mailsink import MailSink, captured
from crowdleverage.reports.notify import Notifier, cursors, notifications
from crowdleverage.reports.statements import wallet_effect_fen
from crowdleverage.reports.wiring import install_notifier, notifier_of

HOLDERS = [i[0] for i in demo.INVESTORS] + [b[0] for b in demo.BORROWERS]


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = make_world(tmp_path_factory.mktemp("reports"), read_bars(MARKET), trade=True)
    p = world.state.platform
    day = p.market.today
    while p.market.today == day:  # fills, the day's close (epoch, payouts)
        p.tick()
    # a payout: a withdrawal through the API (burn now, paid out at the next close)
    uid = world.uid("investor1")
    r = world.client.post(f"/api/v1/users/{uid}/withdrawals", json={"amount_fen": 123_456},
                          headers=world.h("investor1", key=True))  # fmt: skip
    assert r.status_code in (200, 201), r.text
    yield world
    world.client.close()
    world.state.engine.dispose()


def _get(w: World, user: str, path: str, **params: str) -> dict:  # type: ignore[type-arg]
    r = w.client.get(path, params=params, headers=w.h(user))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_statement_totals_equal_the_custody_ledger_to_the_fen(w: World) -> None:
    p = w.state.platform
    for name in HOLDERS:
        uid = w.uid(name)
        st = _get(w, name, f"/api/v1/users/{uid}/statements", start="2015-01-01", end="2016-12-31")
        lines = p.history[uid]
        assert st["opening_wallet_fen"] == 0
        assert st["lines_total_fen"] == sum(x["amount_fen"] for x in lines)
        assert st["closing_wallet_fen"] == sum(wallet_effect_fen(x) for x in lines)
        # the custody ledger (available: posted less payouts in transit) and the chain agree
        assert st["ledger_available_fen"] == st["closing_wallet_fen"] == p.wallet_fen(uid), name
        assert sum(t["amount_fen"] for t in st["totals"]) == st["lines_total_fen"]


def test_monthly_statements_chain_and_download_as_csv_and_pdf(w: World) -> None:
    from pypdf import PdfReader

    name = "borrower1"
    uid = w.uid(name)
    nov = _get(w, name, f"/api/v1/users/{uid}/statements", month="2015-11")
    dec = _get(w, name, f"/api/v1/users/{uid}/statements", month="2015-12")
    assert nov["lines"] == [] and dec["opening_wallet_fen"] == nov["closing_wallet_fen"]
    assert dec["lines"], "the demo borrower deposited and traded in December"
    h = w.h(name)
    csv = w.client.get(f"/api/v1/users/{uid}/statements?month=2015-12&format=csv", headers=h)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    text = csv.content.decode("utf-8-sig")
    assert "客户对账单" in text and f'"{format_yuan(dec["lines_total_fen"])}"' in text
    pdf = w.client.get(f"/api/v1/users/{uid}/statements?month=2015-12&format=pdf", headers=h)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    body = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "客户对账单" in body and format_yuan(dec["closing_wallet_fen"]) in body
    en = w.client.get(f"/api/v1/users/{uid}/statements?month=2015-12&format=csv&lang=en", headers=h)
    assert "Customer statement" in en.content.decode("utf-8-sig")


def test_statement_refuses_bad_periods_and_other_users(w: World) -> None:
    uid = w.uid("borrower1")
    h = w.h("borrower1")
    for q in ("month=2015-13", "start=2016-01-05&end=2016-01-01", "start=2016-01-01", ""):
        r = w.client.get(f"/api/v1/users/{uid}/statements?{q}", headers=h)
        assert r.status_code == 422, (q, r.text)
    other = w.uid("borrower2")
    r = w.client.get(f"/api/v1/users/{other}/statements?month=2015-12", headers=h)
    assert r.status_code == 404


def test_every_order_fill_and_money_movement_has_a_confirmation(w: World) -> None:
    p = w.state.platform
    name = "borrower1"
    uid = w.uid(name)
    confs = _get(w, name, f"/api/v1/users/{uid}/confirmations", limit="1000")
    ids = {c["id"] for c in confs["items"]}
    acc = next(a for a in p.accounts.values() if a.owner_id == uid)
    assert {f"O{o.id}" for o in p.orders_of(acc.id)} <= ids
    kinds = {c["kind"] for c in confs["items"]}
    assert {"deposit", "margin_deposit", "buy", "order"} <= kinds, kinds
    one = next(c for c in confs["items"] if c["kind"] == "buy")
    r = w.client.get(f"/api/v1/users/{uid}/confirmations/{one['id']}?format=pdf",
                     headers=w.h(name))  # fmt: skip
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    assert w.client.get(f"/api/v1/users/{uid}/confirmations/L99999",
                        headers=w.h(name)).status_code == 404  # fmt: skip
    inv = w.uid("investor1")
    inv_kinds = {c["kind"] for c in _get(w, "investor1", f"/api/v1/users/{inv}/confirmations")[
        "items"]}  # fmt: skip
    assert {"deposit", "withdrawal", "subscription_requested"} <= inv_kinds, inv_kinds


def test_notifications_are_derived_exactly_once(w: World) -> None:
    p = w.state.platform
    n = notifier_of(w.state)
    n.derive(p)
    assert n.derive(p) == 0  # nothing new
    with w.state.engine.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(notifications)).scalar()
    with write_transaction(w.state.engine) as conn:  # a restart that lost its cursors
        conn.execute(cursors.delete())
    assert n.derive(p) == 0  # the same events again: keyed by event id, nothing twice
    with w.state.engine.connect() as conn:
        after = conn.execute(sa.select(sa.func.count()).select_from(notifications)).scalar()
    assert before == after and before
    fills = _get(w, "borrower1", "/api/v1/notifications", lang="en")
    assert any(i["kind"] == "fill" for i in fills["items"])
    payouts = _get(w, "investor1", "/api/v1/notifications")
    assert any(i["kind"] == "payout" and "出金" in i["message"] for i in payouts["items"])


def test_preferences_are_validated_and_applied(w: World) -> None:
    h = w.h("borrower2")
    bad = w.client.put("/api/v1/notifications/preferences", headers=h,
                       json={"lang": "fr"})  # fmt: skip
    assert bad.status_code == 422
    bad = w.client.put("/api/v1/notifications/preferences", headers=h,
                       json={"in_app": ["nonsense"]})  # fmt: skip
    assert bad.status_code == 422 and "nonsense" in bad.json()["message"]
    ok = w.client.put("/api/v1/notifications/preferences", headers=h,
                      json={"lang": "en", "email": "b2@example.org", "in_app": ["fill"],
                            "by_email": []})  # fmt: skip
    assert ok.status_code == 200, ok.text
    got = _get(w, "borrower2", "/api/v1/notifications/preferences")
    assert got["lang"] == "en" and got["in_app"] == ["fill"] and got["email"] == "b2@example.org"


def test_a_mail_is_sent_once_through_smtp(w: World, tmp_path: Path) -> None:
    sink = MailSink(tmp_path / "mails").start()
    try:
        n = Notifier(w.state.engine, smtp_host=sink.host, smtp_port=sink.port,
                     default_email=lambda uid: f"u{uid}@demo.crowdlev.local")  # fmt: skip
        uid = w.uid("borrower3")
        item = (uid, "test:margin-warning-1", "margin_warning",
                {"account_id": 7, "ratio_bps": 12_760}, "2016-01-04")  # fmt: skip
        assert n._insert([item], {}) == 1 and n._insert([item], {}) == 0
        assert n.deliver() == 1 and n.deliver() == 0
        deadline = time.monotonic() + 30
        while not captured(sink.directory) and time.monotonic() < deadline:
            time.sleep(0.05)
        [mail] = captured(sink.directory)
        assert mail["to"] == f"u{uid}@demo.crowdlev.local"
        assert "维持担保比例预警" in mail["subject"] and "127.60%" in mail["body"]
    finally:
        sink.stop()
    install_notifier(w.state, notifier_of(w.state))


def test_attestation_verifies_and_a_tampered_one_fails(w: World) -> None:
    r = w.client.post("/api/v1/audit/attestations", headers=w.h("operator"),
                      json={"period_start": "2015-12-01", "period_end": "2015-12-31"})  # fmt: skip
    assert r.status_code == 403
    r = w.client.post("/api/v1/audit/attestations", headers=w.h("auditor"),
                      json={"period_start": "2015-12-01", "period_end": "2015-12-31"})  # fmt: skip
    assert r.status_code == 201, r.text
    att = r.json()
    assert att["valid"] and att["trusted_key"]
    facts = attest.json.loads(att["body"])
    assert facts["contracts"] and all(c["matches_source"] for c in facts["contracts"])
    assert facts["reconciliation"]["status"] == "ok" and facts["proof_of_liabilities"]
    assert attest.verify(att["body"], att["signature"], att["public_key"])
    forged = att["body"].replace('"status":"ok"', '"status":"OK!"')
    assert forged != att["body"] and not attest.verify(forged, att["signature"], att["public_key"])
    bad_sig = ("00" if att["signature"][:2] != "00" else "11") + att["signature"][2:]
    assert not attest.verify(att["body"], bad_sig, att["public_key"])
    with write_transaction(w.state.engine) as conn:  # tampered in the database
        conn.execute(attest.attestations.update().where(attest.attestations.c.id == att["id"])
                     .values(body=forged))  # fmt: skip
    pub = w.client.get(f"/api/v1/public/attestations/{att['id']}").json()
    assert pub["valid"] is False
    pdf = w.client.get(f"/api/v1/public/attestations/{att['id']}/report.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_operator_views_and_pause_with_a_reason(w: World) -> None:
    p = w.state.platform
    acc = next(iter(p.accounts.values()))
    d = _get(w, "operator", f"/api/v1/operator/accounts/{acc.id}")
    assert d["account"]["id"] == acc.id and d["orders"]
    assert w.client.get("/api/v1/operator/accounts/999", headers=w.h("operator")).status_code == 404
    assert w.client.get(f"/api/v1/operator/accounts/{acc.id}",
                        headers=w.h("borrower1")).status_code == 403  # fmt: skip
    eod = _get(w, "operator", "/api/v1/operator/end-of-day-report", trade_date="2015-12-04")
    assert eod["lines"]["deposit"]["count"] >= 7 and eod["reconciliation"]["status"] == "ok"
    assert _get(w, "auditor", "/api/v1/operator/liquidations/waiting")["items"] == []
    h = w.h("operator")
    r = w.client.post("/api/v1/operator/control", headers=h,
                      json={"action": "pause", "reason": "custodian maintenance"})  # fmt: skip
    assert r.status_code == 200 and r.json()["paused_reason"] == "custodian maintenance"
    r = w.client.post("/api/v1/operator/control", headers=h,
                      json={"action": "resume", "reason": "maintenance done"})  # fmt: skip
    assert r.status_code == 200 and not r.json()["paused"]
    entries, _ = w.state.audit.page(1000, 0)
    reasons = [(e["action"], e["details"].get("reason")) for e in entries]
    assert ("pause", "custodian maintenance") in reasons
    assert ("resume", "maintenance done") in reasons
