"""Integration: the quick seed replication on the real data, into a fresh MLflow store."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from bench.archs import ARCHS
from bench.benchmark import replication
from bench.cli import replicate


@pytest.mark.integration
def test_quick_replication_records_three_complete_runs(real_data_dir, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["--quick", "--data-dir", str(real_data_dir), "--tracking-uri", uri]
    assert replicate.main(argv) == 0
    table = capsys.readouterr().out
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["model", "epochs"])
    rows = {line.split()[0]: line.split() for line in lines[header + 1 : header + 1 + len(ARCHS)]}
    assert set(rows) == set(ARCHS)  # every registered architecture has a row
    for arch, params in (("mf", "7881"), ("nnmf", "7881"), ("nn", "25675")):
        assert rows[arch][1] == str(replication.QUICK_EPOCHS)
        assert rows[arch][2] == rows[arch][3] == params  # ours beside the post's

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(replication.EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.data.tags["arch"] for run in runs) == sorted(ARCHS)
    for run in runs:
        assert run.info.status == "FINISHED"
        loss = run.data.params["loss"]
        history = client.get_metric_history(run.info.run_id, f"train_loss_{loss}")
        assert sorted(m.step for m in history) == list(range(replication.QUICK_EPOCHS))
        assert {"test_mae", "test_rmse", "test_mae_rounded"} <= set(run.data.metrics)
        arch = ARCHS[run.data.tags["arch"]]
        if arch.reference.params is not None:
            assert run.data.metrics["n_params"] == arch.reference.params
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "embeddings")}
        assert artifacts == {f"embeddings/{name}_stats.csv" for name in arch.embedding_layers}
    nnmf = next(run for run in runs if run.data.tags["arch"] == "nnmf")
    assert nnmf.data.metrics["emb_user_neg_share"] == 0
