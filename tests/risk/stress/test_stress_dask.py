"""Monte Carlo on Dask: the same seed gives identical results on 1 and on 2 workers (and in
process), because chunks and their seeds do not depend on the workers."""

from __future__ import annotations

import datetime as dt
import json

from crowdleverage.risk.stress.policy import Book, MarginPolicy
from crowdleverage.risk.stress.scenarios import RunOptions, run


def test_identical_results_for_one_and_two_workers() -> None:
    # Arrange
    book = Book(accounts=100)
    names = ["mc60", "cb2016"]

    def opt(workers: int, seed: int = 7) -> RunOptions:
        return RunOptions(paths=40, seed=seed, chunk_paths=10, workers=workers, umbrella=False,
                          as_of=dt.date(2026, 11, 27))  # fmt: skip

    # Act
    one = run(names, MarginPolicy(), book, opt(1))
    two = run(names, MarginPolicy(), book, opt(2))
    local = run(names, MarginPolicy(), book, opt(0))
    other_seed = run(["mc60"], MarginPolicy(), book, opt(0, seed=8))
    # Assert: bit-identical, and the seed matters
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
    assert json.dumps(one, sort_keys=True) == json.dumps(local, sort_keys=True)
    assert one["mc60"]["paths"] == 40
    assert one["mc60"]["liquidations_mean"] > 0
    assert (
        other_seed["mc60"]["layers"]["borrower_margin"] != one["mc60"]["layers"]["borrower_margin"]
    )
