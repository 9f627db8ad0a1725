"""A data dir keeps the market it started with: a restart with another `--from` resumes the
first replay (same first day, same watched codes) instead of watching another universe."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path

import pytest

from crowdleverage.config import Settings
from crowdleverage.domain.errors import ConfigError
from crowdleverage.flows.platform import UNIVERSE_FILE, Platform


def test_a_restart_with_another_start_keeps_the_first_market(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = Platform(settings, market_start=dt.date(2015, 12, 28))
    try:
        codes, day0 = list(first.codes), first.market.days[0].date
    finally:
        first.close()
        first.engine.dispose()
    stored = tmp_path / "flows" / UNIVERSE_FILE
    assert json.loads(stored.read_text()) == {"market_start": "2015-12-28", "codes": codes}
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600
    assert day0 >= dt.date(2015, 12, 28)

    again = Platform(settings, market_start=dt.date(2016, 1, 11))  # another --from
    try:
        assert again.codes == codes
        assert again.market.days[0].date == day0
    finally:
        again.close()
        again.engine.dispose()


def test_a_damaged_universe_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir(parents=True)
    (tmp_path / "flows" / UNIVERSE_FILE).write_text('{"market_start": "2015-12-2')
    with pytest.raises(ConfigError, match=r"universe\.json is damaged"):
        Platform(Settings(data_dir=tmp_path), market_start=dt.date(2015, 12, 28))
