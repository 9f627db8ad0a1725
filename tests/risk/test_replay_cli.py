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


def test_a_bad_book_or_option_is_refused_before_the_replay_starts(tmp_path):
    book = tmp_path / "book.toml"
    book.write_text("[pool]\njunior_yuan = -5\n")
    result = runner.invoke(app, ["replay", "--book", str(book), "--json"])
    assert result.exit_code == 2
    assert "junior_yuan" in json.loads(result.stderr.strip().splitlines()[-1])["message"]
    result = runner.invoke(app, ["replay", "--utilisation", "95"])
    assert result.exit_code == 2 and "90%" in result.stderr
    result = runner.invoke(app, ["replay", "--book", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "not found" in result.stderr
