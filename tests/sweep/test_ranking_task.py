"""The ranking task through a sweep: trials train on positives and sampled negatives, the
study maximises validation NDCG@10, and its champion is a ranking model of its own name,
served with its raw scores."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import matplotlib.pyplot as plt
import mlflow.pyfunc
import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from bench.archs import get_arch
from bench.errors import BenchError
from bench.metrics import RatingScale
from bench.sweep.anytime import best_so_far
from bench.sweep.champion import RECORD, VALUE_TAG, kept_champion
from bench.sweep.settings import SweepSettings
from bench.sweep.storage.backends import open_storage
from bench.sweep.summary import clip_outliers
from bench.sweep.workers import run_study
from bench.tracking.serving import LOWEST_SCORE, Fallback
from bench.training.options import RankingSetup, TrainOptions
from bench.training.ranking import RankedPart, trained_items
from bench.training.tasks import get_task, task_metric
from bench.training.train import train


@pytest.fixture
def ranking(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return SweepSettings(
        arch="mf", task="ranking", metric="ndcg_at_10", n_trials=4, timeout=None, max_epochs=3,
        storage=str(tmp_path / "journal.log"), tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )  # fmt: skip


def test_a_ranking_sweep_maximises_ndcg_and_its_champion_serves_raw_scores(small_split, ranking):
    study = run_study(ranking, small_split)
    assert ranking.name == "mf-seed-ranking-e3" and study.direction.name == "MAXIMIZE"
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(study.trials) == 4 and study.best_value == max(t.value for t in complete)
    first = study.trials[0]  # the post's settings with the task's untuned setup
    assert "loss" not in first.params  # the rating loss is no parameter of a ranking study
    assert {k: first.params[k] for k in get_task("ranking").defaults} == dict(
        get_task("ranking").defaults
    )
    client = MlflowClient(ranking.tracking_uri)
    for trial in complete:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        curve = client.get_metric_history(run.info.run_id, "val_ndcg_at_10")
        assert [m.value for m in curve] == pytest.approx(list(trial.intermediate_values.values()))
        loss = trial.params["ranking_loss"]  # the curve is named by the loss trained
        assert f"train_loss_{loss}" in run.data.metrics and "train_loss_mse" not in run.data.metrics
        assert {"test_ndcg_at_10", "test_recall_at_10"} <= set(run.data.metrics)
        assert "test_mae" not in run.data.metrics
    best = study.best_trial
    version = client.get_model_version_by_alias("recsys-mf-ranking-ml-100k", "champion")
    assert version.run_id == best.user_attrs["mlflow_run_id"]
    assert not client.search_registered_models("name='recsys-mf-ml-100k'")  # not the rating one

    # the served model gives the trained scores, unclipped: the same order as the network's
    config = get_task("ranking").config(get_arch("mf"), best.params)
    config = replace(config, epochs=best.user_attrs["epochs"])
    options = get_task("ranking").options(TrainOptions(seed=0), best.params, small_split.scale)
    retrained = train(config, small_split, options)
    users = np.repeat(small_split.user_ids[:3], 5)
    items = np.tile(small_split.item_ids[:5], 3)
    served = mlflow.pyfunc.load_model(f"models:/{version.name}@champion").predict(
        pd.DataFrame({"user": users, "item": items})
    )["rating"]
    codes = [np.arange(3).repeat(5)[:, None], np.tile(np.arange(5), 3)[:, None]]
    assert served.to_numpy() == pytest.approx(np.asarray(retrained.model(codes)).ravel(), abs=1e-5)


def test_the_task_space_round_trips_and_fixes_the_rating_loss():
    task, arch = get_task("ranking"), get_arch("mf")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    config = task.suggest(arch, trial, 7)
    assert config.loss == "mse" and "loss" not in trial.params
    assert set(task.defaults) <= set(trial.params)
    assert task.config(arch, {**trial.params, "epochs": 7}) == config
    setup = task.options(TrainOptions(), trial.params, RatingScale()).ranking
    lowest = 4.0 if trial.params["positives"] == "relevant" else None
    assert setup == RankingSetup(trial.params["ranking_loss"], trial.params["negatives"],
                                 trial.params["sampler"], lowest)  # fmt: skip
    assert get_task("rating").options(TrainOptions(), {}, RatingScale()).ranking is None


def test_a_metric_of_the_other_task_is_one_error_and_each_task_has_its_default():
    assert task_metric("ranking", None) == "ndcg_at_10" and task_metric("rating", None) == "mae"
    assert task_metric("ranking", "recall_at_10") == "recall_at_10"
    with pytest.raises(BenchError, match="does not measure the ranking task"):
        task_metric("ranking", "mae")
    with pytest.raises(BenchError, match="ndcg_at_10"):  # names the ranking ones' other task
        task_metric("rating", "ndcg_at_10")


def test_a_ranking_studys_name_and_direction_are_its_own():
    rating, ranking = SweepSettings(arch="nn"), SweepSettings(arch="nn", task="ranking",
                                                              metric="ndcg_at_10")  # fmt: skip
    assert (rating.name, rating.direction) == ("nn-seed", "minimize")
    assert (ranking.name, ranking.direction) == ("nn-seed-ranking", "maximize")
    recall = replace(ranking, metric="recall_at_10")
    assert recall.name == "nn-seed-ranking-recall_at_10"


def test_the_champion_moves_to_a_higher_ndcg_and_a_lower_mae():
    def current(value: float, metric: str):
        tags = {VALUE_TAG: str(value), f"{RECORD}metric": metric}
        return SimpleNamespace(version="1", name="m", tags=tags)

    def record(value: float, metric: str) -> dict[str, str]:
        return {VALUE_TAG: str(value), f"{RECORD}metric": metric}

    assert kept_champion(current(0.20, "val_ndcg_at_10"), "2", record(0.25, "val_ndcg_at_10")) == ""
    kept = kept_champion(current(0.20, "val_ndcg_at_10"), "2", record(0.15, "val_ndcg_at_10"))
    assert "is not above its 0.2000" in kept
    assert kept_champion(current(0.75, "val_mae"), "2", record(0.70, "val_mae")) == ""
    assert "is not below" in kept_champion(current(0.70, "val_mae"), "2", record(0.75, "val_mae"))


def test_the_best_so_far_curve_follows_the_direction():
    values = [0.1, None, 0.3, 0.2]
    assert best_so_far(values) == [0.1, 0.1, 0.1, 0.1]
    assert best_so_far(values, maximise=True) == [0.1, 0.1, 0.3, 0.3]


def test_validation_ranking_labels_only_validation_items_and_lists_no_training_item(small_split):
    trained = trained_items(small_split.train, small_split.n_items)
    part = RankedPart(small_split.valid, small_split.train, trained, small_split.scale)
    relevant = part.relevant.tocoo()
    labelled = set(zip(part.users[relevant.row], relevant.col, strict=True))
    valid = set(zip(small_split.valid["user"], small_split.valid["item"], strict=True))
    test = set(zip(small_split.test["user"], small_split.test["item"], strict=True))
    assert labelled and labelled <= valid and not labelled & test  # no test item is a label
    excluded = part.excluded.tocoo()
    hidden = set(zip(part.users[excluded.row], excluded.col, strict=True))
    train = {p for p in zip(small_split.train["user"], small_split.train["item"], strict=True)
             if p[0] in set(part.users)}  # fmt: skip
    assert hidden == train  # every training item of a ranked user, and only those, is hidden


def test_the_study_records_its_task_and_refuses_a_rerun_of_the_other_task(small_split, ranking):
    run_study(replace(ranking, n_trials=1), small_split)
    study = optuna.load_study(study_name=ranking.name, storage=open_storage(ranking.storage))
    assert study.user_attrs["task"] == "ranking"
    with pytest.raises(BenchError, match="task='ranking'"):
        run_study(replace(ranking, task="rating", metric="mae", study_name=ranking.name),
                  small_split)  # fmt: skip


def test_a_ranking_setting_without_a_ranking_metric_is_one_error():
    with pytest.raises(BenchError, match="--metric mae does not measure the ranking task"):
        SweepSettings(arch="mf", task="ranking")


def test_an_unseen_id_is_ranked_last_by_a_ranking_models_fallback():
    train = pd.DataFrame({"user": [0, 1], "item": [0, 2], "rating": [5.0, 3.0]})
    fallback = Fallback.ranked_last(train, 3, 4)
    assert fallback.global_mean == LOWEST_SCORE and fallback.user_bias is None
    assert fallback.user_seen.tolist() == [True, True, False]
    assert fallback.item_seen.tolist() == [True, False, True, False]


def test_outliers_are_clipped_on_the_worse_side_of_the_studys_direction():
    values = [0.20, 0.21, 0.22, 0.23, 0.21, -5.0]  # one diverged ranking trial, far below
    figure, axes = plt.subplots()
    try:
        axes.plot(values)
        assert clip_outliers(axes, values, maximise=True) == 1
        low, high = axes.get_ylim()
        assert low > -5.0 and high >= 0.23  # the best values stay in view
        assert "below the axis" in axes.get_title()
        assert clip_outliers(axes, values) == 0  # minimised: the low one is the best
    finally:
        plt.close(figure)
