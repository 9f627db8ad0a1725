"""CashToken as the on-chain twin of custody cash, on the embedded chain and on anvil (RPC):
deposits mint and payouts burn with the ledger transfer id as reference; reconciliation finds
supply = custody cash and every reference once on both sides, and a break fails closed."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.rpc import RpcChain
from crowdleverage.config import SHIPPED_DATA, Settings
from crowdleverage.custody.db import make_engine
from crowdleverage.domain.errors import PlatformPaused
from crowdleverage.flows.book import BANK_KEY, Kind, Leg
from crowdleverage.flows.cash_twin import ACTORS, CashTokenTwin, open_twin
from crowdleverage.flows.market import MarketFeed
from crowdleverage.flows.platform import Platform
from crowdleverage.market.bars import Bar, read_bars

INVESTOR = 7


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return read_bars(SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv")


@pytest.fixture(scope="module")
def anvil_url(anvil_bin: str) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [anvil_bin, "--host", "127.0.0.1", "--port", str(port), "--silent", "--chain-id", "31337"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("anvil did not start")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(params=["embedded", "anvil"])
def twin(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CashTokenTwin]:
    if request.param == "embedded":
        t = open_twin(Settings(data_dir=tmp_path))
    else:
        url = request.getfixturevalue("anvil_url")
        port = RpcChain(url, ActorKeys.dev(20160104, ACTORS), tmp_path / "rpc")
        port.fund(list(ACTORS), 10**21)
        t = CashTokenTwin(port, tmp_path / "rpc")
    yield t
    t.close()


def test_deposits_mint_payouts_burn_and_reconcile(
    twin: CashTokenTwin, tmp_path: Path, bars: list[Bar]
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'custody.db'}")
    p = Platform(Settings(data_dir=tmp_path), engine=engine,
                 market=MarketFeed(bars, start=dt.date(2016, 1, 4)), twin=twin)  # fmt: skip
    assert twin.supply_fen() == 0  # a fresh chain per test (anvil: one test uses it)
    p.deposit(INVESTOR, 500_000, "CHAIN-DEP-0001")
    p.deposit(INVESTOR, 250_000, "CHAIN-DEP-0002")
    p.withdraw(INVESTOR, 100_000)
    assert twin.supply_fen() == 650_000
    rep = p.reconcile()
    assert rep["status"] == "ok", rep["breaks"]
    assert rep["chain"]["supply_fen"] == rep["chain"]["custody_cash_fen"] == 650_000
    assert rep["chain"]["references"] == 3
    # a custody posting without its chain twin: supply and references break, fail closed
    p.cash.move([Leg(BANK_KEY, (Kind.WALLET, INVESTOR), 1_000)], what="rogue")
    rep = p.reconcile()
    assert rep["status"] == "break"
    assert any("supply" in b for b in rep["breaks"])
    assert any("Minted 1000" in b for b in rep["breaks"])
    with pytest.raises(PlatformPaused):
        p.deposit(INVESTOR, 1, "CHAIN-DEP-0003")
    engine.dispose()
