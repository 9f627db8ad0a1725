"""The platform facade on a real JSON-RPC node (anvil) instead of the embedded chain: the
financing system deployed on first use, the same flows (enrol, deposit, subscribe, epoch
close, margin, orders requested on chain and filled at the ticks) with the same units, fills
and balances as on the embedded chain, contract refusals decoded into the engine's reason,
chain and custody reconciled, and a second service on the same data dir and node reusing the
deployment manifest and trading on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anvil_node import anvil
from flows_world import (
    BORROWER,
    INVESTOR_JUNIOR,
    INVESTOR_SENIOR,
    MARKET,
    START,
    fund_pool,
    lever_up,
)

from crowdleverage.chain.codes import code_to_chain
from crowdleverage.chain.deploy import manifest_path, read_manifest
from crowdleverage.config import Settings
from crowdleverage.domain.errors import ConfigError, ContractRevert
from crowdleverage.flows.market import MarketFeed
from crowdleverage.flows.platform import MarginAccount, Platform, replay_genesis_s
from crowdleverage.market.bars import Bar, read_bars

pytestmark = pytest.mark.anvil

USERS = (INVESTOR_SENIOR, INVESTOR_JUNIOR, BORROWER)
ORDER_FIELDS = ("code", "side", "quantity", "limit_price_fen", "trade_date", "status",
                "filled_qty", "filled_value_fen", "fees_fen")  # fmt: skip
JWT_SECRET = "anvil-flows-test-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return read_bars(MARKET)


@pytest.fixture
def rpc_url(anvil_bin: str, bars: list[Bar]) -> Iterator[str]:
    """A dev node whose clock starts where the replay starts (as README's "at scale" says)."""
    genesis = replay_genesis_s(MarketFeed(bars, start=START))
    with anvil(anvil_bin, "--timestamp", str(genesis)) as url:
        yield url


def rpc_platform(data_dir: Path, url: str, bars: list[Bar]) -> Platform:
    settings = Settings(
        data_dir=data_dir, chain="rpc", rpc_url=url, chain_dev_keys=True, jwt_secret=JWT_SECRET
    )
    return Platform(settings, market=MarketFeed(bars, start=START))


def embedded_platform(data_dir: Path, bars: list[Bar]) -> Platform:
    return Platform(Settings(data_dir=data_dir), market=MarketFeed(bars, start=START))


def first_day(p: Platform) -> MarginAccount:
    """Enrol, fund the pool (units at the epoch close), a tier-2 borrower levered up in three
    securities; the day is left open."""
    for uid, role in zip(USERS, ("investor", "investor", "borrower"), strict=True):
        p.enroll(uid, role)
    fund_pool(p, 100_000_000, 40_000_000)  # 1m + 400k 元
    p.deposit(BORROWER, 10_000_000, "BORROWER-0001")
    acc = p.open_margin_account(BORROWER, 2, 2)
    p.fund_account(acc.id, 10_000_000, reserve=False)
    lever_up(p, acc.id, 10_000_000, n=3)
    return acc


def figures(p: Platform, acc: MarginAccount) -> dict[str, Any]:
    """What does not depend on the chain clock (interest does: see the xfail below)."""
    view = p.account_view(acc)
    return {
        "units": {u: [h["units"] for h in p.holdings(u)["holdings"]] for u in USERS},
        "wallets": {u: p.wallet_fen(u) for u in USERS},
        "orders": [[getattr(o, f) for f in ORDER_FIELDS] for o in p.orders_of(acc.id)],
        "positions": [(x["code"], x["quantity"], x["sellable"]) for x in p.positions(acc)],
        "cash_fen": view.cash_fen,
        "supply_fen": p.gateway.cash_supply_fen(),
        "custody_cash_fen": p.custody.bank_cash_fen(),
        "lines": [(x["kind"], x["amount_fen"]) for x in p.history[BORROWER]],
    }


def check_reconciled(p: Platform) -> None:
    rep = p.reconcile()
    assert rep["status"] == "ok", rep["breaks"]
    assert rep["chain"]["chain"] == "rpc"
    assert rep["chain"]["supply_fen"] == rep["chain"]["custody_cash_fen"] > 0
    assert rep["claims_fen"] == rep["pool_assets_fen"]
    assert rep["accounts_checked"] >= len(USERS)
    assert p.paused_reason is None


def test_platform_runs_on_anvil_like_on_the_embedded_chain(
    tmp_path: Path, rpc_url: str, bars: list[Bar]
) -> None:
    emb = embedded_platform(tmp_path / "embedded", bars)
    try:
        expected = figures(emb, first_day(emb))
    finally:
        emb.close()

    data_dir = tmp_path / "rpc"
    p = rpc_platform(data_dir, rpc_url, bars)
    assert p.chain.kind == "rpc"
    manifest = read_manifest(data_dir)  # deployed on first use, under the platform's data dir
    acc = first_day(p)

    # the same units, fills, balances and statement lines as on the embedded chain
    got = figures(p, acc)
    assert got == expected
    senior, junior = got["units"][INVESTOR_SENIOR], got["units"][INVESTOR_JUNIOR]
    assert senior[0] > 0 == senior[1] and junior[1] > 0 == junior[0]  # [senior, junior]
    assert [s for _, _, s in got["positions"]] == [0, 0, 0]  # T+1
    view = p.account_view(acc)
    assert view.debt_fen > 0 and view.ratio_bps is not None

    # a refusal is the engine's revert, decoded from the node; nothing is written
    code = next(c for c in p.codes if c not in {x[0] for x in got["positions"]})
    q = p.quote(code)
    with pytest.raises(ContractRevert) as refused:  # ten times the equity: beyond tier 2
        p.buy(acc.id, code, 100_000_000 // q.price_fen // 100 * 100, q.limit_up_fen or 0)
    assert refused.value.reason.startswith("margin:"), refused.value.reason
    assert refused.value.details["contract"] == "OrderBook"  # the engine's revert, through it
    assert p.account_view(acc) == view and len(p.orders_of(acc.id)) == 3

    p.end_of_day()
    assert not p.day_open and p.market.today > START
    check_reconciled(p)
    view = p.account_view(acc)
    orders = [(o.id, o.status, o.filled_qty) for o in p.orders_of(acc.id)]
    deployed = p.chain.deployed()
    p.close()

    # a second service on the same data dir and node: the manifest is reused, not redeployed
    again = rpc_platform(data_dir, rpc_url, bars)
    assert read_manifest(data_dir) == manifest
    assert again.chain.deployed() == deployed
    assert again.paused_reason is None
    assert again.account_view(again.account(acc.id)) == view
    assert [(o.id, o.status, o.filled_qty) for o in again.orders_of(acc.id)] == orders

    # … and trades on: the next day, yesterday's buy is sellable (T+1) and the sell fills
    again.tick()
    assert again.day_open
    pos = again.positions(acc)[0]
    assert pos["sellable"] == pos["quantity"]
    q = again.quote(pos["code"])
    sell = again.sell(acc.id, pos["code"], pos["quantity"], q.limit_down_fen or 1)
    for _ in range(3):
        again.tick()
    assert next(o for o in again.orders_of(acc.id) if o.id == sell.id).status == "filled"
    assert pos["code"] not in {x["code"] for x in again.positions(acc)}
    check_reconciled(again)
    again.close()


def test_the_chain_clock_follows_the_replay_on_anvil(
    tmp_path: Path, rpc_url: str, bars: list[Bar]
) -> None:
    p = rpc_platform(tmp_path, rpc_url, bars)
    try:
        acc = first_day(p)
        opened = p.chain.block_time()
        for _ in range(3):
            p.tick()
        held = [x["code"] for x in p.positions(acc)]
        p.end_of_day()
        # the replay's ticks are minutes apart, and its closing prices stay reliable
        # overnight (borrowing, withdrawals and the risk panel use them until the next open)
        assert all(p.chain.call("PriceOracle", "is_reliable", code_to_chain(c)) for c in held)
        assert p.chain.block_time() - opened < 12 * 3_600
    finally:
        p.close()


def test_a_node_on_its_wall_clock_is_refused_before_deploying(
    tmp_path: Path, anvil_bin: str, bars: list[Bar]
) -> None:
    with (
        anvil(anvil_bin) as url,  # no --timestamp: the node lives in the present
        pytest.raises(ConfigError, match="anvil --timestamp"),
    ):
        rpc_platform(tmp_path, url, bars)
    assert not manifest_path(tmp_path).exists()  # refused before deploying anything
