"""The champion alias moves only up: to a model better on the same validation (data set,
split, metric), never to a smoke sweep's worse one, and never across validations."""

from __future__ import annotations

from dataclasses import replace

import pytest
from mlflow.entities.model_registry import ModelVersion, ModelVersionTag
from mlflow.tracking import MlflowClient

from bench.data import make_split, read_folder
from bench.sweep.champion import VALUE_TAG, kept_champion
from bench.sweep.settings import SweepSettings
from bench.sweep.workers import run_study
from tests.support.synthetic import synthetic_ratings, write_folder

MODEL = "recsys-mf-ml-100k"  # the split is handed in: the settings' data set names it


def test_a_worse_smoke_sweep_leaves_the_champion_where_it_was(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    data = read_folder(write_folder(tmp_path / "data", synthetic_ratings()))
    split = make_split(data, "seed", seed=0, valid_fraction=0.1)
    base = SweepSettings(
        arch="mf", n_trials=1, timeout=None, storage=str(tmp_path / "journal.log"),
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )  # fmt: skip
    client = MlflowClient(base.tracking_uri)
    smoke = run_study(replace(base, study_name="smoke", max_epochs=1), split)
    assert client.get_model_version_by_alias(MODEL, "champion").version == 1
    good = run_study(replace(base, study_name="good", max_epochs=8), split)
    assert good.best_value < smoke.best_value  # better: the alias moves up
    assert client.get_model_version_by_alias(MODEL, "champion").version == 2
    capsys.readouterr()

    again = run_study(replace(base, study_name="smoke-again", max_epochs=1), split)
    assert again.best_value > good.best_value
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.version == 2 and champion.tags["study"] == "good"
    newest = client.get_model_version(MODEL, "3")  # registered, without the alias
    assert newest.tags["study"] == "smoke-again" and not newest.aliases
    assert float(newest.tags[VALUE_TAG]) == again.best_value
    said = [line for line in capsys.readouterr().err.splitlines() if "stays on" in line]
    assert said == [
        f"smoke-again: `{MODEL}` version 3 registered; alias `champion` stays on version 2: "
        f"this study's best val_mae {again.best_value:.4f} is not below its "
        f"{good.best_value:.4f} on the same validation"
    ]


def _version(**tags: str) -> ModelVersion:
    return ModelVersion(MODEL, "1", 0, tags=[ModelVersionTag(k, v) for k, v in tags.items()])


RECORD = {
    "validation.dataset": "ml-100k",
    "validation.data_sha256": "abc",
    "validation.split": "seed",
    "validation.split_seed": "0",
    "validation.valid_fraction": "0.1",
    "validation.metric": "val_mae",
    VALUE_TAG: "0.7",
}


@pytest.mark.parametrize(
    ("theirs", "kept"),
    [
        ({}, ""),  # the same record, a higher value: the alias moves
        ({VALUE_TAG: "0.7"}, "is not below its 0.7000"),  # as good is not better
        ({"validation.valid_fraction": "0.2"}, "valid_fraction 0.2 there, 0.1 here"),
        ({"validation.split": "u1"}, "split u1 there, seed here"),
        ({"validation.metric": "val_rmse", VALUE_TAG: "0.9"}, "metric val_rmse there"),
        ({"validation.data_sha256": "def"}, "data_sha256 def there, abc here"),
    ],
)
def test_the_alias_moves_only_to_a_better_model_on_the_same_validation(theirs, kept):
    current = _version(**{**RECORD, VALUE_TAG: "0.8", **theirs})
    reason = kept_champion(current, "2", RECORD)
    assert (kept in reason and reason != "") if kept else reason == ""
    if kept and "there" in kept:
        assert "so the two do not compare" in reason


def test_a_champion_that_records_no_validation_stays_and_says_how_to_move_it():
    reason = kept_champion(_version(source="sweep"), "2", RECORD)
    assert "records no validation" in reason
    assert f"set_registered_model_alias('{MODEL}', 'champion', '2')" in reason
    assert kept_champion(None, "1", RECORD) == ""  # no champion yet
    assert kept_champion(_version(), "1", RECORD) == ""  # the champion itself, again
