"""The trading session's progress file (risk/session.py): what a restart reads back is what
was written, and a damaged file is a typed error naming it, never a guess."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowdleverage.domain.errors import ConfigError
from crowdleverage.risk.session import CLOSING, MATCHED, ChainMark, Progress


def test_progress_reads_back_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    assert Progress.read(path) is None and Progress.read(None) is None
    opened = Progress("2016-01-04", ChainMark(169, 1_451_545_145, 903))
    opened.write(path)
    assert Progress.read(path) == opened
    step = Progress("2016-01-04", opened.open, 4, MATCHED, ChainMark(201, 1_451_884_700, 990))
    step.write(path)
    assert Progress.read(path) == step
    assert not path.with_suffix(".tmp").exists()  # replaced atomically
    closing = Progress(
        "2016-01-04", opened.open, 16, CLOSING, ChainMark(240, 1_451_900_000, 1100), 7
    )
    closing.write(path)
    assert Progress.read(path) == closing and closing.epoch == 7


@pytest.mark.parametrize("text", ["", "{", '{"open": null}', '{"day": "x", "mark": {"b": 1}}'])
def test_a_damaged_progress_file_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "session.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"session\.json"):
        Progress.read(path)
