"""Statements, notifications, attestations and operator views against a real server that
replayed into the January 2016 crash, with the notification worker and a real SMTP sink.

In the browser: a margin warning becomes an in-app notification and a mail; an attestation
verifies (WebCrypto Ed25519) and a tampered one does not; the pages fit a 390 px phone.
Over the API (same world, no browser): statement totals equal the custody ledger to the fen,
every order and movement has a confirmation, notifications are derived exactly once, mail is
sent once, attestations verify server-side, the operator views and pause/resume with a
reason."""

from __future__ import annotations

import datetime as dt
import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from web_server import SHOTS

from crowdleverage.api import demo
from crowdleverage.api.app import create_app
from crowdleverage.api.deps import COOKIE, ApiState
from crowdleverage.api.security import issue_token
from crowdleverage.api.serve import ReplayDriver
from crowdleverage.config import SHIPPED_DATA, Settings
from crowdleverage.custody.db import write_transaction
from crowdleverage.domain.money import format_yuan
from crowdleverage.domain.params import NAV_STOP_BELOW_BPS
from crowdleverage.flows.market import MarketFeed
from crowdleverage.flows.platform import Platform
from crowdleverage.market.bars import read_bars
from crowdleverage.reports import attest
from crowdleverage.reports.mailsink import MailSink, captured
from crowdleverage.reports.notify import Notifier, NotifyWorker, cursors, notifications, render
from crowdleverage.reports.statements import wallet_effect_fen
from crowdleverage.reports.wiring import _default_email, install_notifier, notifier_of
from crowdleverage.web.i18n_reports import tr

PHONE = {"width": 390, "height": 844}
# elements of <main> that stick out of the viewport (a table may scroll inside its .scroll box)
OVERFLOW_JS = """() => [...document.querySelectorAll('main *')].filter(e => {
  const box = e.closest('.scroll');
  return (!box || box === e) && e.getBoundingClientRect().right > window.innerWidth + 1;
}).map(e => e.tagName + '.' + e.className).slice(0, 5)"""


@dataclass
class Site:
    url: str
    state: ApiState
    sink: MailSink
    ids: demo.DemoIds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(cond: Any, limit_s: float, what: str) -> Any:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    pytest.fail(f"waited {limit_s} s for {what}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import uvicorn

    tmp = tmp_path_factory.mktemp("web-reports")
    sink = MailSink(tmp / "mailsink").start()
    settings = Settings(data_dir=tmp, jwt_secret="r" * 40, smtp_host=sink.host,  # type: ignore[arg-type]
                        smtp_port=sink.port)  # fmt: skip
    bars = read_bars(SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv")
    platform = Platform(settings, market=MarketFeed(bars, start=dt.date(2015, 12, 31)))
    # the NAV stop (5% of the reference assets) would close the demo's accounts on 01-04
    # before any reaches its warning line; this module tests the warning → notification →
    # mail path, so the operator turns the stop off (a supported setting, `set_nav_stop`)
    platform.chain.send("Liquidator", "set_nav_stop", 0, NAV_STOP_BELOW_BPS, actor="operator")
    app = create_app(settings, platform=platform, engine=platform.engine)
    st: ApiState = app.state.api
    ids = demo.seed(st)
    notifier = install_notifier(st, Notifier(
        st.engine, smtp_host=sink.host, smtp_port=sink.port, default_email=_default_email(st)
    ))  # fmt: skip
    worker = NotifyWorker(notifier, platform, interval_s=0.3)
    worker.start()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _wait(lambda: server.started, 20, "uvicorn")
    driver = ReplayDriver(platform, pace_s=0.05)
    driver.start()
    try:
        # replay into the crash until the first margin warning is derived, then keep the
        # platform still: the pages below read it without waiting for the replay's lock
        _wait(lambda: _warning(st), 420, "a margin warning notification (2016-01-04 crash)")
    finally:
        driver.stop.set()
        driver.join(timeout=60)
    yield Site(f"http://127.0.0.1:{port}", st, sink, ids)
    worker.stop.set()
    worker.join(timeout=30)
    server.should_exit = True
    thread.join(timeout=10)
    sink.stop()


def _warning(st: ApiState) -> Any:
    n = notifications.c
    with st.engine.connect() as conn:
        return conn.execute(
            sa.select(n.user_id, n.event_key).where(n.kind == "margin_warning")
        ).first()


def _login(browser: Any, site: Site, username: str, viewport: dict[str, int]) -> Any:
    """A browser context holding `username`'s session cookie (the login form itself is the
    dashboard tests' subject; here it would only load the role's heavy home page)."""
    ctx = browser.new_context(viewport=viewport)
    user = site.state.users.get(site.ids.users[username])
    token = issue_token(user, site.state.secret)
    ctx.add_cookies([{"name": COOKIE, "value": token, "url": site.url}])
    return ctx.new_page()


def _fits(page: Any, name: str) -> None:
    assert page.evaluate(OVERFLOW_JS) == [], name
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_margin_warning_becomes_a_notification_and_a_mail(site: Site, browser: Any) -> None:
    uid, key = _warning(site.state)
    event = f"{uid}/{key}"
    mail = _wait(
        lambda: [m for m in captured(site.sink.directory) if m["event"] == event], 60,
        "its mail in the SMTP sink",
    )[0]  # fmt: skip
    assert "维持担保比例预警" in mail["subject"]
    assert mail["to"] == f"{site.state.users.get(uid).username}@demo.crowdlev.local"
    page = _login(browser, site, site.state.users.get(uid).username, PHONE)
    page.goto(f"{site.url}/notifications")
    page.wait_for_selector("[data-kind=margin_warning]")
    assert "维持担保比例" in page.locator("[data-kind=margin_warning]").first.inner_text()
    _fits(page, "notifications-phone")
    page.goto(f"{site.url}/notifications?lang=en")
    assert "Margin warning" in page.locator("[data-kind=margin_warning]").first.inner_text()
    page.context.close()
    op = _login(browser, site, "operator", PHONE)
    op.goto(f"{site.url}/mails")
    op.wait_for_selector(f"[data-event='{event}']")
    _fits(op, "mails-phone")
    op.context.close()


def test_attestation_verifies_in_the_browser_and_a_tampered_one_fails(
    site: Site, browser: Any
) -> None:
    page = _login(browser, site, "auditor", {"width": 1360, "height": 1000})
    page.goto(f"{site.url}/attestations")
    page.fill("input[name=period_start]", "2015-12-01")
    page.fill("input[name=period_end]", "2015-12-31")
    page.click("#attest-form button")
    page.wait_for_selector(".attestation")
    att_id = page.locator(".attestation").first.get_attribute("data-id")
    sig = f"#sig-{att_id}"
    page.wait_for_function(f"document.querySelector('{sig}').dataset.valid !== ''")
    assert page.locator(sig).get_attribute("data-valid") == "true"
    assert page.locator(sig).inner_text() == "签名有效"
    page.screenshot(path=str(SHOTS / "attestations.png"), full_page=True)
    # the public transparency page lists it and verifies it in the browser too
    page.goto(f"{site.url}/transparency")
    page.wait_for_function(f"document.querySelector('{sig}').dataset.valid !== ''")
    assert page.locator(sig).get_attribute("data-valid") == "true"
    table = attest.attestations
    with write_transaction(site.state.engine) as conn:  # the published body edited afterwards
        body = conn.execute(sa.select(table.c.body).where(table.c.id == int(att_id))).scalar_one()
        forged = body.replace('"status":"ok"', '"status":"ok "', 1)
        assert forged != body
        conn.execute(table.update().where(table.c.id == int(att_id)).values(body=forged))
    public = browser.new_page(viewport=PHONE)  # anyone: no login
    public.goto(f"{site.url}/attestations")
    public.wait_for_function(f"document.querySelector('{sig}').dataset.valid !== ''")
    assert public.locator(sig).get_attribute("data-valid") == "false"
    assert public.locator(sig).inner_text() == "签名无效"
    _fits(public, "attestations-tampered-phone")
    public.goto(f"{site.url}/transparency")
    public.wait_for_function(f"document.querySelector('{sig}').dataset.valid !== ''")
    assert public.locator(sig).get_attribute("data-valid") == "false"
    public.close()
    page.context.close()


def test_statement_and_operator_pages_fit_a_phone(site: Site, browser: Any) -> None:
    page = _login(browser, site, "borrower1", PHONE)
    page.goto(f"{site.url}/statements?start=2015-01-01&end=2016-12-31")
    page.wait_for_selector("#statement")
    assert page.locator("#closing").inner_text() == page.locator("#ledger").inner_text()
    _fits(page, "statements-phone")
    href = page.locator("#pdf-link").get_attribute("href")
    pdf = page.request.get(f"{site.url}{href}")
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
    page.context.close()
    op = _login(browser, site, "operator", PHONE)
    op.goto(f"{site.url}/operator")
    op.wait_for_selector("#eod")
    _fits(op, "operator-phone")
    op.locator("#accounts a").first.click()
    op.wait_for_load_state()
    assert "#" in op.locator("h1").inner_text()
    _fits(op, "drilldown-phone")
    op.context.close()


# ── the same world over the API (no browser) ────────────────────────────────────────────────

HOLDERS = [i[0] for i in demo.INVESTORS] + [b[0] for b in demo.BORROWERS]


class W:
    """The API of the served site, with bearer tokens per demo user."""

    def __init__(self, site: Site) -> None:
        import httpx

        self.client = httpx.Client(base_url=site.url, timeout=60)
        self.state = site.state
        self.site = site
        self.tokens: dict[str, str] = {}
        self._keys = 0

    def login(self, username: str) -> str:
        if username not in self.tokens:
            form = {"username": username, "password": demo.password(username)}
            r = self.client.post("/api/v1/auth/token", data=form)
            assert r.status_code == 200, r.text
            self.tokens[username] = r.json()["access_token"]
        return self.tokens[username]

    def h(self, username: str, *, key: bool = False) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.login(username)}"}
        if key:
            self._keys += 1
            headers["Idempotency-Key"] = f"reports-key-{self._keys:08d}"
        return headers

    def uid(self, username: str) -> int:
        return self.site.ids.users[username]


@pytest.fixture(scope="module")
def w(site: Site) -> Iterator[W]:
    world = W(site)
    # a payout: a withdrawal (burnt now, paid out at the next close: in transit meanwhile)
    uid = world.uid("investor1")
    r = world.client.post(f"/api/v1/users/{uid}/withdrawals", json={"amount_fen": 123_456},
                          headers=world.h("investor1", key=True))  # fmt: skip
    assert r.status_code in (200, 201), r.text
    yield world
    world.client.close()


def _get(w: W, user: str, path: str, **params: str) -> Any:
    r = w.client.get(path, params=params, headers=w.h(user))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_statement_totals_equal_the_custody_ledger_to_the_fen(w: W) -> None:
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


def test_monthly_statements_chain_and_download_as_csv_and_pdf(w: W) -> None:
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


def test_statement_refuses_bad_periods_and_other_users(w: W) -> None:
    uid = w.uid("borrower1")
    h = w.h("borrower1")
    for q in ("month=2015-13", "start=2016-01-05&end=2016-01-01", "start=2016-01-01", ""):
        r = w.client.get(f"/api/v1/users/{uid}/statements?{q}", headers=h)
        assert r.status_code == 422, (q, r.text)
    other = w.uid("borrower2")
    r = w.client.get(f"/api/v1/users/{other}/statements?month=2015-12", headers=h)
    assert r.status_code == 404


def test_every_order_fill_and_money_movement_has_a_confirmation(w: W) -> None:
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


def test_notifications_are_derived_exactly_once(w: W) -> None:
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


def test_preferences_are_validated_and_applied(w: W) -> None:
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


def test_a_mail_is_sent_once_through_smtp(w: W, tmp_path: Path) -> None:
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
        # the subject decodes to its text exactly (RFC 2047, folded when long: no leading
        # space), the body ends with the trade date
        title, _ = render("margin_warning", {"account_id": 7, "ratio_bps": 12_760}, "zh")
        assert mail["subject"] == f"[{tr('zh', 'title')}] {title}"
        assert mail["body"].rstrip().endswith("2016-01-04")
    finally:
        sink.stop()


def test_each_mail_waits_for_the_writer_first(w: W, tmp_path: Path) -> None:
    """`deliver(before_each=...)`: the platform process's mail thread waits for its writer's
    idle flag before each mail (`NotifyWorker.idle`), never after the claim of none."""
    sink = MailSink(tmp_path / "mails").start()
    try:
        n = Notifier(w.state.engine, smtp_host=sink.host, smtp_port=sink.port,
                     default_email=lambda uid: f"u{uid}@demo.crowdlev.local")  # fmt: skip
        uid = w.uid("borrower3")
        items = [(uid, f"test:idle-{i}", "margin_warning", {"account_id": 7, "ratio_bps": 12_760},
                  "2016-01-04") for i in range(3)]  # fmt: skip
        assert n._insert(items, {}) == 3
        waits: list[int] = []
        assert n.deliver(before_each=lambda: waits.append(1)) == 3 and len(waits) == 3
        assert n.deliver(before_each=lambda: waits.append(1)) == 0 and len(waits) == 3
    finally:
        sink.stop()


def test_attestation_verifies_and_a_tampered_one_fails(w: W) -> None:
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


def test_operator_views_and_pause_with_a_reason(w: W) -> None:
    p = w.state.platform
    acc = next(iter(p.accounts.values()))
    d = _get(w, "operator", f"/api/v1/operator/accounts/{acc.id}")
    assert d["account"]["id"] == acc.id and d["orders"]
    assert w.client.get("/api/v1/operator/accounts/999", headers=w.h("operator")).status_code == 404
    assert w.client.get(f"/api/v1/operator/accounts/{acc.id}",
                        headers=w.h("borrower1")).status_code == 403  # fmt: skip
    eod = _get(w, "operator", "/api/v1/operator/end-of-day-report", trade_date="2015-12-31")
    assert eod["lines"]["deposit"]["count"] >= 7 and eod["reconciliation"]["status"] == "ok"
    for row in _get(w, "auditor", "/api/v1/operator/liquidations/waiting")["items"]:
        assert row["reason_key"] in ("reason_halted", "reason_sealed", "reason_t1"), row
        assert row["reason_since"] and row["liquidation_since"], row  # since when it waits
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
