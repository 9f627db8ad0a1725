"""Every page in a real browser at 1440×900 and 390×844, in zh-CN and English: it renders, has
no horizontal overflow, and a zh-CN page carries no catalogue key or English enum (a walk over
the DOM's text). The margin page's warning/liquidation prices are checked against the engine's
lines to the fen; the investor's proof-of-liabilities check passes for the real proof and fails
for a tampered one. One server and one browser for the session (fixtures in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from typing import Any

from web_server import PROJECT_ROOT, Served

from crowdleverage.api import demo
from crowdleverage.chain.codes import code_to_chain
from crowdleverage.web.i18n import STRINGS

VIEWPORTS = {"desktop": (1440, 900), "phone": (390, 844)}
PAGES = [  # (user, path, a selector that shows the page drew)
    (None, "/transparency", "#nav-chart .main-svg"),
    (None, "/login", "#login-submit"),
    ("operator", "/risk", "#ratio-hist .main-svg"),
    ("borrower1", "/me", "table.positions"),
    ("investor1", "/me", "#investor-chart .main-svg"),
]
DOCS_SHOTS = PROJECT_ROOT / "docs" / "screenshots"
# CROWDLEV_SCREENSHOTS=1 refreshes the README's zh-CN screenshots (docs/screenshots/)
SCREENSHOTS = os.environ.get("CROWDLEV_SCREENSHOTS") == "1"
BPS = 10_000

# Words that must not appear on a zh-CN page: every catalogue key with a separator, the raw
# value of each catalogued enum, and the single-word English label of each.
ENUM_NS = ("status.", "event.", "history.", "recon.", "side.", "order.", "board.", "fee.",
           "onb.step.", "onb.result.", "onb.status.", "brake_stage.", "role.", "liq_reason.",
           "stress.", "suite.")  # fmt: skip
FORBIDDEN = {k.lower() for k in STRINGS if "_" in k or "." in k}
for _k, (_zh, _en) in STRINGS.items():
    if _k.startswith(ENUM_NS):
        FORBIDDEN.add(_k.split(".")[-1].lower())
        if re.fullmatch(r"[A-Za-z_]+", _en):
            FORBIDDEN.add(_en.lower())
FORBIDDEN -= {"kyc"}  # "KYC" is what the zh-CN onboarding step is called too (身份核验 shown)

WALK_JS = """() => {
  const skip = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT']);
  const out = [];
  const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = w.nextNode(); n; n = w.nextNode()) {
    const el = n.parentElement;
    if (!el || skip.has(el.tagName) || el.closest('.mono, .user, #lang-switch')) continue;
    const s = n.textContent.trim();
    if (s) out.push(s);
  }
  for (const el of document.querySelectorAll('input[placeholder], [title]'))
    out.push(el.getAttribute('placeholder') || el.getAttribute('title'));
  return out;
}"""


def _untranslated(texts: list[str]) -> list[str]:
    bad = []
    for s in texts:
        for tok in re.findall(r"[A-Za-z][A-Za-z0-9_.]*", s):
            if tok.rstrip(".").lower() in FORBIDDEN:
                bad.append(f"{tok!r} in {s[:80]!r}")
    return bad


def _login(page: Any, url: str, username: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#username", username)
    page.fill("#password", demo.password(username))
    page.click("#login-submit")
    page.wait_for_url(re.compile(r".*/(me|risk|transparency)$"))


@contextlib.contextmanager
def frozen(served: Served) -> Iterator[None]:
    """Hold the replay between two ticks (the driver's next `tick` waits until the block ends),
    so that a page and the engine are read in the same state."""
    p = served.state.platform
    go = threading.Event()
    real = p.tick

    def gated() -> Any:
        go.wait(120)
        return real()

    p.tick = gated  # type: ignore[method-assign]
    with p.lock:  # a tick under way finishes first
        pass
    try:
        yield
    finally:
        del p.tick  # type: ignore[method-assign]
        go.set()


def test_every_page_renders_both_sizes_and_languages(served: Served, browser: Any) -> None:
    with frozen(served):  # the pages, not the replay, are under test here (and it is faster)
        _every_page(served, browser)


def _every_page(served: Served, browser: Any) -> None:
    problems: list[str] = []
    for user in dict.fromkeys(u for u, _, _ in PAGES):
        ctx = browser.new_context(viewport={"width": 1440, "height": 900})
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        if user is not None:
            _login(page, served.url, user)
        for size, (w, h) in VIEWPORTS.items():
            page.set_viewport_size({"width": w, "height": h})
            for u, path, ready in PAGES:
                if u != user:
                    continue
                for lang in ("zh", "en"):
                    page.goto(f"{served.url}{path}?lang={lang}")
                    page.wait_for_selector(ready, timeout=30_000)
                    where = f"{path} as {user} {size} {lang}"
                    want = "zh-CN" if lang == "zh" else "en"
                    if page.locator("html").get_attribute("lang") != want:
                        problems.append(f"{where}: html lang is not {want}")
                    sw, iw = page.evaluate(
                        "[document.scrollingElement.scrollWidth, window.innerWidth]"
                    )
                    if sw > iw:
                        problems.append(f"{where}: horizontal overflow {sw} > {iw}")
                    if lang == "zh":
                        problems += [f"{where}: {b}" for b in _untranslated(page.evaluate(WALK_JS))]
                        if SCREENSHOTS:
                            name = f"{(user or 'public')}-{path.strip('/')}-{size}.png"
                            page.screenshot(path=str(DOCS_SHOTS / name), full_page=True)
        problems += [f"{user}: page error {e}" for e in errors]
        ctx.close()
    assert not problems, "\n".join(problems)


def _under(assets: int, debt: int, line: int) -> bool:
    return assets * BPS // debt < line


def _engine_inputs(served: Served, account_id: int) -> dict[str, Any]:
    """Straight from the chain: the engine's assets/debt/ratio and, per position, the oracle's
    conservative price and quantity; the haircut is what makes Σ collateral meet the engine's
    assets (checked by the caller)."""
    p = served.state.platform
    acc = p.account(account_id)
    who = p.fin.address(acc.owner_id)
    assets, debt, ratio = (int(x) for x in p.chain.call("MarginEngine", "account_state", who))
    a = p.chain.call("MarginEngine", "accounts", who)
    rows = {}
    for pos in p.positions(acc):
        c = code_to_chain(pos["code"])
        day = int(p.chain.call("PriceOracle", "trading_day"))
        haircut = int(p.chain.call("RiskParams", "haircut", c, day))  # board, ST, new listing
        halted = bool(p.chain.call("PriceOracle", "halted", c))
        rows[pos["code"]] = {
            "qty": pos["quantity"],
            "px": int(p.chain.call("PriceOracle", "conservative_price", c)),
            "h": min(haircut, 5_000) if halted else haircut,
        }
    return {"assets": assets, "debt": debt, "ratio": ratio, "cash_pending": int(a[1]) + int(a[3]),
            "rows": rows}  # fmt: skip


def test_margin_page_line_prices_match_the_engine_to_the_fen(served: Served, browser: Any) -> None:
    aid = served.ids.accounts["borrower1"]
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    _login(page, served.url, "borrower1")
    with frozen(served):
        page.goto(f"{served.url}/me?lang=zh")
        page.wait_for_selector(f"#positions-{aid}")
        cells = page.evaluate(
            """aid => Array.from(
                document.querySelectorAll(`#positions-${aid} tbody tr[data-code]`)).map(tr => ({
              code: tr.dataset.code,
              cells: Array.from(tr.querySelectorAll('td.line-price')).map(td => ({
                line: td.dataset.line, scope: td.dataset.scope, fen: td.dataset.fen,
                text: td.innerText}))}))""",
            aid,
        )
        ratio_text = page.locator(f"#ratio-{aid}").inner_text()
        with served.state.platform.lock:
            eng = _engine_inputs(served, aid)
            tier = served.state.platform.account(aid).tier
            chain = served.state.platform.chain
            t = chain.call("RiskParams", "tiers", tier)
            stressed = int(chain.call("OrderBook", "regime")) == 1
            line_share = int(chain.call("Liquidator", "stressed_line_bps"))
    lines = {"warning": int(t[2]), "liquidation": int(t[3])}
    if stressed:  # the Liquidator raises the lines while the regime is stressed
        liq = int(t[3]) + (int(t[1]) - int(t[3])) * line_share // BPS
        lines = {"warning": max(int(t[2]), liq), "liquidation": liq}
    rows, debt = eng["rows"], eng["debt"]
    assert debt > 0 and rows, "borrower1 has debt and positions"
    # the valuation the page inverts is the engine's own, to the fen
    coll = {c: r["qty"] * r["px"] * r["h"] // BPS for c, r in rows.items()}
    assert eng["cash_pending"] + sum(coll.values()) == eng["assets"]
    assert page.locator("#assets-mismatch").count() == 0
    assert ratio_text == f"{eng['ratio'] / 100:.2f}%"
    assert {c["code"] for c in cells} == set(rows)
    numeric = 0
    for line, L in lines.items():
        whole = {}
        for row in cells:
            code, r = row["code"], rows[row["code"]]
            other = eng["assets"] - coll[code]
            for cell in row["cells"]:
                if cell["line"] != line:
                    continue
                fen = None if cell["fen"] == "" else int(cell["fen"])
                if cell["scope"] == "whole":
                    whole[code] = fen
                    continue
                if fen is None:  # even at 0 the rest of the account stays above the line
                    assert not _under(other, debt, L), (code, line)
                    assert "不会触及" in cell["text"]
                    continue
                at = other + r["qty"] * fen * r["h"] // BPS
                above = other + r["qty"] * (fen + 1) * r["h"] // BPS
                assert _under(at, debt, L) and not _under(above, debt, L), (code, line, fen)
                if fen < r["px"]:
                    numeric += 1
                    assert cell["text"].startswith(f"{fen // 100:,}.{fen % 100:02d}"), cell
        if all(v is None for v in whole.values()):
            assert not _under(eng["cash_pending"], debt, L)
            continue
        # every stock at its shown price: under the line; one fen higher each: above it
        at = eng["cash_pending"] + sum(rows[c]["qty"] * v * rows[c]["h"] // BPS
                                       for c, v in whole.items() if v is not None)  # fmt: skip
        above = eng["cash_pending"] + sum(rows[c]["qty"] * (v + 1) * rows[c]["h"] // BPS
                                          for c, v in whole.items() if v is not None)  # fmt: skip
        assert _under(at, debt, L) and not _under(above, debt, L), (line, whole)
        numeric += 1
    assert numeric >= 2, "at least the whole-account warning and liquidation prices are shown"
    ctx.close()


def test_investor_proof_check_passes_and_a_tampered_proof_fails(
    served: Served, browser: Any
) -> None:
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    page = ctx.new_page()
    _login(page, served.url, "investor1")
    with frozen(served):  # no epoch closes between the proof and the published root
        page.goto(f"{served.url}/me?lang=zh")
        _proof_check(served, page)
    ctx.close()


def _proof_check(served: Served, page: Any) -> None:
    result = page.locator("#proof-result")

    def verify() -> str:
        page.evaluate("document.getElementById('proof-result').dataset.result = ''")
        page.click("#proof-verify")
        page.wait_for_function(
            "document.getElementById('proof-result').dataset.result !== ''", timeout=30_000
        )
        return str(result.get_attribute("data-result"))

    assert verify() == "ok", result.inner_text()
    assert "核验通过" in result.inner_text()
    uid = served.ids.users["investor1"]
    with served.state.platform.lock:
        p = served.state.platform
        proof = p.proofs.prove(p.latest_epoch(), str(uid))  # type: ignore[arg-type]
    assert f"{proof['leaf']['balance_fen'] // 100:,}" in result.inner_text()

    def tamper(route: Any) -> None:
        resp = route.fetch()
        body = resp.json()
        body["leaf"]["balance_fen"] += 100  # one 元 more than the platform committed to
        route.fulfill(response=resp, json=body)

    page.route("**/api/v1/users/*/proof", tamper)
    assert verify() == "fail"
    assert "核验失败" in result.inner_text()
    # the JS fallback SHA-256 (pages served over plain http off localhost) equals WebCrypto's
    same = page.evaluate(
        """async () => { const b = new TextEncoder().encode('crowdleverage'.repeat(11));
           const a = await crypto.subtle.digest('SHA-256', b);
           const js = ProofCheck.sha256Sync(b);
           return Array.from(new Uint8Array(a)).join() === Array.from(js).join(); }"""
    )
    assert same
