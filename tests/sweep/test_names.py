"""Default study names: made of a study's identity, so that README's first look and the
default sweep, run in one folder in either order, never meet in one study."""

from __future__ import annotations

from dataclasses import replace

from mlflow.tracking import MlflowClient

from bench.cli import main
from bench.sweep.settings import NAME_PARTS, SweepSettings
from bench.sweep.study import _identity
from tests.support.synthetic import synthetic_ratings, write_folder

OTHER_VALUES = {  # a value off the default for each identity setting a flag changes
    "max_epochs": 10,
    "metric": "rmse",
    "seed": 1,
    "valid_fraction": 0.2,
    "sampler": "tpe",
    "pruner": "none",
    "patience": None,
    "sparse_updates": True,
    "experiment": "sweep",
    "task": "ranking",
}


def test_every_identity_setting_off_its_default_makes_another_default_name():
    default = SweepSettings(arch="mf")
    named_in_the_base = {"arch", "dataset", "split", "space_version"}  # or a code version
    assert set(NAME_PARTS) == set(_identity(default)) - named_in_the_base == set(OTHER_VALUES)
    also = {"task": {"metric": "ndcg_at_10"}}  # a task takes a metric of its own
    names = [
        replace(default, **{key: value}, **also.get(key, {})).name
        for key, value in OTHER_VALUES.items()
    ]
    assert default.name == "mf-seed" and replace(default, max_epochs=10).name == "mf-seed-e10"
    assert len(set(names)) == len(names) and default.name not in names
    assert replace(default, max_epochs=10, study_name="mine").name == "mine"  # kept as given


def test_the_first_look_and_the_default_sweep_share_a_folder_in_either_order(
    tmp_path, monkeypatch, synthetic_dataset
):
    monkeypatch.chdir(tmp_path)  # README's commands: ./mlflow.db and the journal beside it
    data = write_folder(tmp_path / "data", synthetic_ratings())
    common = ["sweep", "--arch", "mf", "--trials", "1", "--timeout", "0"]
    common += ["--dataset", synthetic_dataset.name, "--data-dir", str(data)]
    first_look = [*common, "--max-epochs", "1"]  # README's first look caps the epochs
    for argv in (first_look, common, first_look):  # then the main job's defaults, then back
        assert main(argv) == 0
    experiments = MlflowClient("sqlite:///mlflow.db").search_experiments()
    assert {"synthetic-mf-seed", "synthetic-mf-seed-e1"} <= {e.name for e in experiments}
