"""The crash replay over a real ex-date: unadjusted 2016 bars, the shipped action file, the
whole platform (oracle feeder, exchange, broker, engine, monitor, keeper). 000420 gives 10
transfer shares per 10 on 2016-10-12: every holder's position doubles at the open and no
margin ratio jumps."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from crowdleverage.config import SHIPPED_DATA
from crowdleverage.risk.replay import Replay, ReplayConfig
from crowdleverage.risk.session import EpochClose
from crowdleverage.risk.world import ENGINE

DATA = SHIPPED_DATA / "market" / "ashare_unadjusted_2016-04_2016-10.csv"
ACTIONS = SHIPPED_DATA / "market" / "corporate_actions.csv"
EX = dt.date(2016, 10, 12)
CODE = 420


def test_replay_applies_the_ten_for_ten_at_the_open(tmp_path: Path) -> None:
    cfg = ReplayConfig(
        data=DATA, start=EX, end=EX, borrowers_per_tier=2, stocks=6, ticks_per_day=4,
        actions=ACTIONS, work_dir=tmp_path,
    )  # fmt: skip
    replay = Replay(cfg)
    try:
        replay.start()  # the record date 2016-10-11: portfolios bought and held at the close
        chain = replay.chain
        held = {w: int(chain.call(ENGINE, "positions", w, CODE)) for w in replay.names}
        holders = {w: q for w, q in held.items() if q}
        assert holders, "no borrower holds 000420: change the seed"
        before = {w: chain.call(ENGINE, "account_state", w) for w in holders}
        (day,) = replay.days
        report, since = replay.begin_day(day)  # oracle day open, actions, first tick
        assert report.positions_adjusted == len(holders)
        for w, q in holders.items():
            assert int(chain.call(ENGINE, "positions", w, CODE)) == 2 * q
            _, _, ratio0 = before[w]
            _, _, ratio1 = chain.call(ENGINE, "account_state", w)
            # the first tick moves prices from the close to the open (000420 opened at its
            # reference, 4.01 元); without the adjustment half of its value would be gone
            assert abs(int(ratio1) - int(ratio0)) < int(ratio0) // 50, w
        replay.session.close(EpochClose.DUE)
        report = replay.finish_day(report, since)
        assert report.warnings == 0 and report.liquidations_started == 0
        final = replay.finish([report])  # the replay's invariants, custody counting the
        assert all(final.invariants.values()), final.violations  # added shares
    finally:
        replay.close()
