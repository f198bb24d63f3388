from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from bench.archs.mf import MFConfig
from bench.errors import BenchError
from bench.tracking.tracker import Tracker, resolve_tracking_uri
from bench.training.options import TrainOptions
from bench.training.train import train


def test_tracking_uri_flag_beats_environment_beats_default(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert resolve_tracking_uri() == "sqlite:///env.db"
    assert resolve_tracking_uri("sqlite:///flag.db") == "sqlite:///flag.db"


def test_a_training_run_is_fully_recorded(small_split, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = replace(MFConfig(k=2), epochs=4, batch_size=16)
    options = TrainOptions(seed=7)
    result = train(config, small_split, options)
    tracker = Tracker(f"sqlite:///{tmp_path / 'store.db'}")
    experiment_id = tracker.experiment("unit")
    run_id = tracker.start_run(experiment_id, "one")
    tracker.log_training(run_id, result, small_split, options)
    tracker.end(run_id)
    client = MlflowClient(tracker.uri)
    stored = client.get_run(run_id)
    assert stored.info.status == "FINISHED" and stored.info.experiment_id == experiment_id
    params, tags, metrics = stored.data.params, stored.data.tags, stored.data.metrics
    assert params["k"] == "2" and params["epochs"] == "4" and params["seed"] == "7"
    assert params["split"] == "seed" and params["n_test"] == str(len(small_split.test))
    assert tags["arch"] == "mf" and tags["data_sha256"] == small_split.data_sha256
    assert tags["version.tensorflow"] and tags["git_commit"]
    curve = client.get_metric_history(run_id, f"train_loss_{config.loss}")
    assert [m.step for m in sorted(curve, key=lambda m: m.step)] == [0, 1, 2, 3]
    assert [m.value for m in sorted(curve, key=lambda m: m.step)] == pytest.approx(
        result.history["train_loss"]
    )
    assert len(client.get_metric_history(run_id, "val_mae")) == 4
    assert metrics["test_mae"] == pytest.approx(result.test["test_mae"])
    assert metrics["emb_item_mean"] == pytest.approx(result.final_metrics()["emb_item_mean"])
    assert len(metrics) <= 40  # curves count once: a person can read the metric list
    assert tags["dataset"] == "ml-100k" and tags["mlflow.source.name"]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"embeddings", "model_summary.txt", "loss_curve.png", "config.json"} <= artifacts
    assert not {"train_loss", "val_loss"} & set(metrics)  # curves of different losses: apart
    written = json.loads(
        Path(client.download_artifacts(run_id, "config.json", str(tmp_path))).read_text()
    )
    assert written["config"]["k"] == 2 and written["training"]["seed"] == 7
    assert written["split"]["n_test"] == len(small_split.test)
    inputs = {d.dataset.name: d for d in stored.inputs.dataset_inputs}
    assert set(inputs) == {f"ml-100k/seed/{part}" for part in ("train", "valid", "test")}
    assert [t.value for t in inputs["ml-100k/seed/train"].tags] == ["training"]
    assert json.loads(inputs["ml-100k/seed/test"].dataset.profile)["num_rows"] == len(
        small_split.test
    )
    table_path = client.download_artifacts(run_id, "embeddings/item_stats.csv", str(tmp_path))
    table = pd.read_csv(table_path, index_col="stat")
    assert list(table.columns) == ["d0", "d1", "norm"]
    assert table.loc["count", "d0"] == small_split.n_items  # no spare padding row
    assert table.loc["max", "d1"] == pytest.approx(result.embeddings["item"][:, 1].max())


def test_two_stores_in_one_process_do_not_cross(tmp_path, small_split):
    first, second = (Tracker(f"sqlite:///{tmp_path / name}") for name in ("a.db", "b.db"))
    run_a = first.start_run(first.experiment("same-name"), "a")
    run_b = second.start_run(second.experiment("same-name"), "b")
    first.log(run_a, {"x": 1.0})
    second.log(run_b, {"x": 2.0})
    assert MlflowClient(first.uri).get_run(run_a).data.metrics == {"x": 1.0}
    assert MlflowClient(second.uri).get_run(run_b).data.metrics == {"x": 2.0}
    assert len(MlflowClient(first.uri).search_runs([first.experiment("same-name")])) == 1


def test_two_processes_describing_one_experiment_at_once_both_go_on(tmp_path, monkeypatch):
    """The loser of the race on the tags table's key writes again: no error; any other
    refusal is the store's error."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from bench.tracking.tracker import NOTE_TAG

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    real, losses = MlflowClient.set_experiment_tag, []

    def raced(client, experiment_id, key, value):
        if not losses:  # the other process inserts first; this insert is refused
            losses.append(real(client, experiment_id, key, "the other process's text"))
            raise MlflowException('duplicate key value violates "experiment_tag_pk"')
        return real(client, experiment_id, key, value)

    monkeypatch.setattr(MlflowClient, "set_experiment_tag", raced)
    experiment_id = tracker.experiment("raced", "my text")
    assert losses and tracker.client.get_experiment(experiment_id).tags[NOTE_TAG] == "my text"

    def failing(client, experiment_id, key, value):
        raise MlflowException("the store refused")

    monkeypatch.setattr(MlflowClient, "set_experiment_tag", failing)
    with pytest.raises(BenchError, match="the store refused"):
        tracker.experiment("not described", "text")
