"""Each actor's flow through the HTTP API, end to end on the real platform."""

from __future__ import annotations

import pytest
from api_world import World, application_body

from crowdleverage.api import demo
from crowdleverage.api.security import Role
from crowdleverage.custody.service import TransferCode
from crowdleverage.custody.types import Transfer
from crowdleverage.flows.platform import investor_id

API = "/api/v1"


def test_investor_deposit_subscribe_redeem_withdraw(world: World) -> None:
    c, inv = world.client, world.uid("investor1")
    wallet0 = c.get(f"{API}/users/{inv}/wallet", headers=world.h("investor1")).json()["wallet_fen"]

    r = c.post(
        f"{API}/custody/deposits",
        json={"user_id": inv, "amount_fen": 1_000_000, "bank_reference": "CAMT-T-0001"},
        headers=world.h("custodian", key=True),
    )
    assert r.status_code == 201, r.text
    assert r.json() == {"user_id": inv, "wallet_fen": wallet0 + 1_000_000}  # CashToken minted

    r = c.post(
        f"{API}/investors/{inv}/subscriptions",
        json={"tranche": "junior", "amount_fen": 600_000},
        headers=world.h("investor1", key=True),
    )
    assert r.status_code == 201, r.text
    held = c.get(f"{API}/investors/{inv}/holdings", headers=world.h("investor1")).json()
    assert held["wallet_fen"] == wallet0 + 400_000  # in the pool's escrow at once
    assert [s["amount_fen"] for s in held["queued_subscriptions"]] == [600_000]

    eod = c.post(f"{API}/operator/end-of-day", headers=world.h("operator"))
    assert eod.status_code == 200 and eod.json()["executed"] == 1
    held = c.get(f"{API}/investors/{inv}/holdings", headers=world.h("investor1")).json()
    assert held["queued_subscriptions"] == []
    junior = next(h for h in held["holdings"] if h["tranche"] == "junior")
    assert junior["units"] > 0 and 600_000 - 2 <= junior["value_fen"] <= 600_000  # floor

    r = c.post(
        f"{API}/investors/{inv}/redemptions",
        json={"tranche": "junior", "units": junior["units"]},
        headers=world.h("investor1", key=True),
    )
    assert r.status_code == 201, r.text
    c.post(f"{API}/operator/end-of-day", headers=world.h("operator"))
    wallet = c.get(f"{API}/users/{inv}/wallet", headers=world.h("investor1")).json()["wallet_fen"]
    # no debt outstanding: the NAV stayed put; unit rounding favours the pool
    assert wallet0 + 1_000_000 - 2 <= wallet <= wallet0 + 1_000_000

    r = c.post(
        f"{API}/users/{inv}/withdrawals",
        json={"amount_fen": 250_000},
        headers=world.h("investor1", key=True),
    )
    assert r.status_code == 200 and r.json()["wallet_fen"] == wallet - 250_000
    lines = c.get(f"{API}/users/{inv}/statement?limit=2", headers=world.h("investor1")).json()
    assert lines["total"] >= 6 and len(lines["items"]) == 2
    assert lines["items"][0]["kind"] == "withdrawal" and lines["items"][0]["amount_fen"] == -250_000
    kinds = {x["kind"] for x in c.get(f"{API}/users/{inv}/statement?limit=50",
                                      headers=world.h("investor1")).json()["items"]}  # fmt: skip
    assert {"deposit", "subscription_requested", "subscribed", "redeemed"} <= kinds
    # the payout went to the bank in the next pain.001 and reconciles
    c.post(f"{API}/operator/end-of-day", headers=world.h("operator"))
    rep = c.get(f"{API}/audit/reconciliation", headers=world.h("auditor")).json()
    assert rep["status"] == "ok", rep["breaks"]


def test_duplicate_bank_reference_posts_once(world: World) -> None:
    body = {"user_id": world.uid("investor2"), "amount_fen": 5_000, "bank_reference": "DUP-REF-1"}
    first = world.client.post(
        f"{API}/custody/deposits", json=body, headers=world.h("custodian", key=True)
    )
    again = world.client.post(
        f"{API}/custody/deposits", json=body, headers=world.h("custodian", key=True)
    )
    assert first.status_code == 201
    assert again.status_code == 409 and again.json()["error"] == "conflict"


def _liquid_codes(world: World, n: int) -> list[tuple[str, int]]:
    m = world.state.platform.market
    out = []
    for code in m.codes():
        q = m.quote(code)
        if not q.halted and not q.st and 500 <= q.price_fen <= 3_000 and not q.at_limit_up:
            out.append((code, q.price_fen))
    return out[:n]


def _tick(world: World, steps: int) -> None:
    r = world.client.post(
        f"{API}/operator/tick", json={"steps": steps}, headers=world.h("operator")
    )
    assert r.status_code == 200, r.text


def test_borrower_open_fund_buy_sell_repay_withdraw(world: World) -> None:
    c, bor = world.client, world.uid("borrower2")
    p = world.state.platform
    hb = world.h("borrower2")
    aid = world.ids.accounts["borrower2"]
    r = c.post(
        f"{API}/margin-accounts/{aid}/deposits",
        json={"amount_fen": 5_000_000, "kind": "margin"},
        headers=world.h("borrower2", key=True),
    )
    cash0 = r.json()["cash_fen"]
    assert r.status_code == 200 and cash0 == 200_000_000 + 5_000_000
    _tick(world, 1)  # the day opens: the oracle publishes bands and prices
    codes = [c for c in p.codes if not p.quote(c).halted][:3]
    requested = []
    for code in codes:
        q = p.quote(code)
        limit = min(q.price_fen + q.price_fen // 100, q.limit_up_fen)
        qty = cash0 * 35 // 100 // limit // 100 * 100  # < 40% of the account each
        body = {"side": "BUY", "code": code, "quantity": qty, "limit_price_fen": limit}
        r = c.post(
            f"{API}/margin-accounts/{aid}/orders", json=body, headers=world.h("borrower2", key=True)
        )
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "open" and r.json()["fill_price_fen"] is None
        requested.append(r.json())
    assert requested[0]["financing_fen"] == 0 and requested[2]["financing_fen"] > 0
    state = c.get(f"{API}/margin-accounts/{aid}", headers=hb).json()
    assert state["pending_fen"] > 0 and state["debt_fen"] > 0  # reserved, financing drawn
    _tick(world, 2)  # the broker places the orders; the exchange fills them
    orders = c.get(f"{API}/margin-accounts/{aid}/orders", headers=hb).json()["items"]
    assert [o["status"] for o in orders] == ["filled"] * 3
    for o in orders:
        assert o["filled_quantity"] == o["quantity"] and o["fill_price_fen"] <= o["limit_price_fen"]
    state = c.get(f"{API}/margin-accounts/{aid}", headers=hb).json()
    assert state["ratio_bps"] is not None and state["ratio_bps"] >= state["initial_bps"]
    assert {x["code"] for x in state["positions"]} == set(codes)
    # T+1: the shares bought today cannot be sold today
    c1, held = codes[0], requested[0]["quantity"]
    q1 = p.quote(c1)
    sell = {"side": "SELL", "code": c1, "quantity": held, "limit_price_fen": q1.limit_down_fen}
    r = c.post(
        f"{API}/margin-accounts/{aid}/orders", json=sell, headers=world.h("borrower2", key=True)
    )
    assert r.status_code == 422 and "T+1" in r.json()["message"]
    debt_day1 = state["debt_fen"]

    c.post(f"{API}/operator/end-of-day", headers=world.h("operator"))  # to the next day
    _tick(world, 1)
    state = c.get(f"{API}/margin-accounts/{aid}", headers=hb).json()
    assert state["debt_fen"] > debt_day1  # interest accrued overnight, rounded up
    q1 = p.quote(c1)
    r = c.post(
        f"{API}/margin-accounts/{aid}/orders",
        json={
            **sell,
            "limit_price_fen": max(q1.limit_down_fen, q1.price_fen - q1.price_fen // 100),
        },
        headers=world.h("borrower2", key=True),
    )
    assert r.status_code == 201, r.text
    _tick(world, 2)
    state = c.get(f"{API}/margin-accounts/{aid}", headers=hb).json()
    assert c1 not in {x["code"] for x in state["positions"]}
    debt = state["debt_fen"]
    r = c.post(
        f"{API}/margin-accounts/{aid}/repayments",
        json={"amount_fen": debt + 1},
        headers=world.h("borrower2", key=True),
    )
    assert r.status_code == 422 and "exceeds the debt" in r.json()["message"]
    r = c.post(
        f"{API}/margin-accounts/{aid}/repayments",
        json={"amount_fen": debt},
        headers=world.h("borrower2", key=True),
    )
    assert r.status_code == 200 and r.json()["debt_fen"] == 0, r.text
    r = c.post(
        f"{API}/margin-accounts/{aid}/withdrawals",
        json={"amount_fen": 1_000, "kind": "margin"},
        headers=world.h("borrower2", key=True),
    )
    assert r.status_code == 200, r.text
    orders = c.get(f"{API}/margin-accounts/{aid}/orders?limit=2", headers=hb).json()
    assert orders["total"] == 4 and len(orders["items"]) == 2  # the refused sell is no order
    assert orders["items"][0]["side"] == "sell" and orders["items"][0]["status"] == "filled"
    lines = c.get(f"{API}/users/{bor}/statement?limit=100", headers=hb).json()["items"]
    assert sum(x["kind"] == "buy" for x in lines) >= 3 and any(x["kind"] == "sell" for x in lines)


def test_pre_trade_refusals_have_reasons(world: World) -> None:
    c, p = world.client, world.state.platform
    aid = world.ids.accounts["borrower4"]
    _tick(world, 1)
    code = p.codes[0]
    q = p.quote(code)
    cases = [
        ({"quantity": 150, "limit_price_fen": q.price_fen}, "lot"),
        ({"quantity": 100, "limit_price_fen": q.limit_up_fen + 1}, "band"),
        ({"quantity": 1_000_000, "limit_price_fen": q.price_fen}, "margin: "),  # the engine's
    ]
    for extra, reason in cases:
        r = c.post(
            f"{API}/margin-accounts/{aid}/orders",
            json={"side": "BUY", "code": code, **extra},
            headers=world.h("borrower4", key=True),
        )
        assert r.status_code == 422, (extra, r.text)
        assert reason in r.json()["message"], r.json()
    assert p.orders_of(aid) == []  # nothing was written


def test_bad_input_is_a_clear_422(world: World) -> None:
    inv = world.uid("investor1")
    r = world.client.post(
        f"{API}/investors/{inv}/subscriptions",
        json={"tranche": "mezzanine", "amount_fen": -5, "extra": 1},
        headers=world.h("investor1", key=True),
    )
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_input"
    fields = {f["field"] for f in body["details"]["fields"]}
    assert {"tranche", "amount_fen", "extra"} <= fields


def test_kyc_gates_money_and_accounts(world: World) -> None:
    c = world.client
    r = c.post(
        f"{API}/auth/register",
        json={
            "username": "newbie",
            "password": "newbie-pass-1",
            "display_name": "N",
            "role": "borrower",
        },
    )
    assert r.status_code == 201 and r.json()["kyc_status"] == "pending"
    new_id = r.json()["id"]
    tok = c.post(f"{API}/auth/token", data={"username": "newbie", "password": "newbie-pass-1"})
    hn = {"Authorization": f"Bearer {tok.json()['access_token']}"}
    r = c.post(f"{API}/margin-accounts", json={"tier": 1}, headers=hn)
    assert r.status_code == 403 and r.json()["error"] == "compliance_block"
    r = c.post(  # the legacy KYC endpoint cannot approve a borrower: no credit decision
        f"{API}/compliance/users/{new_id}/kyc",
        json={"decision": "approved", "credit_tier": 1},
        headers=world.h("compliance"),
    )
    assert r.status_code == 409 and "onboarding pipeline" in r.json()["message"]
    assert world.state.users.get(new_id).kyc_status == "pending"
    # through the pipeline: the policy refers this applicant, the officer approves tier 1
    r = c.post(
        f"{API}/onboarding/applications",
        json=application_body(world, band=(0.15, 0.30)),
        headers=hn,
    )
    assert r.status_code == 201 and r.json()["status"] == "referred", r.text
    r = c.post(
        f"{API}/compliance/onboarding/users/{new_id}/override",
        json={"outcome": "approve", "tier": 1, "reason": "income verified by phone"},
        headers=world.h("compliance"),
    )
    assert r.status_code == 200, r.text
    assert world.state.users.get(new_id).credit_tier == 1
    assert c.post(f"{API}/margin-accounts", json={"tier": 2}, headers=hn).status_code == 403
    assert c.post(f"{API}/margin-accounts", json={"tier": 1}, headers=hn).status_code == 201


def test_login_is_rate_limited(world: World) -> None:
    c = world.client
    for _ in range(5):
        r = c.post(f"{API}/auth/token", data={"username": "investor3", "password": "wrong-pass"})
        assert r.status_code == 401
    r = c.post(
        f"{API}/auth/token",
        data={"username": "investor3", "password": "investor3-demo-pass"},
    )
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"
    assert int(r.headers["Retry-After"]) > 0
    # another user is not affected
    ok = c.post(
        f"{API}/auth/token", data={"username": "investor2", "password": "investor2-demo-pass"}
    )
    assert ok.status_code == 200


def test_pause_fails_closed_and_repay_still_works(world: World) -> None:
    c = world.client
    r = c.post(f"{API}/operator/pause", json={"reason": "drill"}, headers=world.h("operator"))
    assert r.status_code == 200 and r.json()["paused"] is True
    r = c.post(
        f"{API}/custody/deposits",
        json={"user_id": world.uid("investor1"), "amount_fen": 100, "bank_reference": "P-0001"},
        headers=world.h("custodian", key=True),
    )
    assert r.status_code == 503 and r.json()["error"] == "platform_paused"
    assert c.post(f"{API}/operator/resume", headers=world.h("operator")).json()["paused"] is False


def test_reconciliation_break_pauses_and_auditor_sees_it(world: World) -> None:
    c, p = world.client, world.state.platform
    ok = c.post(f"{API}/operator/reconcile", headers=world.h("operator")).json()
    assert ok["status"] == "ok" and ok["breaks"] == []
    assert ok["chain"]["supply_fen"] == ok["chain"]["custody_cash_fen"] > 0
    # a deposit booked in the custody ledger that was never minted on chain
    inv = p.custody.investor_account_id(investor_id(world.uid("investor1")))
    t = Transfer(987654321, p.custody.bank_cash_id, inv, 123, 156, TransferCode.DEPOSIT)
    p.custody.ledger.create_transfers([t])
    rep = c.post(f"{API}/operator/reconcile", headers=world.h("operator")).json()
    assert rep["status"] == "break" and any("missing_mint" in b for b in rep["breaks"])
    assert c.get(f"{API}/status").json()["paused"] is True
    assert p.chain.call("CashToken", "paused")  # fail closed on chain too
    seen = c.get(f"{API}/audit/reconciliation", headers=world.h("auditor")).json()
    assert seen["status"] == "break"
    r = c.post(f"{API}/operator/resume", headers=world.h("operator"))
    assert r.status_code == 409 and "not clean" in r.json()["message"]


def test_auditor_reports_and_tamper_evident_log(world: World) -> None:
    c = world.client
    root = c.get(f"{API}/audit/proof-of-liabilities", headers=world.h("auditor")).json()
    assert root["epoch"] >= 1 and root["total_fen"] > 0
    inv = world.uid("investor1")
    proof = c.get(f"{API}/users/{inv}/proof", headers=world.h("investor1")).json()
    from crowdleverage.audit.proofs import verify_proof
    from crowdleverage.domain.errors import IntegrityFailure

    assert proof["leaf"]["investor_id"] == str(inv) and proof["leaf"]["balance_fen"] > 0
    assert verify_proof(proof) == (root["root_hash"], root["total_fen"])
    shrunk = {**proof, "leaf": {**proof["leaf"], "balance_fen": proof["leaf"]["balance_fen"] - 1}}
    with pytest.raises(IntegrityFailure):
        verify_proof(shrunk)

    c.post(f"{API}/operator/pause", json={"reason": "audit drill"}, headers=world.h("operator"))
    log = c.get(f"{API}/audit/log", headers=world.h("auditor")).json()
    assert log["chain_valid"] is True and log["items"][-1]["action"] == "pause"
    from crowdleverage.audit.log import log_table

    with world.state.engine.begin() as conn:
        conn.execute(log_table.update().where(log_table.c.seq == 1).values(actor="someone-else"))
    tampered = c.get(f"{API}/audit/log", headers=world.h("auditor")).json()
    assert tampered["chain_valid"] is False and tampered["problems"]


def test_public_transparency_needs_no_login(world: World) -> None:
    c = world.client
    c.post(f"{API}/operator/end-of-day", headers=world.h("operator"))
    t = c.get(f"{API}/public/transparency").json()
    # the three retail tiers and the institutional tier of strategy accounts (tier 4)
    assert [x["tier"] for x in t["tiers"]] == [1, 2, 3, 4]
    assert t["fees"]["senior_target_apr_bps"] == 500
    assert {x["tranche"] for x in t["tranches"]} == {"senior", "junior"}
    dates = [h["date"] for h in t["tranches"][0]["history"]]
    assert dates and len(dates) == len(set(dates))  # one NAV point per trade date
    assert t["reconciliation_status"] == "ok"
    seeded = sum(i[2] for i in demo.INVESTORS) * 100 + sum(
        (b[2] + b[3] + 100_000) * 100 for b in demo.BORROWERS
    )
    assert t["cash_token_supply_fen"] == seeded  # every custody deposit minted once
    assert len(t["proof_root_hash"]) == 64


def test_operator_creates_staff_only_operator(world: World) -> None:
    body = {"username": "aud2", "password": "aud2-pass-x", "display_name": "A2", "role": "auditor"}
    r = world.client.post(f"{API}/users", json=body, headers=world.h("operator"))
    assert r.status_code == 201 and r.json()["role"] == Role.AUDITOR.value
    r = world.client.post(
        f"{API}/users", json={**body, "username": "aud3"}, headers=world.h("investor1")
    )
    assert r.status_code == 403
    r = world.client.post(
        f"{API}/users", json={**body, "role": "admin"}, headers=world.h("operator")
    )
    assert r.status_code == 422


def test_kyc_approval_is_screened_against_sanctions(world: World) -> None:
    c = world.client
    body = {"username": "listed1", "password": "listed-pass-1", "display_name": "Ri Won Ho",
            "role": "investor"}  # fmt: skip
    uid = c.post(f"{API}/auth/register", json=body).json()["id"]
    r = c.post(
        f"{API}/compliance/users/{uid}/kyc",
        json={"decision": "approved"},
        headers=world.h("compliance"),
    )
    assert r.status_code == 403 and r.json()["error"] == "compliance_block"
    assert "sanctions" in r.json()["message"] and r.json()["details"]["score"] >= 80
    assert world.state.users.get(uid).kyc_status == "pending"
    log = c.get(f"{API}/audit/log?limit=200", headers=world.h("auditor")).json()
    assert log["items"][-1]["action"] == "kyc_blocked_sanctions"
