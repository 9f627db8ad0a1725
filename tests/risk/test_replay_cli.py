"""`crowdlev replay`: bad input exits with the typed error's code, as text or JSON."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from crowdleverage.cli import app

runner = CliRunner()


def test_reversed_range_is_invalid_input_in_json():
    result = runner.invoke(app, ["replay", "--from", "2016-01-08", "--to", "2016-01-04", "--json"])
    assert result.exit_code == 2
    err = json.loads(result.stderr.strip().splitlines()[-1])
    assert err["error"] == "invalid_input" and "before" in err["message"]


def test_unknown_reporter_behaviour_and_bad_sizes_are_refused():
    result = runner.invoke(app, ["replay", "--faulty-reporter", "sleepy"])
    assert result.exit_code == 2 and "sleepy" in result.stderr
    result = runner.invoke(app, ["replay", "--stocks", "2"])
    assert result.exit_code == 2


def test_a_missing_data_file_is_a_data_file_error():
    result = runner.invoke(app, ["replay", "--data", "/nonexistent/bars.csv", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stderr.strip().splitlines()[-1])["error"] == "invalid_data_file"
