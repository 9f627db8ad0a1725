"""The end of day's progress file (flows/day_close.py): what a restart reads back is what was
written for that day, another day's record starts afresh, and a damaged file is a typed
error naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowdleverage.domain.errors import ConfigError
from crowdleverage.flows.day_close import DayClose


def test_a_close_reads_back_its_own_day_only(tmp_path: Path) -> None:
    path = tmp_path / "close.json"
    assert DayClose.of(path, "2015-12-31") == DayClose("2015-12-31")
    rec = DayClose("2015-12-31", "CL20151231160000123456", 3)
    rec.write(path)
    assert DayClose.of(path, "2015-12-31") == rec
    assert not path.with_suffix(".tmp").exists()  # replaced atomically
    assert DayClose.of(path, "2016-01-04") == DayClose("2016-01-04")  # the next close


@pytest.mark.parametrize("text", ["", "{", '{"message_id": "x"}', "[1]"])
def test_a_damaged_close_file_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "close.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"close\.json"):
        DayClose.of(path, "2015-12-31")
