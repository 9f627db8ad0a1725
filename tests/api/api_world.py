"""The API test world: a fresh platform and app (SQLite in a temp dir) seeded with the demo
world through the real use cases. Imported by the API tests under this unique module name
(a bare `conftest` import collides with other directories' conftest modules)."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
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
from crowdleverage.service.writer import PlatformWriter

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

    def close(self) -> None:
        self.client.close()


class SplitWorld(World):
    """The same world behind the split service in one test process: `client` talks to an API
    worker's application (`create_app(worker=True)`: it queues every platform request in the
    durable command queue and answers reads from the read models, never opening the chain),
    and the platform's writer (`service.writer.PlatformWriter`, no replay ticks) runs that
    queue in a thread, as the platform process does. `state` is the platform's side: the
    tests arrange their cases there, as they do in process."""

    writer: PlatformWriter
    thread: threading.Thread

    def close(self) -> None:
        self.writer.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the writer did not stop"
        self.writer.close()
        super().close()


def make_split_world(tmp_path: Path, bars: list[Bar], *, trade: bool) -> SplitWorld:
    from crowdleverage.service.queue import Queue

    w = make_world(tmp_path, bars, trade=trade)
    w.client.close()
    platform = w.state.platform
    queue = Queue(platform.engine)
    queue.create_schema()
    writer = PlatformWriter(w.client.app, queue, tick=None)  # type: ignore[arg-type]
    writer.recover()
    thread = threading.Thread(target=writer.run, name="writer", daemon=True)
    thread.start()
    api = create_app(w.state.settings, worker=True)
    split = SplitWorld(TestClient(api), w.state, w.ids, {})
    split.writer, split.thread = writer, thread
    return split


WORLD_KINDS = ("in_process", "split")  # a module fixture's params: `make_world_of`


def make_world_of(kind: str, tmp_path: Path, bars: list[Bar], *, trade: bool) -> World:
    """`make_world` ("in_process") or `make_split_world` ("split")."""
    make = make_split_world if kind == "split" else make_world
    return make(tmp_path, bars, trade=trade)


def make_world(tmp_path: Path, bars: list[Bar], *, trade: bool) -> World:
    settings = Settings(data_dir=tmp_path, jwt_secret="t" * 40)  # type: ignore[arg-type]
    # 2015-12-04: the first open after the stressed regime that followed the 2015-11-27 drop
    # (21.5% of the sample at limit-down); from then on the demo borrowers may be financed
    platform = Platform(settings, market=MarketFeed(bars, start=dt.date(2015, 12, 4)))
    app = create_app(settings, platform=platform, engine=platform.engine)
    st: ApiState = app.state.api
    ids = demo.seed(st, trade=trade)
    return World(TestClient(app), st, ids, {})


# ── onboarding (issue 15): applicants whose real credit record falls in a PD band ────────────

CREDIT_CSV = SHIPPED_DATA / "credit" / "credit_taiwan_default_30000_uci.csv"
C5 = {"age": 4, "income": 3, "assets": 3, "experience": 3, "knowledge": 2, "horizon": 2, "loss": 3}
C4 = {"age": 4, "income": 3, "assets": 2, "experience": 2, "knowledge": 2, "horizon": 1, "loss": 2}
_applicants = itertools.count(500)


def application_body(
    w: World,
    *,
    band: tuple[float, float] | None,
    name: str = "周明",
    id_number: str | None = None,
    questionnaire: dict[str, int] = C5,
) -> dict[str, object]:
    from crowdleverage.compliance import samples
    from crowdleverage.credit.samples import pick

    n = next(_applicants)
    credit = {}
    if band is not None:
        model = w.state.onboarding().model()
        credit = pick(model, CREDIT_CSV, [band])[0]
    return {
        "name": name,
        "id_number": id_number or samples.resident_id(n),
        "phone": samples.phone(n),
        "bank_card": samples.bank_card(n),
        "document_expiry": (dt.date.today() + dt.timedelta(days=2000)).isoformat(),
        "questionnaire": questionnaire,
        "financial_assets_fen": 500_000_000,
        "avg_annual_income_fen": 60_000_000,
        "experience_years": 6,
        "credit": credit,
    }


def new_applicant(w: World, username: str, role: str = "borrower") -> int:
    from crowdleverage.api.security import Role

    user = w.state.users.create(username, demo.password(username), Role(role), username)
    w.ids.users[username] = user.id
    return user.id


def referred_borrower(w: World) -> int:
    """Arrange: a new borrower whose application the policy refers to the credit officer."""
    name = f"referral{next(_applicants)}"
    uid = new_applicant(w, name)
    r = w.client.post(
        "/api/v1/onboarding/applications",
        json=application_body(w, band=(0.15, 0.30)),
        headers=w.h(name),
    )
    assert r.status_code == 201 and r.json()["status"] == "referred", r.text
    return uid
