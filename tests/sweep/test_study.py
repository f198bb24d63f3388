"""Tiny Optuna studies on small generated data: Optuna and MLflow must agree trial by trial."""

from __future__ import annotations

import errno
import json
import multiprocessing.forkserver
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from bench.archs import get_arch
from bench.data import make_split, read_folder
from bench.sweep import objective as objective_module
from bench.sweep import pool, samplers
from bench.sweep import study as study_module
from bench.sweep.settings import SweepSettings
from bench.sweep.storage.backends import open_storage as make_storage
from bench.sweep.summary import log_study_plots
from bench.sweep.workers import run_study
from bench.tracking.recommend import load_model, recommend
from bench.tracking.tracker import Tracker
from tests.support.synthetic import synthetic_ratings, write_folder
from tests.tracking.test_serving import SERVE

NAME_SUFFIX = {"COMPLETE": "", "PRUNED": " (pruned)", "FAIL": " (failed)"}
MLFLOW_STATUS = {"COMPLETE": {"FINISHED"}, "PRUNED": {"FINISHED"}, "FAIL": {"FAILED", "KILLED"}}


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory

    def settings(arch: str, **changes) -> SweepSettings:
        base = SweepSettings(
            arch=arch,
            n_trials=3,
            timeout=None,
            max_epochs=2,
            storage=str(tmp_path / "journal.log"),
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        )
        return replace(base, **changes)

    return settings


def _trials_and_runs(settings: SweepSettings):
    study = optuna.load_study(study_name=settings.name, storage=make_storage(settings.storage))
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return study, client, runs


def assert_stores_agree(settings: SweepSettings) -> optuna.Study:
    study, client, runs = _trials_and_runs(settings)
    page = client.get_experiment_by_name(settings.name).tags["mlflow.note.content"]
    assert f"Optuna study **{settings.name}**" in page and "trial-NNNN (best)" in page
    children = {r.info.run_id: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == len(study.trials)
    for trial in study.trials:
        run = children[trial.user_attrs["mlflow_run_id"]]
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["trial_number"] == str(trial.number)
        assert run.data.tags["trial_state"] == trial.state.name
        assert run.info.status in MLFLOW_STATUS[trial.state.name]
        best = " (best)" if trial.number == study.best_trial.number else ""
        assert (run.data.tags.get("best_trial") == "true") == bool(best)
        name = f"trial-{trial.number:04d}" + NAME_SUFFIX[trial.state.name] + best
        assert run.info.run_name == name
        assert f"**{trial.state.name}**" in run.data.tags["mlflow.note.content"]
        assert run.data.params == {name: str(value) for name, value in trial.params.items()}
        assert {d.dataset.name for d in run.inputs.dataset_inputs} == {
            f"ml-100k/seed/{part}" for part in ("train", "valid", "test")
        }
        history = client.get_metric_history(run.info.run_id, "val_mae")
        assert len(history) == len(trial.intermediate_values)
        assert sorted(m.value for m in history) == pytest.approx(
            sorted(trial.intermediate_values.values())
        )
        assert "config.json" in {a.path for a in client.list_artifacts(run.info.run_id)}
        loss = trial.params["loss"]
        assert len(client.get_metric_history(run.info.run_id, f"train_loss_{loss}")) == len(history)
        assert not any(key.startswith(("train_loss", "val_loss")) and not key.endswith(loss)
                       for key in run.data.metrics)  # fmt: skip
        if trial.state.name == "COMPLETE":
            assert {"test_mae", "test_rmse", "test_mae_rounded"} <= set(run.data.metrics)
            kept = int(run.data.metrics["epochs_kept"])  # early stopping's best epoch
            by_step = {m.step: m.value for m in history}
            assert by_step[kept - 1] == pytest.approx(trial.value)
            assert trial.user_attrs["epochs"] == kept
            assert "emb_item_norm_mean" in run.data.metrics
            assert len(run.data.metrics) <= 40
        assert not any("test" in key for key in trial.user_attrs)  # test stays out of Optuna
    return study


@pytest.mark.parametrize("arch", ["mf", "nnmf", "nn"])
def test_tiny_study_agrees_across_stores(small_split, tiny, arch):
    settings = tiny(arch)
    study = run_study(settings, small_split)
    assert len(study.trials) == 3
    assert study.trials[0].params == get_arch(arch).default_params(max_epochs=2)
    assert_stores_agree(settings)


def test_a_sparse_updates_study_trains_and_records_it(small_split, tiny, tmp_path):
    settings = tiny("mf", sparse_updates=True)
    run_study(settings, small_split)
    study, client, runs = _trials_and_runs(settings)
    trial_runs = [r for r in runs if "trial_number" in r.data.tags]
    assert len(trial_runs) == 3
    for run in trial_runs:
        path = client.download_artifacts(run.info.run_id, "config.json", str(tmp_path))
        config = json.loads(Path(path).read_text())
        assert config["training"]["sparse_updates"] is True
    assert_stores_agree(settings)


def test_rerun_resumes_without_a_second_baseline(small_split, tiny):
    settings = tiny("mf", n_trials=2)
    run_study(settings, small_split)
    study = run_study(settings, small_split)
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert sum(t.user_attrs.get("baseline") == "post" for t in study.trials) == 1
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 4
    assert_stores_agree(settings)


def test_a_set_up_stopped_half_way_is_finished_once_by_the_next_start(
    small_split, tiny, monkeypatch
):
    """A full disk between the parent run and the study's note of it: the next start
    adopts that run and queues no second baseline."""
    settings = tiny("mf", n_trials=1)
    real = optuna.Study.set_user_attr

    def disk_fills(study, key, value):
        if key == "mlflow_parent_run_id":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(study, key, value)

    monkeypatch.setattr(optuna.Study, "set_user_attr", disk_fills)
    with pytest.raises(OSError):
        study_module.prepare(settings, small_split)
    monkeypatch.setattr(optuna.Study, "set_user_attr", real)
    study = run_study(settings, small_split)
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.name).experiment_id
    runs = client.search_runs([experiment])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [p.info.run_id for p in parents] == [study.user_attrs["mlflow_parent_run_id"]]
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert [t.user_attrs.get("baseline") for t in study.trials] == ["post", "svd-defaults"]


def test_resume_with_other_settings_is_refused(small_split, tiny):
    run_study(tiny("mf", n_trials=1, study_name="mine"), small_split)
    with pytest.raises(Exception, match="was created with"):  # a name given: the same study
        run_study(tiny("mf", n_trials=1, metric="rmse", study_name="mine"), small_split)


def test_two_workers_run_exactly_n_distinct_trials(small_split, tiny):
    settings = tiny("mf", n_trials=5, workers=2)
    study = run_study(settings, small_split)
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3, 4]
    assert all(t.state != optuna.trial.TrialState.FAIL for t in study.trials)
    assert_stores_agree(settings)


def test_nan_trial_fails_and_the_study_goes_on(small_split, tiny, monkeypatch):
    mf = get_arch("mf")

    def diverging_second_trial(trial, max_epochs):
        config = mf.suggest(trial, max_epochs)
        return replace(config, optimizer="sgd", learning_rate=1e9) if trial.number == 1 else config

    patched = replace(mf, suggest=diverging_second_trial)
    monkeypatch.setattr(study_module, "get_arch", lambda name: patched)
    monkeypatch.setattr(objective_module, "get_arch", lambda name: patched)
    settings = tiny("mf", n_trials=3, pruner="none")
    study = run_study(settings, small_split)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE"]
    _, client, runs = _trials_and_runs(settings)
    failed = next(r for r in runs if r.data.tags.get("trial_number") == "1")
    assert failed.info.status == "FAILED"
    assert "TrainingDiverged" in failed.data.tags["error"]
    assert_stores_agree(settings)


def test_interrupt_marks_the_trial_and_closes_runs_then_resumes(small_split, tiny, monkeypatch):
    real_train = objective_module.train
    calls = []

    def interrupted_second_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(objective_module, "train", interrupted_second_call)
    settings = tiny("mf", n_trials=3)
    with pytest.raises(KeyboardInterrupt):
        run_study(settings, small_split)
    study, _, runs = _trials_and_runs(settings)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]
    assert all(r.info.status != "RUNNING" for r in runs)
    assert {r.info.status for r in runs if "mlflow.parentRunId" not in r.data.tags} == {"KILLED"}

    monkeypatch.setattr(objective_module, "train", real_train)
    study = run_study(settings, small_split)
    assert len(study.trials) == 5
    assert_stores_agree(settings)


class SpyPruner(optuna.pruners.MedianPruner):
    """Records every number the pruner is shown."""

    def __init__(self):
        super().__init__(n_startup_trials=0, n_warmup_steps=0)
        self.seen: list[float] = []

    def prune(self, study, trial):
        self.seen += list(trial.intermediate_values.values())
        self.seen += [t.value for t in study.get_trials(deepcopy=False) if t.value is not None]
        return super().prune(study, trial)


def test_sampler_and_pruner_never_see_test_metrics(small_split, tiny, monkeypatch):
    spy = SpyPruner()
    monkeypatch.setattr(samplers, "make_pruner", lambda name, max_epochs: spy)
    settings = tiny("mf", n_trials=4, max_epochs=3)
    study = run_study(settings, small_split)
    _, client, runs = _trials_and_runs(settings)
    test_values = {r.data.metrics[k] for r in runs for k in r.data.metrics if k.startswith("test_")}
    val_values = {
        m.value
        for r in runs
        if "mlflow.parentRunId" in r.data.tags
        for m in client.get_metric_history(r.info.run_id, "val_mae")
    }
    assert spy.seen
    assert all(any(abs(s - v) < 1e-9 for v in val_values) for s in spy.seen)
    assert not any(abs(s - t) < 1e-12 for s in spy.seen for t in test_values)
    completed = [t for t in study.trials if t.value is not None]
    assert all(any(abs(t.value - v) < 1e-9 for v in val_values) for t in completed)


def test_recycled_worker_processes_run_exactly_n_distinct_trials(small_split, tiny):
    settings = tiny("mf", n_trials=5, trials_per_process=2)  # processes of 2, 2 and 1 trials
    study = run_study(settings, small_split)
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3, 4]
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 5
    assert_stores_agree(settings)


def test_a_warm_workers_trials_equal_a_cold_ones(small_split, tiny, monkeypatch, tmp_path):
    """Workers forked from the fork server (the harness imported once) learn exactly what
    freshly spawned ones do: the same parameters, values and kept epochs."""
    trials = {}
    for method in ("spawn", "forkserver"):
        monkeypatch.setenv(pool.START_ENV, method)
        stores = {"storage": str(tmp_path / f"{method}.log"),
                  "tracking_uri": f"sqlite:///{tmp_path / method}.db"}  # fmt: skip
        settings = tiny("mf", n_trials=2, trials_per_process=1, **stores)
        study = run_study(settings, small_split)
        trials[method] = [(t.params, t.value, t.user_attrs["epochs"]) for t in study.trials]
        assert_stores_agree(settings)
    assert trials["spawn"] == trials["forkserver"]
    assert multiprocessing.forkserver._forkserver._forkserver_pid is not None  # it was used


class PruneFromTrialOne(optuna.pruners.BasePruner):
    """Prunes every trial but the first after its second epoch."""

    def prune(self, study, trial):
        return trial.number > 0 and max(trial.intermediate_values, default=0) >= 1


def test_pruned_and_failed_trials_are_recognisable_in_the_runs_table(
    small_split, tiny, monkeypatch
):
    monkeypatch.setattr(samplers, "make_pruner", lambda name, max_epochs: PruneFromTrialOne())
    settings = tiny("mf", n_trials=2, max_epochs=4)
    study = run_study(settings, small_split)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED"]
    _, client, runs = _trials_and_runs(settings)
    pruned = next(r for r in runs if r.data.tags.get("trial_number") == "1")
    assert pruned.info.run_name == "trial-0001 (pruned)"
    assert "Stopped after epoch 2 of 4" in pruned.data.tags["mlflow.note.content"]
    assert not any(key.startswith("test_") for key in pruned.data.metrics)
    assert_stores_agree(settings)


@pytest.fixture
def served_ids(tmp_path):
    """Generated data whose raw ids include user 196 and item 242, as in MovieLens."""
    ratings = synthetic_ratings()
    ratings = ratings.assign(user_id=ratings["user_id"] + 180, item_id=ratings["item_id"] + 230)
    data = read_folder(write_folder(tmp_path / "ids", ratings))
    return make_split(data, "seed", seed=0, valid_fraction=0.1)


def test_best_trial_is_the_champion_and_serves_where_bench_cannot_be_imported(
    served_ids, tiny, tmp_path
):
    settings = tiny("mf", n_trials=3)
    study = run_study(settings, served_ids)
    client = MlflowClient(settings.tracking_uri)
    version = client.get_model_version_by_alias("recsys-mf-ml-100k", "champion")
    best = study.best_trial
    assert version.run_id == best.user_attrs["mlflow_run_id"]
    assert f"study {settings.name}: trial {best.number}" in version.description
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    note = parent.data.tags["mlflow.note.content"]
    assert f"**Best trial: {best.number}**" in note and "recsys-mf-ml-100k" in note
    assert "- `k`: 1..256 (log scale)" in note and "Not yet" not in note
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/best_trial_embeddings.png", "plots/intermediate_values.png"} <= plots
    frame = pd.DataFrame({"user": [196], "item": [242]})
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri}
    out = subprocess.run(
        [sys.executable, "-c", SERVE, "models:/recsys-mf-ml-100k@champion", frame.to_json()],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    served = json.loads(out.stdout.strip().splitlines()[-1])
    logged = client.get_run(best.user_attrs["mlflow_run_id"]).data.tags["rating_model_uri"]
    expected = mlflow.pyfunc.load_model(logged).predict(frame)["rating"]
    assert served == pytest.approx(expected.tolist())
    assert served[0] != pytest.approx(served_ids.train["rating"].mean())  # not the fallback

    # bench recommend takes the champion (a rating pyfunc on raw ids), not only Keras models
    data = read_folder(tmp_path / "ids")
    champion = load_model("models:/recsys-mf-ml-100k@champion", settings.tracking_uri)
    table = recommend(champion, data, 196, k=5)
    rated = set(data.ratings.loc[data.ratings["user_id"] == 196, "item_id"])
    assert len(table) == 5 and not rated & set(table["movie id"])
    frame = pd.DataFrame({"user": 196, "item": table["movie id"]})
    expected = mlflow.pyfunc.load_model(logged).predict(frame)["rating"]
    assert table["predicted rating"].tolist() == pytest.approx(expected.tolist())


def _study_with(n_complete: int) -> optuna.Study:
    study = optuna.create_study()
    distributions = {
        "k": optuna.distributions.IntDistribution(1, 256, log=True),
        "learning_rate": optuna.distributions.FloatDistribution(1e-4, 0.1, log=True),
    }
    rng = np.random.default_rng(0)
    for _ in range(n_complete):
        params = {"k": int(rng.integers(1, 256)), "learning_rate": float(rng.uniform(1e-4, 0.1))}
        value = 0.7 + params["learning_rate"] + rng.normal(scale=0.01)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions,
                                                  value=value))  # fmt: skip
    return study


@pytest.mark.parametrize(("n_complete", "importances"), [(9, False), (10, True)])
def test_importances_need_ten_completed_trials(tmp_path, monkeypatch, n_complete, importances):
    monkeypatch.chdir(tmp_path)
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = tracker.start_run(tracker.experiment("plots"), "parent")
    log_study_plots(tracker, run_id, _study_with(n_complete), "val_mae")
    plots = {a.path for a in tracker.client.list_artifacts(run_id, "plots")}
    assert ("plots/param_importances.png" in plots) is importances
    assert ("plots/param_importances.txt" in plots) is not importances
    assert {"plots/optimization_history.png", "plots/parallel_coordinate.png"} <= plots


def test_a_parameter_only_unfinished_trials_have_does_not_break_the_plots(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = _study_with(3)
    only_pruned = {"bias_l2_on": optuna.distributions.CategoricalDistribution([False, True])}
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED, params={"bias_l2_on": True},
            distributions=only_pruned,
        )
    )  # fmt: skip
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = tracker.start_run(tracker.experiment("plots"), "parent")
    log_study_plots(tracker, run_id, study, "val_mae")
    plots = {a.path for a in tracker.client.list_artifacts(run_id, "plots")}
    assert "plots/parallel_coordinate.png" in plots


def test_a_sweep_on_a_csv_file_names_its_study_and_champion_safely(tiny, tmp_path):
    """A `csv:PATH?...` spec holds '/', ':', '?' and '&', which MLflow model names refuse:
    studies, experiments and models take the data set's short label instead."""
    ratings = synthetic_ratings().rename(columns={"user_id": "user", "item_id": "item"})
    path = tmp_path / "my ratings.csv"
    ratings.to_csv(path, index=False)
    settings = tiny("mf", n_trials=2, dataset=f"csv:{path}?sep=,&header=1")
    study = run_study(settings)
    assert settings.name.startswith("csv-my-ratings-") and settings.name.endswith("-mf-seed-e2")
    assert not set("/:?&") & set(settings.name)
    label = settings.name.removesuffix("-mf-seed-e2")
    version = MlflowClient(settings.tracking_uri).get_model_version_by_alias(
        f"recsys-mf-{label}", "champion"
    )
    assert version.run_id == study.best_trial.user_attrs["mlflow_run_id"]


def test_one_diverged_trial_does_not_flatten_the_history_plot():
    import matplotlib.pyplot as plt

    from bench.sweep.summary import clip_outliers

    values = [0.95, 0.93, 0.92, 0.94, 0.91, 0.925, 50.0]
    _, ax = plt.subplots()
    ax.plot(values, "o")
    assert clip_outliers(ax, values) == 1
    assert 0.95 < ax.get_ylim()[1] < 1.2 and "1 trial(s) above the axis" in ax.get_title()
    _, calm = plt.subplots()
    calm.plot(values[:-1], "o")
    before = calm.get_ylim()
    assert clip_outliers(calm, values[:-1]) == 0 and calm.get_ylim() == before
    plt.close("all")


def test_studies_of_several_architectures_share_one_experiment(small_split, tiny):
    from bench.sweep.descriptions import SHARED_EXPERIMENT

    studies = {arch: run_study(tiny(arch, n_trials=2, experiment="sweep"), small_split)
               for arch in ("mf", "nnmf")}  # fmt: skip
    client = MlflowClient(tiny("mf").tracking_uri)
    experiment = client.get_experiment_by_name("sweep")
    assert experiment.tags["mlflow.note.content"] == SHARED_EXPERIMENT
    runs = client.search_runs([experiment.experiment_id])
    for arch, study in studies.items():
        parent = study.user_attrs["mlflow_parent_run_id"]
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]
        assert sorted(r.data.tags["trial_number"] for r in children) == ["0", "1"]
        assert {r.data.tags["study"] for r in children} == {study.study_name}
        assert client.get_run(parent).data.tags["arch"] == arch
    assert len(runs) == 2 + 4 and client.get_experiment_by_name("mf-seed") is None
