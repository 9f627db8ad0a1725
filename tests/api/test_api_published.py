"""What /transparency publishes beside the book: the market regime at the last close, the
newest stored stress-test result (run at every replayed close by the demo's driver) and the
strategy accounts' liquidity brake."""

from __future__ import annotations

import datetime as dt
import time

from api_world import MARKET, World

from crowdleverage.api.published import EndOfDayStress, regime_summary
from crowdleverage.api.serve import ReplayDriver
from crowdleverage.domain import params as P

API = "/api/v1"


def test_regime_is_the_last_close_before_the_day() -> None:
    # 2016-01-04 opens after the calm 2015-12-31 close; 2016-01-05 after the circuit breaker
    before = regime_summary(MARKET, dt.date(2016, 1, 4))
    after = regime_summary(MARKET, dt.date(2016, 1, 5))
    assert before is not None and after is not None
    assert before["now"]["date"] == "2015-12-31" and before["now"]["regime"] == "calm"
    assert after["now"]["date"] == "2016-01-04" and after["now"]["regime"] == "stressed"
    assert after["now"]["limit_down_bps"] > after["params"]["enter_limit_down_bps"]
    assert regime_summary(MARKET, dt.date(2015, 11, 26)) is None  # nothing published yet


def test_transparency_shows_the_stress_result_once_one_has_run(world: World) -> None:
    c = world.client
    t = c.get(f"{API}/public/transparency").json()
    assert t["stress"] is None and t["regime"]["now"]["regime"] in ("calm", "stressed")
    assert t["strategy_brake"]["stage"] == "NORMAL" and t["strategy_brake"]["new_financing"]
    r = c.get(f"{API}/public/stress")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert "压力测试" in c.get("/transparency").text

    runner = EndOfDayStress(world.state.platform.settings.data_dir)
    runner.day_closed(dt.date(2015, 12, 4))
    runner.join(timeout=300)
    assert runner.runs == 1

    s = c.get(f"{API}/public/stress").json()
    assert s["date"] == "2015-12-04" and s["suite"] == "reduced"
    assert {x["name"] for x in s["scenarios"]} == {"cb2016", "crash2015", "mc60"}
    missed = [x for x in s["targets"] if not x["ok"]]
    assert s["all_targets_met"] is (not missed)
    t = c.get(f"{API}/public/transparency").json()
    assert t["stress"] == s
    page = c.get("/transparency").text
    assert 'id="stress-table"' in page and "stress-none" not in page
    if missed:  # a missed target is shown, not hidden
        assert missed[0]["name"] in page


def test_transparency_publishes_the_stressed_haircuts_and_the_liquidity_cap(world: World) -> None:
    p = world.state.platform
    t = world.client.get(f"{API}/public/transparency").json()["risk_policy"]
    assert t["liquidity_cap_bps"] == P.LIQUIDITY_CAP_BPS and t["liquidity_adv_days"] == 20
    ph = t["stressed_phase"]  # the stressed set phases in; calm, the chain holds all of it
    assert ph["days"] == P.STRESSED_PHASE_IN_DAYS and ph["scale_bps_full"] == 9_000
    if ph["day"] == 0:
        assert (ph["line_bps_now"], ph["scale_bps_now"]) == (ph["line_bps_full"], 9_000)
    else:
        assert (ph["line_bps_now"], ph["scale_bps_now"]) == P.stressed_phase(ph["day"])
    assert t["board_haircuts"]["MAIN"] == {
        "normal_bps": 10_000,
        "stressed_bps": ph["scale_bps_now"],
    }
    assert t["stressed_st_haircut_bps"] == 0 and t["regime_on_chain"] in ("calm", "stressed")
    rows = {r["code"]: r for r in t["liquidity"]}
    assert set(rows) == set(p.codes)
    for r in rows.values():  # a published figure has a cap and a headroom, else neither
        assert (r["cap_fen"] is None) == (not r["published"]) == (r["headroom_fen"] is None)
        if r["published"]:
            assert r["cap_fen"] == r["liquidity_fen"] * P.LIQUIDITY_CAP_BPS // P.BPS
            assert r["headroom_fen"] == r["cap_fen"] - r["exposure_fen"]
    page = world.client.get("/transparency").text
    assert 'id="policy-card"' in page and 'id="policy-liquidity-cap"' in page
    assert 'id="policy-phase"' in page


def test_the_replay_driver_reports_each_closed_day(world: World) -> None:
    p = world.state.platform
    first = p.market.today
    closed: list[dt.date] = []
    driver = ReplayDriver(p, 0.05, day_closed=closed.append)
    driver.start()
    try:
        deadline = time.monotonic() + 180  # generous: a loaded machine ticks slowly
        while not closed and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        driver.stop.set()
        driver.join(timeout=60)
    assert closed and closed[0] == first
