"""A nested-tuning study that a killed benchmark left behind: the rerun tops it up to its
budget, and `bench study repair` finds its runs in the shared `nested-tuning` experiment."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import replace

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from bench.benchmark import job as benchmark
from bench.benchmark import nested_tuning as nested
from bench.cli import study as study_cli
from bench.sweep.storage.backends import open_storage
from bench.sweep.workers import run_study

BUDGET = nested.Budget(trials=3, timeout=None, max_epochs=2)


@pytest.fixture
def interrupted(small_data, tmp_path):
    """(fold, stores, study name, killed trial's MLflow run, dead pid, parent run): the
    study a benchmark killed during its second trial leaves (one trial done, one RUNNING,
    the parent run RUNNING, no `done` mark)."""
    fold = benchmark.fold_splits(small_data, ["u1"], seeds=0)[0]
    stores = (str(tmp_path / "journal.log"), f"sqlite:///{tmp_path / 'mlflow.db'}")
    name = nested.study_name(fold.dataset, fold.name, "mf", 0, BUDGET)
    split = nested.tuning_split(small_data, fold, 0, BUDGET)
    settings = nested._settings("mf", split, name, 0, BUDGET, stores)
    run_study(replace(settings, n_trials=1), split)
    study = optuna.load_study(study_name=name, storage=open_storage(stores[0]))
    dead = subprocess.Popen(["true"])
    dead.wait()
    client = MlflowClient(stores[1])
    parent = study.user_attrs["mlflow_parent_run_id"]
    trial = study.ask()
    run = client.create_run(
        client.get_experiment_by_name(nested.NESTED_EXPERIMENT).experiment_id,
        tags={"study": name, "trial_number": str(trial.number), "mlflow.parentRunId": parent},
    )
    for key, value in {"host": socket.gethostname(), "pid": dead.pid}.items():
        trial.set_user_attr(key, value)
    trial.set_user_attr("mlflow_run_id", run.info.run_id)
    client.update_run(parent, status="RUNNING")
    return fold, stores, name, run.info.run_id, dead.pid, parent


def test_a_rerun_tops_an_interrupted_nested_study_up_to_its_budget(small_data, interrupted):
    fold, stores, name, _, _, _ = interrupted
    tuned = nested.tune(small_data, fold, "mf", 0, BUDGET, stores)
    study = optuna.load_study(study_name=name, storage=open_storage(stores[0]))
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 3
    assert states.count(TrialState.FAIL) == 1 and len(states) == 4  # the killed trial
    assert tuned.provenance["study"] == name
    again = nested.tune(small_data, fold, "mf", 0, BUDGET, stores)
    assert again.config == tuned.config and len(study.get_trials(deepcopy=False)) == 4


def test_study_repair_finds_a_nested_studys_runs_by_its_study_tag(interrupted, capsys):
    _, (storage, tracking_uri), name, run_id, pid, parent = interrupted
    argv = ["repair", "--storage", storage, "--tracking-uri", tracking_uri, "--study", name]
    assert study_cli.main(argv) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{name}: trial 1 marked FAIL (MLflow run {run_id} FAILED): process {pid} on "
        f"{socket.gethostname()} died",
        f"{name}: parent run {parent} closed (KILLED): no trial runs",
    ]
    client = MlflowClient(tracking_uri)
    assert client.get_run(run_id).info.status == "FAILED"
    assert client.search_registered_models() == []  # a fold's tuning registers no champion
