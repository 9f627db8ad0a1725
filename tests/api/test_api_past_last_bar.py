"""The platform keeps every page and read endpoint working after a financed security's last bar
(000571 has no rows after 2016-01-15 in the shipped file): its quote is the halted last close,
shown as 停牌, and a liquidation that waits on it is reported once, not at every re-mark."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_world import MARKET, World

from crowdleverage.api import demo
from crowdleverage.api.app import create_app
from crowdleverage.config import Settings
from crowdleverage.flows.market import MarketFeed
from crowdleverage.flows.platform import Platform
from crowdleverage.market.bars import read_bars

STOPS = "000571"  # last bar 2016-01-15 in the shipped file
LAST_BAR = dt.date(2016, 1, 15)


@pytest.fixture(scope="module")
def past(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The demo seeded on 2016-01-14 and replayed to the first day after 000571's last bar."""
    tmp: Path = tmp_path_factory.mktemp("pastbar")
    settings = Settings(data_dir=tmp, jwt_secret="p" * 40)  # type: ignore[arg-type]
    market = MarketFeed(read_bars(MARKET), start=dt.date(2016, 1, 14))
    platform = Platform(settings, market=market)
    app = create_app(settings, platform=platform, engine=platform.engine)
    ids = demo.seed(app.state.api)
    assert STOPS in platform.codes
    limit = 10 * market.ticks_per_day  # generous: the target is the 3rd trading day
    for _ in range(limit):
        if market.today > LAST_BAR and market.step > 0:
            break
        platform.tick()
    assert market.today > LAST_BAR, market.today
    assert STOPS not in market.days[market.day_index].bars
    from fastapi.testclient import TestClient

    w = World(TestClient(app), app.state.api, ids, {})
    yield w
    w.client.close()
    w.state.engine.dispose()


def _holder(w: World) -> str:
    p = w.state.platform
    for name, acc_id in w.ids.accounts.items():
        if any(pos["code"] == STOPS for pos in p.positions(p.account(acc_id))):
            return name
    raise AssertionError(f"no demo borrower holds {STOPS}")


def test_pages_and_account_api_answer_after_a_securitys_last_bar(past: World) -> None:
    w = past
    borrower = _holder(w)
    for who in ("investor1", borrower):
        r = w.client.get("/me", headers=w.h(who))
        assert r.status_code == 200, (who, r.text[:300])
        assert "停牌" in r.text, who  # the halted security is named as such
    r = w.client.get("/transparency")
    assert r.status_code == 200, r.text[:300]
    r = w.client.get("/risk", headers=w.h("operator"))
    assert r.status_code == 200, r.text[:300]
    acc_id = w.ids.accounts[borrower]
    r = w.client.get(f"/api/v1/margin-accounts/{acc_id}", headers=w.h(borrower))
    assert r.status_code == 200, r.text
    body = r.json()
    held = [x for x in body["positions"] if x["code"] == STOPS]
    assert held and held[0]["price_fen"] == 569, held  # the 2016-01-15 close
    assert held[0]["halted"] is True, held
    for path in ("/api/v1/margin-accounts", f"/api/v1/margin-accounts/{acc_id}/orders"):
        assert w.client.get(path, headers=w.h(borrower)).status_code == 200, path
    assert w.client.get("/api/v1/risk/summary", headers=w.h("operator")).status_code == 200
    assert w.client.get("/api/v1/public/transparency").status_code == 200


def test_a_waiting_liquidation_is_reported_once(past: World) -> None:
    """The keeper re-marks a liquidation that waits (sealed, halted) at every tick, each a
    LiquidationStarted on chain; the risk feed says `liquidation_started` once per
    liquidation, and again only after it ended. Fed the engine's event arguments for a demo
    account (the shipped replay does not keep one waiting long enough to show it)."""
    p = past.state.platform
    acc = p.account(past.ids.accounts["borrower3"])
    who = p.fin.address(acc.owner_id)
    started = {"account": who, "ratio_bps": 11_370, "provision_fen": 0, "full": False}
    ended = {"account": who, "shortfall_fen": 0}
    before = len(p.events)
    p._apply("LiquidationStarted", started)
    for _ in range(5):  # re-marks while it waits
        p._apply("LiquidationStarted", started)
    p._apply("LiquidationEnded", ended)
    p._apply("LiquidationStarted", started)  # a new liquidation
    p._apply("LiquidationEnded", ended)
    kinds = [(e.kind, e.account_id) for e in list(p.events)[before:]]
    assert kinds == [
        ("liquidation_started", acc.id),
        ("liquidation_done", acc.id),
        ("liquidation_started", acc.id),
        ("liquidation_done", acc.id),
    ], kinds
