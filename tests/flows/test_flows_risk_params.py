"""One source of risk parameters: the platform is deployed from the definition
(`domain.params`, version and digest recorded at `RiskParams`); the operator changes a tier
on chain and the monitor, the keeper, the account status, the API and the transparency page
use the new lines at the next tick."""

from __future__ import annotations

from pathlib import Path

from flows_world import BORROWER, MARKET, START, fund_pool, lever_up

from crowdleverage.api.endpoints.operator import transparency
from crowdleverage.api.views import account_out
from crowdleverage.chain.deploy import INSTITUTIONAL_TIER
from crowdleverage.chain.margin import margin_events
from crowdleverage.chain.params import PARAMS, read_params
from crowdleverage.config import Settings
from crowdleverage.custody.db import make_engine
from crowdleverage.domain import params as P
from crowdleverage.flows.market import MarketFeed
from crowdleverage.flows.model import AccountStatus
from crowdleverage.flows.platform import Platform
from crowdleverage.market.bars import read_bars
from crowdleverage.risk.monitor import AccountState


def test_a_tier_changed_on_chain_is_followed_by_every_reader_at_the_next_tick(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'custody.db'}")
    p = Platform(
        Settings(data_dir=tmp_path),
        engine=engine,
        market=MarketFeed(read_bars(MARKET), start=START),
    )
    try:
        for uid, role in ((1, "investor"), (2, "investor"), (BORROWER, "borrower")):
            p.enroll(uid, role)
        # deployed from the one definition
        on_chain = read_params(p.chain)
        assert (on_chain.version, on_chain.digest) == (P.VERSION, P.digest())
        # the retail tiers come from the definition; the institutional tier of strategy
        # accounts (strategies/accounts.py) is set beside them by deploy_strategy_legs
        assert {n: t for n, t in on_chain.tiers.items() if n in P.TIERS} == P.TIERS
        assert set(on_chain.tiers) == {*P.TIERS, INSTITUTIONAL_TIER}
        fund_pool(p, 800_000_000, 300_000_000)
        p.deposit(BORROWER, 60_000_000, "BORROWER-PARAMS")
        acc = p.open_margin_account(BORROWER, 3, 3)
        p.fund_account(acc.id, 50_000_000, reserve=False)  # no reserve: a warning, no top-up
        lever_up(p, acc.id, 50_000_000)
        ratio = p.account_view(acc).ratio_bps
        assert ratio is not None and ratio >= P.TIERS[3].initial_ratio_bps
        assert p.status(p.account_view(acc), 3) is AccountStatus.HEALTHY
        warnings_before = len(margin_events(p.chain, "MarginWarning"))

        # the operator raises tier 3's lines above the account's ratio (liquidation stays below)
        new = (3, ratio + 3_000, ratio + 2_000, P.TIERS[3].liquidation_ratio_bps, 1_000)
        p.chain.send(PARAMS, "set_tier", 3, new, actor="operator")
        [event] = p.chain.events(PARAMS, "TierSet")[-1:]
        assert tuple(event.args["old"]) == P.engine_tier(P.TIERS[3])
        assert tuple(event.args["new"]) == new
        p.tick()

        # monitor and keeper: the new lines, the account warned on chain (which re-checks)
        assert p.fin.monitor.tier_lines(3) == (new[2], new[3])
        row = p.fin.monitor.row(p.fin.address(BORROWER))
        assert p.fin.monitor.tick().state[row] == AccountState.WARNING
        warned = margin_events(p.chain, "MarginWarning")[warnings_before:]
        assert [int(e.args["warning_bps"]) for e in warned] == [new[2]]
        # account status and the API's account
        view = p.account_view(acc)
        assert p.status(view, 3) is AccountStatus.WARNING
        out = account_out(p, acc)
        assert (out.initial_bps, out.warning_bps, out.status) == (new[1], new[2], "warning")
        # the transparency page and the operator's risk panel
        [t3] = [t for t in transparency(p)["tiers"] if t.tier == 3]
        assert (t3.initial_bps, t3.warning_bps, t3.liquidation_bps) == new[1:4]
        [panel] = [a for a in p.risk_snapshot()["accounts"] if a["account_id"] == acc.id]
        assert (panel["warning_bps"], panel["status"]) == (new[2], "warning")
    finally:
        p.close()
        engine.dispose()
