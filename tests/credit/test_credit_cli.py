"""`crowdlev credit score|models` on the shipped model: JSON out, typed refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from credit_data import MESSY_CONFIG, messy_csv
from typer.testing import CliRunner

from crowdleverage.cli import app
from crowdleverage.credit.model import ModelRegistry
from crowdleverage.credit.registry import SHIPPED_MODELS

runner = CliRunner()


def _application() -> dict[str, object]:
    model = ModelRegistry(SHIPPED_MODELS).load()
    return {f.name: (f.categories[0] if f.categories else f.lo) for f in model.features}


def test_score_prints_pd_points_reasons_and_the_version() -> None:
    r = runner.invoke(app, ["credit", "score", "--json"], input=json.dumps(_application()))

    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert 0 < out["pd"] < 1 and isinstance(out["points"], int)
    assert out["version"] == ModelRegistry(SHIPPED_MODELS).current()


def test_bad_application_exits_2_with_every_field() -> None:
    app_ = _application()
    del app_["X1"]
    app_["X6"] = "late"

    r = runner.invoke(app, ["credit", "score", "--json"], input=json.dumps(app_))

    assert r.exit_code == 2
    err = json.loads(r.stderr)
    assert {e["field"] for e in err["details"]["errors"]} == {"X1", "X6"}


def test_a_model_not_matching_its_card_exits_11(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED_MODELS, tmp_path / "m")
    version = ModelRegistry(tmp_path / "m").current()
    with (tmp_path / "m" / str(version) / "challenger.txt").open("a") as f:
        f.write("\n")

    r = runner.invoke(
        app, ["credit", "score", "--registry", str(tmp_path / "m"), "--json"],
        input=json.dumps(_application()),
    )  # fmt: skip

    assert r.exit_code == 11 and "does not match" in r.stderr


def test_models_lists_the_versions_and_the_one_in_use() -> None:
    r = runner.invoke(app, ["credit", "models", "--json"])

    out = json.loads(r.stdout)
    assert out["current"] in out["versions"]


def test_train_from_a_config_then_score_with_that_version(tmp_path: Path) -> None:
    messy_csv(tmp_path / "loans.csv")
    (tmp_path / "loans.toml").write_text(MESSY_CONFIG)

    trained = runner.invoke(app, ["credit", "train", "--config", str(tmp_path / "loans.toml"),
                                  "--registry", str(tmp_path / "m"), "--json"])  # fmt: skip
    card = json.loads(trained.stdout)
    app_ = {"Income": 9000.0, "employment": "salaried", "debt_ratio": 0.3, "late_payments": 1}
    scored = runner.invoke(
        app, ["credit", "score", "--registry", str(tmp_path / "m"), "--model", card["version"],
              "--json"], input=json.dumps([app_, app_]),
    )  # fmt: skip

    assert trained.exit_code == 0 and card["data"]["rows"] == 2980
    assert [s["version"] for s in json.loads(scored.stdout)] == [card["version"]] * 2
