"""What one render of each read model (view) costs the platform process's writer while the
demo replays (issue 14): the writer renders a view through the API's own endpoint
(`service.asgi.AsgiCaller`) and does not look at the command queue meanwhile, so the longest
render is the longest wait it adds to a queued withdrawal.

The demo world (`crowdlev serve --demo`'s seed) replays `--ticks` ticks in this process. After
each tick and a 1-fen withdrawal (a wallet command: a block is mined, as commands do between
renders), each view is rendered twice, a withdrawal before each render:

- baseline: as the code before `flows.risk_figures` — the market-wide views' chain figures
  read again at the render (`Platform.figures` emptied before each);
- now: as the writer does — `Platform.warm_views` in slices (`WARM_BUDGET_S`, each a chance
  for the writer to run commands; the slice times are printed as `warm slice`), then the
  render.

Printed per view: process CPU (the render runs on the caller's thread, this one waits) and
wall milliseconds as mean, p90 and max, and the baseline / now ratio of the means.

    .venv/bin/python bench/views.py [--ticks 12]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from typing import Any


def _q(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=12)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CROWDLEV_DATA_DIR"] = tmp
        os.environ.pop("CROWDLEV_DATABASE_URL", None)
        from crowdleverage.api import demo as demo_world
        from crowdleverage.api.app import create_app
        from crowdleverage.api.security import UserStore, issue_token
        from crowdleverage.config import load_settings
        from crowdleverage.flows.platform import Platform
        from crowdleverage.flows.risk_figures import RiskFigures
        from crowdleverage.service.asgi import AsgiCaller
        from crowdleverage.service.writer import WARM_BUDGET_S

        settings = load_settings(None)
        settings.ensure_data_dir()
        p = Platform(settings, market_start=dt.date(2015, 12, 28))
        app = create_app(settings, platform=p, engine=p.engine)
        ids = demo_world.seed(app.state.api)
        for _ in range(3):
            p.tick()
        caller = AsgiCaller(app)
        users = UserStore(app.state.api.engine)

        def bearer(name: str) -> list[tuple[str, str]]:
            tok = issue_token(users.get(ids.users[name]), app.state.api.secret, ttl_s=3600)
            return [("authorization", f"Bearer {tok}")]

        acc = ids.accounts["borrower1"]
        views: list[tuple[str, list[tuple[str, str]]]] = [
            ("/api/v1/status", []),
            ("/api/v1/risk/summary", bearer("operator")),
            ("/api/v1/public/transparency", []),
            (f"/api/v1/margin-accounts/{acc}", bearer("borrower1")),
        ]
        investor = ids.users["investor1"]

        def render(path: str, headers: list[tuple[str, str]], mode: str) -> tuple[float, float]:
            p.withdraw(investor, 1)  # a block mined before the render, as by a command
            c0, t0 = time.process_time(), time.perf_counter()
            status, _, body = caller.call("GET", path, "", [("accept", "application/json"),
                                                            *headers])  # fmt: skip
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
            if status != 200:
                raise SystemExit(f"{path}: {status} {body[:300]!r}")
            return cpu * 1e3, wall * 1e3

        res: dict[tuple[str, str], list[tuple[float, float]]] = {}
        warm: list[float] = []
        same = 0
        drift = 0
        for _ in range(args.ticks):
            p.tick()
            p.withdraw(investor, 1)
            for path, headers in views:
                p.figures = RiskFigures(p)  # baseline: nothing kept
                res.setdefault(("baseline", path), []).append(render(path, headers, "baseline"))
            p.figures = RiskFigures(p)
            p.tick()
            p.withdraw(investor, 1)
            while True:  # the writer: warm slices, each between two batches of commands
                c0 = time.process_time()
                done = p.warm_views(WARM_BUDGET_S)
                warm.append((time.process_time() - c0) * 1e3)
                if done:
                    break
            for path, headers in views:
                res.setdefault(("now", path), []).append(render(path, headers, "now"))
            ok, fen = _compare(p)
            same += ok
            drift = max(drift, fen)
        caller.close()
        p.close()

    print(f"one render of each view, process CPU and wall ms over {args.ticks} demo ticks "
          f"({os.cpu_count()} CPUs shared, load average {os.getloadavg()[0]:.1f})")  # fmt: skip
    head = f"{'':<44}{'cpu mean':>9}{'p90':>7}{'max':>7}{'wall mean':>10}{'p90':>7}{'max':>7}"
    print(head)
    for path, _ in views:
        for mode in ("baseline", "now"):
            r = res[(mode, path)]
            print(_row(f"{mode:<9}{_short(path)}", [c for c, _ in r], [w for _, w in r]))
        base = statistics.mean(c for c, _ in res[("baseline", path)])
        now = statistics.mean(c for c, _ in res[("now", path)])
        print(f"{'':<9}CPU baseline / now: {base / max(now, 1e-9):.1f}x")
    print(_row("warm slice (no render)", warm, warm))
    print(
        f"kept figures against ones read afresh after the renders: equal but for the debts "
        f"in {same} of {args.ticks} ticks; debts differ by at most {drift} fen (interest)"
    )


def _short(path: str) -> str:
    return path.removeprefix("/api/v1")[:34]


def _row(label: str, cpu: list[float], wall: list[float]) -> str:
    return (f"{label:<44}{statistics.mean(cpu):9.1f}{_q(cpu, 0.9):7.1f}{max(cpu):7.1f}"
            f"{statistics.mean(wall):10.1f}{_q(wall, 0.9):7.1f}{max(wall):7.1f}")  # fmt: skip


def _compare(p: Any) -> tuple[bool, int]:
    """The risk panel from the kept figures against one read afresh now: (all but the debts
    and ratios equal, the largest difference of a debt in fen: the interest since the kept
    figures were read)."""
    from crowdleverage.flows.risk_figures import RiskFigures

    kept = p._risk_snapshot()
    p.figures = RiskFigures(p)
    fresh = p._risk_snapshot()
    drift = max(
        (
            abs(a["debt_fen"] - b["debt_fen"])
            for a, b in zip(kept["accounts"], fresh["accounts"], strict=True)
        ),
        default=0,
    )
    strip = ("debt_fen", "ratio_bps")

    def rows(snap: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in a.items() if k not in strip} for a in snap["accounts"]]

    same = rows(kept) == rows(fresh) and all(
        kept[k] == fresh[k] for k in ("exposure_by_security_fen", "waiting_liquidations")
    )
    return same, drift


if __name__ == "__main__":
    sys.exit(main())
