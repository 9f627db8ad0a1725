"""`crowdlev run`'s output: a small replay through the whole platform (the same code path,
fewer borrowers and stocks) rendered for a person — within 100 columns, amounts in 元 with
万/亿, no raw Python dicts — while the progress bar counts the set-up and every day."""

from __future__ import annotations

import datetime as dt
import io

from rich.console import Console

from crowdleverage.config import load_settings
from crowdleverage.main_job import WIDTH, render_run, replay_with_progress
from crowdleverage.risk.book import Book
from crowdleverage.risk.replay import ReplayConfig


def test_run_renders_a_replay_within_100_columns() -> None:
    settings = load_settings()
    cfg = ReplayConfig(
        data=settings.market_data, start=dt.date(2016, 1, 4), end=dt.date(2016, 1, 5),
        seed=settings.seed, book=Book().with_options(borrowers_per_tier=1, stocks=6),
        ticks_per_day=4,
    )  # fmt: skip
    sink = io.StringIO()
    # a terminal console so that the progress bar really draws (into the sink)
    console = Console(file=sink, width=WIDTH, force_terminal=True, color_system=None)
    report = replay_with_progress(cfg, console)
    drawn = sink.getvalue()
    assert "replaying 2016-01-05" in drawn and "3/3" in drawn  # set-up + 2 days
    out = Console(file=io.StringIO(), width=WIDTH, record=True, color_system=None)
    render_run(report, out)
    text = out.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    assert "{" not in text and "': " not in text, text  # no dict or repr leaks
    assert "01-04" in text and "01-05" in text
    assert "万元" in text and "senior NAV" in text and "Invariants:" in text
    assert all(report.invariants.values()), report.violations
