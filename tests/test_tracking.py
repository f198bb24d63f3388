from __future__ import annotations

from dataclasses import replace

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from bench.config import MFConfig, TrainOptions
from bench.tracking import log_training, resolve_tracking_uri, setup
from bench.train import train


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
    experiment_id = setup("unit", f"sqlite:///{tmp_path / 'store.db'}")
    with mlflow.start_run() as run:
        log_training(result, small_split, options)
    client = MlflowClient()
    stored = client.get_run(run.info.run_id)
    assert stored.info.status == "FINISHED" and stored.info.experiment_id == experiment_id
    params, tags, metrics = stored.data.params, stored.data.tags, stored.data.metrics
    assert params["k"] == "2" and params["epochs"] == "4" and params["seed"] == "7"
    assert params["split"] == "seed" and params["n_test"] == str(len(small_split.test))
    assert tags["arch"] == "mf" and tags["data_sha256"] == small_split.data_sha256
    assert tags["version.tensorflow"] and tags["git_commit"]
    curve = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in sorted(curve, key=lambda m: m.step)] == [0, 1, 2, 3]
    assert [m.value for m in sorted(curve, key=lambda m: m.step)] == pytest.approx(
        result.history["train_loss"]
    )
    assert len(client.get_metric_history(run.info.run_id, "val_mae")) == 4
    assert metrics["test_mae"] == pytest.approx(result.test["test_mae"])
    assert metrics["emb_item_d1_mean"] == pytest.approx(result.final_metrics()["emb_item_d1_mean"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"embeddings", "model_summary.txt", "loss_curve.png"} <= artifacts
    table_path = client.download_artifacts(
        run.info.run_id, "embeddings/item_stats.csv", str(tmp_path)
    )
    table = pd.read_csv(table_path, index_col="stat")
    assert list(table.columns) == ["d0", "d1", "norm"]
    assert table.loc["count", "d0"] == small_split.n_items + 1
    assert table.loc["max", "d1"] == pytest.approx(result.embeddings["item"][:, 1].max())
