"""`bench benchmark --task ranking` on small generated data: each fold's architecture study
trains for ranking and maximises validation NDCG@10 on the fold's training part; the fold
refits the chosen config with its ranking setup and is scored on ranking metrics only."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest

from bench.benchmark import nested_tuning as nested
from bench.benchmark.spec import Budget
from bench.cli import benchmark as benchmark_cli
from bench.errors import BenchError
from bench.sweep.storage.backends import open_storage
from bench.training.tasks import RankedConfig


def _args(tmp_path, *extra: str):
    return benchmark_cli.parse_args(
        ["--task", "ranking", "--archs", "mf", "--folds", "u1,u2", "--tune-trials", "2",
         "--max-epochs", "2", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--storage", str(tmp_path / "journal.log"), "--report-dir", str(tmp_path / "report"),
         *extra]
    )  # fmt: skip


def test_a_ranking_benchmark_tunes_for_ndcg_and_scores_ranking_only(small_data, tmp_path):
    assert benchmark_cli.run(_args(tmp_path), small_data) == 0
    results = pd.read_csv(tmp_path / "report" / "results.csv")
    mf = results[results["model"] == "mf"]
    assert len(mf) == 2 and mf["rmse"].isna().all() and mf["ndcg_at_10"].between(0, 1).all()
    assert set(results["model"]) >= {"popularity", "mf@trial0"}
    tuned = json.loads((tmp_path / "report" / "tuned_configs.json").read_text())
    for fold in ("u1", "u2"):
        entry = tuned["mf"][fold]
        study = optuna.load_study(
            study_name=entry["provenance"]["study"],
            storage=open_storage(str(tmp_path / "journal.log")),
        )
        assert study.direction.name == "MAXIMIZE" and study.user_attrs["task"] == "ranking"
        best = study.best_trial
        assert (
            entry["provenance"]["value"]
            == best.value
            == max(t.value for t in study.trials if t.value is not None)
        )
        assert entry["config"]["ranking_loss"] == best.params["ranking_loss"]
        assert entry["config"]["ranking_negatives"] == best.params["negatives"]
        assert "loss" not in best.params  # no rating loss is searched
    report = (tmp_path / "report" / "report.md").read_text()
    assert "ranking_loss" in report and "nested-ml-100k-u1-mf" in report


def test_the_ranking_budget_names_other_studies_and_the_rating_one_keeps_its_names():
    rating = Budget()
    assert rating.digest() == "71eca4c1"  # the default budget's digest before tasks existed
    assert Budget(task="ranking", metric="ndcg_at_10").digest() != rating.digest()


def test_a_tuned_ranking_entry_refits_with_its_setup(small_data, tmp_path):
    budget = Budget(trials=2, max_epochs=2, metric="ndcg_at_10", task="ranking")
    stores = (str(tmp_path / "journal.log"), f"sqlite:///{tmp_path / 'mlflow.db'}")
    tuned = nested.tune(small_data, _fold(small_data), "mf", 0, budget, stores)
    assert isinstance(tuned.config, RankedConfig) and isinstance(tuned.trial0, RankedConfig)
    assert tuned.trial0.setup.loss == "bpr" and tuned.trial0.setup.negatives == 4
    assert tuned.config.config.loss == "mse"  # the rating loss: fixed, not tuned


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--metric", "rmse"), "does not measure the ranking task"),
        (("--ensembles", "2"), "no ensembles"),
        (("--peers", "svd"), "tuned on a rating metric"),
    ],
)
def test_a_ranking_benchmark_refuses_what_it_cannot_do_in_one_line(tmp_path, extra, message):
    with pytest.raises(BenchError, match=message):
        _args(tmp_path, *extra)


def test_the_rating_benchmark_still_refuses_a_ranking_metric(tmp_path):
    with pytest.raises(BenchError, match="does not measure the rating task"):
        benchmark_cli.parse_args(["--metric", "ndcg_at_10"])


def _fold(small_data):
    from bench.benchmark.job import fold_splits

    return fold_splits(small_data, ["u1"], seeds=0)[0]


def test_a_ranked_learnt_row_predicts_no_rating_and_scores_every_pair(small_data):
    from bench.archs.mf import MFConfig
    from bench.benchmark.predictors import as_predictor, evaluate
    from bench.training.options import RankingSetup

    entry = RankedConfig(MFConfig(k=4, epochs=2, batch_size=64), RankingSetup("bce", 2))
    row = evaluate("mf", as_predictor(entry), _fold(small_data), 0)
    assert np.isnan(row.metrics["rmse"]) and 0 < row.metrics["ndcg_at_10"] <= 1
    assert row.history and "train_loss" in row.history
