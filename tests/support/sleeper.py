"""A process that owns a trial and its MLflow run, like a sweep worker, and then sleeps until
it is killed. It imports neither TensorFlow nor bench.tracking, so it starts in seconds.
"""

from __future__ import annotations

import multiprocessing
import time

import optuna
from mlflow.tracking import MlflowClient

from bench.sweep.stale_trials import trial_owner_attrs
from bench.sweep.storage.backends import open_storage

SPAWN = multiprocessing.get_context("spawn")
SLEEP_S = 300


def own_a_trial(url: str, name: str, tracking_uri: str, host: str | None, heartbeat) -> None:
    """Ask a trial, give it an MLflow run under the study's parent and owner attrs, sleep."""
    study = optuna.load_study(study_name=name, storage=open_storage(url, *heartbeat))
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", -1.0, 1.0)
        tags = {"trial_number": str(trial.number), "study": name}
        parent = study.user_attrs.get("mlflow_parent_run_id")
        if parent:
            tags["mlflow.parentRunId"] = parent
        run = client.create_run(experiment.experiment_id, tags=tags)
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        owner = {**trial_owner_attrs(), **({"host": host} if host else {})}
        for key, value in owner.items():
            trial.set_user_attr(key, value)
        time.sleep(SLEEP_S)
        return 0.0

    study.optimize(objective, n_trials=1)


def start_owner(url, name, tracking_uri, host=None, heartbeat=(None, None)):
    process = SPAWN.Process(target=own_a_trial, args=(url, name, tracking_uri, host, heartbeat))
    process.start()
    return process
