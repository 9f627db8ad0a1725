"""Stress suites, their targets, and the stored results the transparency page reads.

- `reduced_suite`: what the platform runs at every end of day — the 2016-01 real-stock weeks,
  the 2015 crash path and a 60-day Monte Carlo, on a smaller book and few paths, in this
  process (seconds).
- `full_suite`: every scenario, on demand, on Dask.
- Results are JSON files under `<data_dir>/stress/` named by time, suite and a hash of the
  parameters; `latest_result` returns the newest one (for the API and `/transparency`).

Targets (issue 13, DESIGN §11), as checked here:
- historical scenarios (book at ≥ 70% utilisation): no path with any senior loss; the junior
  tranche's 99% VaR of loss < 5%; each tier's median account loss below the umbrella trust's
  at the same leverage on the same paths; tier 3's median ≤ 60%.
- Monte Carlo: P(any senior loss) < 0.1%; junior ES 99% < 5%.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from crowdleverage.domain.errors import NotFound
from crowdleverage.risk.stress.policy import Book, MarginPolicy
from crowdleverage.risk.stress.scenarios import HISTORICAL, SCENARIOS, RunOptions, run

log = logging.getLogger("crowdleverage.stress")

SCHEMA = 1
REDUCED = ("cb2016", "crash2015", "mc60")
REDUCED_BOOK = Book(accounts=200)
REDUCED_PATHS = 20
JUNIOR_LIMIT = 0.05
SENIOR_P_LIMIT = 0.001
TIER3_LIMIT = 0.60


def params_hash(policy: MarginPolicy) -> str:
    text = json.dumps(policy.to_toml_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_targets(scenarios: dict[str, Any], book: Book) -> dict[str, dict[str, Any]]:
    """Each target: the measured value, the limit and whether it is met."""
    out: dict[str, dict[str, Any]] = {}

    def put(name: str, value: float | None, limit: float, ok: bool) -> None:
        out[name] = {"value": value, "limit": limit, "ok": bool(ok)}

    hist_util = book.utilisation_bps >= 7_000
    for name, r in scenarios.items():
        jun = r["layers"]["junior"]
        if name in HISTORICAL:
            put(f"{name}.senior_max", r["layers"]["senior"]["max"], 0.0,
                hist_util and r["layers"]["senior"]["max"] <= 0.0)  # fmt: skip
            put(f"{name}.junior_var99", jun["var99"], JUNIOR_LIMIT, jun["var99"] < JUNIOR_LIMIT)
            for t in ("1", "2", "3"):
                mine = r["tiers"][t]["median_account_loss"]
                umb = (r.get("umbrella") or {}).get(t, {}).get("median_account_loss")
                if mine is None or umb is None:
                    continue
                put(f"{name}.tier{t}_median_vs_umbrella", mine, umb, mine < umb)
            t3 = r["tiers"]["3"]["median_account_loss"]
            if t3 is not None:
                put(f"{name}.tier3_median", t3, TIER3_LIMIT, t3 <= TIER3_LIMIT)
        else:
            put(f"{name}.p_senior_loss", r["p_senior_loss"], SENIOR_P_LIMIT,
                r["p_senior_loss"] < SENIOR_P_LIMIT)  # fmt: skip
            put(f"{name}.junior_es99", jun["es99"], JUNIOR_LIMIT, jun["es99"] < JUNIOR_LIMIT)
    return out


def run_suite(
    suite: str,
    names: Sequence[str],
    policy: MarginPolicy,
    book: Book,
    opt: RunOptions,
    on_chunk: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    started = dt.datetime.now(dt.UTC)
    scenarios = run(names, policy, book, opt, on_chunk)
    targets = check_targets(scenarios, book)
    result = {
        "schema": SCHEMA,
        "suite": suite,
        "date": (opt.as_of or dt.date.today()).isoformat(),
        "created_at": started.isoformat(timespec="seconds"),
        "elapsed_s": round((dt.datetime.now(dt.UTC) - started).total_seconds(), 2),
        "options": {
            "paths": opt.paths,
            "seed": opt.seed,
            "chunk_paths": opt.chunk_paths,
            "workers": opt.workers,
        },
        "book": {k: getattr(book, k) for k in book.__dataclass_fields__},
        "params": policy.to_toml_dict(),
        "params_hash": params_hash(policy),
        "scenarios": scenarios,
        "targets": targets,
        "all_targets_met": all(t["ok"] for t in targets.values()),
    }
    log.info(
        "stress suite done",
        extra={"suite": suite, "elapsed_s": result["elapsed_s"], "ok": result["all_targets_met"]},
    )
    return result


def reduced_suite(
    policy: MarginPolicy | None = None, *, seed: int = 20160104, as_of: dt.date | None = None
) -> dict[str, Any]:
    """The end-of-day suite: three scenarios, 20 paths, 200 accounts, in this process."""
    opt = RunOptions(paths=REDUCED_PATHS, seed=seed, chunk_paths=REDUCED_PATHS, as_of=as_of)
    return run_suite("reduced", REDUCED, policy or MarginPolicy(), REDUCED_BOOK, opt)


def full_suite(
    policy: MarginPolicy,
    book: Book,
    opt: RunOptions,
    on_chunk: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    return run_suite("full", list(SCENARIOS), policy, book, opt, on_chunk)


def store_result(result: dict[str, Any], data_dir: Path) -> Path:
    """Write the result as JSON under <data_dir>/stress/ (atomically); return its path."""
    folder = data_dir / "stress"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = result["created_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    path = folder / f"{stamp}-{result['suite']}-{result['params_hash']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


def list_results(data_dir: Path) -> list[Path]:
    folder = data_dir / "stress"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def latest_result(data_dir: Path, suite: str | None = None) -> dict[str, Any]:
    """The newest stored result (of `suite` if given), for the transparency page and the API."""
    paths = [p for p in list_results(data_dir) if suite is None or f"-{suite}-" in p.name]
    if not paths:
        raise NotFound(f"no stress result under {data_dir / 'stress'}")
    result: dict[str, Any] = json.loads(paths[-1].read_text(encoding="utf-8"))
    return result
