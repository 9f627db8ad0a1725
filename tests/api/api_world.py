"""The API test world: a fresh platform and app (SQLite in a temp dir) seeded with the demo
world through the real use cases. Imported by the API tests under this unique module name
(a bare `conftest` import collides with other directories' conftest modules)."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from crowdleverage.api import demo
from crowdleverage.api.app import create_app
from crowdleverage.api.deps import ApiState
from crowdleverage.config import SHIPPED_DATA, Settings
from crowdleverage.flows.market import MarketFeed
from crowdleverage.flows.platform import Platform
from crowdleverage.market.bars import Bar

MARKET = SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv"
_keys = itertools.count(1)


@dataclass
class World:
    client: TestClient
    state: ApiState
    ids: demo.DemoIds
    tokens: dict[str, str]

    def login(self, username: str) -> str:
        if username not in self.tokens:
            r = self.client.post(
                "/api/v1/auth/token",
                data={"username": username, "password": demo.password(username)},
            )
            assert r.status_code == 200, r.text
            self.tokens[username] = r.json()["access_token"]
        return self.tokens[username]

    def h(self, username: str, *, key: bool = False) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.login(username)}"}
        if key:
            headers["Idempotency-Key"] = f"test-key-{next(_keys):08d}"
        return headers

    def uid(self, username: str) -> int:
        return self.ids.users[username]


def make_world(tmp_path: Path, bars: list[Bar], *, trade: bool) -> World:
    settings = Settings(data_dir=tmp_path, jwt_secret="t" * 40)  # type: ignore[arg-type]
    platform = Platform(settings, market=MarketFeed(bars, start=dt.date(2015, 12, 1)))
    app = create_app(settings, platform=platform, engine=platform.engine)
    st: ApiState = app.state.api
    ids = demo.seed(st, trade=trade)
    return World(TestClient(app), st, ids, {})
