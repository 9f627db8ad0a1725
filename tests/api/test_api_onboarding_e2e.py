"""End to end through the API on the embedded chain: one onboarding pipeline decides, the
platform relays the identity writes, and the chain's IdentityRegistry and the MarginEngine's
tier agree with every decision; decisions and overrides are in the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from api_world import C4, World, application_body, make_world, new_applicant

from crowdleverage.chain.roles import Role as ChainRole
from crowdleverage.market.bars import Bar

API = "/api/v1"


@pytest.fixture(scope="module")
def ow(tmp_path_factory: pytest.TempPathFactory, market_bars: list[Bar]) -> Iterator[World]:
    w = make_world(tmp_path_factory.mktemp("onboarding"), market_bars, trade=False)
    yield w
    w.client.close()
    w.state.engine.dispose()


def _chain(w: World, uid: int) -> tuple[int, bool, int, int]:
    """(roles, verified, suitability, engine tier) of the user's address on chain."""
    who = w.state.platform.fin.address(uid)
    roles, verified, suit, _jur, _expiry, _frozen = w.state.platform.chain.call(
        "IdentityRegistry", "identities", who
    )
    tier = int(w.state.platform.chain.call("MarginEngine", "accounts", who)[0])
    return int(roles), bool(verified), int(suit), tier


def _apply(w: World, username: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    uid = new_applicant(w, username)
    r = w.client.post(
        f"{API}/onboarding/applications", json=application_body(w, **kw), headers=w.h(username)
    )
    assert r.status_code == 201, r.text
    return uid, r.json()


def _audit_actions(w: World) -> list[tuple[str, str, dict[str, object]]]:
    r = w.client.get(f"{API}/audit/log?limit=200", headers=w.h("auditor"))
    assert r.status_code == 200, r.text
    return [(e["actor"], e["action"], e["details"]) for e in r.json()["items"]]


def test_approved_at_tier_2_with_reasons_and_on_chain(ow: World) -> None:
    uid, view = _apply(ow, "applicant-t2", band=(0.04, 0.08))

    assert view["status"] == "approved" and view["tier"] == 2
    steps = {s["step"]: s for s in view["steps"]}
    assert list(steps) == [
        "validation", "kyc", "sanctions", "suitability", "credit", "decision", "chain"
    ]  # fmt: skip
    assert steps["suitability"]["result"] == "C5"
    assert steps["credit"]["reasons"], "the top adverse factors are shown"
    assert all(r["en"] and r["zh"] for s in view["steps"] for r in s["reasons"])
    assert view["rate_bps"] == 900 + 300  # tier 2's rate + the band's spread
    assert _chain(ow, uid) == (int(ChainRole.BORROWER), True, 5, 2)
    me = ow.client.get(f"{API}/me", headers=ow.h("applicant-t2")).json()
    assert me["kyc_status"] == "approved" and me["credit_tier"] == 2
    r = ow.client.post(f"{API}/margin-accounts", json={"tier": 3}, headers=ow.h("applicant-t2"))
    assert r.status_code == 403, "a tier above the granted one is refused"
    officer = ow.client.get(f"{API}/compliance/onboarding/users/{uid}", headers=ow.h("compliance"))
    assert officer.json()["model_version"] == ow.state.onboarding().model().version


def test_referred_then_approved_by_the_officer_with_a_reason(ow: World) -> None:
    uid, view = _apply(ow, "applicant-ref", band=(0.15, 0.30), questionnaire=C4)
    assert view["status"] == "referred"
    assert _chain(ow, uid) == (0, False, 0, 0), "nothing on chain before a decision"
    queue = ow.client.get(f"{API}/compliance/onboarding", headers=ow.h("compliance")).json()
    assert str(uid) in {q["user_ref"] for q in queue}

    too_high = ow.client.post(
        f"{API}/compliance/onboarding/users/{uid}/override",
        json={"outcome": "approve", "tier": 3, "reason": "long customer of the bank"},
        headers=ow.h("compliance"),
    )
    no_reason = ow.client.post(
        f"{API}/compliance/onboarding/users/{uid}/override",
        json={"outcome": "approve", "tier": 1, "reason": "ok"},
        headers=ow.h("compliance"),
    )
    r = ow.client.post(
        f"{API}/compliance/onboarding/users/{uid}/override",
        json={"outcome": "approve", "tier": 1, "reason": "salary slips checked; stable income"},
        headers=ow.h("compliance"),
    )

    assert too_high.status_code == 422 and "exceeds" in too_high.json()["message"]
    assert no_reason.status_code == 422
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "approved" and out["tier"] == 1
    assert out["override"]["actor"] == "compliance"
    assert _chain(ow, uid) == (int(ChainRole.BORROWER), True, 4, 1)
    again = ow.client.post(
        f"{API}/compliance/onboarding/users/{uid}/override",
        json={"outcome": "decline", "reason": "changed my mind entirely"},
        headers=ow.h("compliance"),
    )
    assert again.status_code == 409
    overrides = [d for a, act, d in _audit_actions(ow) if act == "onboarding_override"]
    assert any(d["user_ref"] == str(uid) and "salary slips" in str(d["reason"]) for d in overrides)


def test_declined_for_credit(ow: World) -> None:
    uid, view = _apply(ow, "applicant-bad", band=(0.30, 1.01))

    assert view["status"] == "declined" and view["tier"] is None
    decision = next(s for s in view["steps"] if s["step"] == "decision")
    assert "pd_above_limit" in {r["code"] for r in decision["reasons"]}
    assert _chain(ow, uid) == (0, False, 0, 0)
    me = ow.client.get(f"{API}/me", headers=ow.h("applicant-bad")).json()
    assert me["kyc_status"] == "rejected"


def test_blocked_by_sanctions_without_tipping_off(ow: World) -> None:
    # 阿不都·哈克 (UN QDi.268), born 1971-10-10 as the id number says.
    uid, view = _apply(
        ow, "applicant-hit", band=(0.0, 0.04), name="阿不都·哈克", id_number="110105197110100016"
    )

    assert view["status"] == "under_review"
    assert "QDi" not in str(view) and "case" not in str(view).lower()
    officer = ow.client.get(
        f"{API}/compliance/onboarding/users/{uid}", headers=ow.h("compliance")
    ).json()
    assert officer["status"] == "blocked"
    hit = next(s for s in officer["steps"] if s["step"] == "sanctions")
    cases = ow.state.compliance().cases(officer["identity_id"])
    assert [c.case_id for c in cases] == [hit["case_id"]]
    assert _chain(ow, uid) == (0, False, 0, 0)


def test_every_bad_field_is_reported_at_once(ow: World) -> None:
    new_applicant(ow, "applicant-typo")
    body = application_body(ow, band=(0.04, 0.08))
    body["id_number"] = "110105198005170071"  # wrong check digit
    body["questionnaire"] = {**body["questionnaire"], "loss": 9}  # type: ignore[dict-item]
    credit = dict(body["credit"])  # type: ignore[call-overload]
    del credit["X6"]
    credit["X1"] = -5.0
    body["credit"] = credit

    r = ow.client.post(f"{API}/onboarding/applications", json=body, headers=ow.h("applicant-typo"))

    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["details"]["errors"]}
    assert {"id_number", "questionnaire.loss", "credit.X6", "credit.X1"} <= fields
    mine = ow.client.get(f"{API}/onboarding/applications/me", headers=ow.h("applicant-typo"))
    assert mine.status_code == 404, "nothing was stored"


def test_decisions_are_in_the_audit_log(ow: World) -> None:
    actions = {act for _, act, _ in _audit_actions(ow)}

    assert {"onboarding_approved", "onboarding_referred", "onboarding_override",
            "onboarding_declined", "onboarding_blocked"} <= actions  # fmt: skip


def test_review_retiers_a_borrower_on_chain(ow: World) -> None:
    uid, view = _apply(ow, "applicant-t3", band=(0.0, 0.04))
    assert view["tier"] == 3 and _chain(ow, uid)[3] == 3

    calm = ow.client.post(
        f"{API}/compliance/onboarding/users/{uid}/review",
        json={"from_platform": True},
        headers=ow.h("compliance"),
    )
    calls = ow.client.post(
        f"{API}/compliance/onboarding/users/{uid}/review", json={"margin_calls": 4},
        headers=ow.h("compliance"),
    )  # fmt: skip

    assert calm.status_code == 200 and calm.json()["tier"] == 3, "no account yet: no signal"
    assert calls.status_code == 200 and calls.json()["tier"] == 2
    assert calls.json()["steps"][-1]["reasons"][0]["code"] == "margin_calls"
    assert _chain(ow, uid)[3] == 2, "the engine's tier follows the review"


def test_the_applicant_page_shows_the_steps_in_both_languages(ow: World) -> None:
    from crowdleverage.api.deps import COOKIE

    ow.client.cookies.set(COOKIE, ow.login("borrower2"))
    zh = ow.client.get("/me?lang=zh")
    en = ow.client.get("/me?lang=en")
    ow.client.cookies.clear()

    assert zh.status_code == 200 and "开户审核" in zh.text and "未命中制裁名单" in zh.text
    assert "Onboarding" in en.text and "no sanctions list match" in en.text
