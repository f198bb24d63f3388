"""Tuning that tunes: samplers and pruners by name, per-fold streams, early stopping that keeps
its best epoch, anytime curves, and the selection metric in the objective and the identity."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from bench.archs import get_arch
from bench.archs.mf import MFConfig
from bench.errors import BenchError
from bench.sweep import samplers
from bench.sweep.anytime import area, best_so_far, curve_of
from bench.sweep.objective import Objective, trial_value
from bench.sweep.settings import SweepSettings
from bench.sweep.study import _identity
from bench.training import TrainOptions, predict_codes, train
from bench.training.embeddings import mae_rmse

X = FloatDistribution(0.0, 1.0)


def _study(values: list[float | None]) -> optuna.Study:
    """A study of hand-made trials: a number completes with that value, None is pruned."""
    study = optuna.create_study()
    for value in values:
        state = TrialState.COMPLETE if value is not None else TrialState.PRUNED
        study.add_trial(
            create_trial(state=state, value=value, params={"x": 0.5}, distributions={"x": X})
        )
    return study


def test_best_so_far_and_its_area_on_a_hand_made_study():
    curve = curve_of(_study([3.0, None, 2.0, 4.0, 1.0]))
    assert curve.trials == [0, 1, 2, 3, 4]
    assert curve.best == [3.0, 3.0, 2.0, 2.0, 1.0]
    assert area(curve.best) == pytest.approx((3 + 3 + 2 + 2 + 1) / 5)


def test_trials_before_the_first_complete_one_count_as_the_worst_value():
    best = best_so_far([None, None, 2.0, 1.0])
    assert math.isnan(best[0]) and best[2:] == [2.0, 1.0]
    assert area(best) == pytest.approx((2 + 2 + 2 + 1) / 4)
    assert math.isnan(area(best_so_far([None])))


EXPECTED_SAMPLERS = {
    "random": optuna.samplers.RandomSampler,
    "tpe": optuna.samplers.TPESampler,
    "tpe-small": optuna.samplers.TPESampler,
    "qmc": optuna.samplers.QMCSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "gp": optuna.samplers.GPSampler,
}


@pytest.mark.parametrize("name", samplers.available(samplers.SAMPLERS))
def test_each_sampler_name_builds_the_sampler_it_says(name):
    sampler = samplers.make_sampler(0, (0,), name)
    assert type(sampler) is EXPECTED_SAMPLERS[name]


def test_the_small_budget_tpe_is_set_up_for_small_budgets():
    shipped = samplers.make_sampler(0, (0,), "tpe")
    small = samplers.make_sampler(0, (0,), "tpe-small")
    assert shipped._n_startup_trials == 10 and not shipped._multivariate
    assert small._n_startup_trials == samplers.SMALL_BUDGET_STARTUP
    assert small._multivariate and small._group and small._constant_liar


@pytest.mark.parametrize(
    "name, kind",
    [
        ("none", optuna.pruners.NopPruner),
        ("median", optuna.pruners.MedianPruner),
        ("sha", optuna.pruners.SuccessiveHalvingPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
    ],
)
def test_each_pruner_name_builds_the_pruner_it_says(name, kind):
    assert type(samplers.make_pruner(name, 50)) is kind


def test_an_unknown_or_uninstalled_sampler_is_one_error_line(monkeypatch):
    with pytest.raises(BenchError, match="unknown sampler 'nope'; choose one of random"):
        samplers.make_sampler(0, (0,), "nope")
    monkeypatch.setattr(samplers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BenchError, match="needs the Python package 'torch': pip install torch"):
        samplers.require("sampler", "gp")


def _first_draw(fold: str) -> float:
    sampler = samplers.make_sampler(0, (samplers.stream_of(fold),), "random")
    study = optuna.create_study(sampler=sampler)
    return study.ask({"x": X}).params["x"]


def test_folds_draw_different_streams_and_a_fold_draws_the_same_one_again():
    assert _first_draw("u1") != _first_draw("u2")
    assert _first_draw("u1") == _first_draw("u1")


def test_architectures_of_one_fold_draw_different_streams(small_split, tmp_path):
    """MF and NNMF share their parameters: on one stream they would try the same configs."""
    from bench.sweep.workers import run_study

    drawn = {}
    for arch in ("mf", "nnmf"):
        settings = SweepSettings(
            arch=arch, n_trials=3, timeout=None, max_epochs=1, sampler="random",
            storage=str(tmp_path / f"{arch}.log"), tracking_uri=f"sqlite:///{tmp_path}/m.db",
        )  # fmt: skip
        study = run_study(settings, small_split)
        starts = [t.user_attrs.get("baseline") for t in study.trials]
        assert starts == ["post", "svd-defaults", None]  # then the first random draw
        drawn[arch] = study.trials[2].params
    assert drawn["mf"] != drawn["nnmf"]


def _val_rmse(model, split) -> float:
    valid = split.valid
    predicted = predict_codes(model, valid["user"].to_numpy(), valid["item"].to_numpy())
    return mae_rmse(valid["rating"].to_numpy(), predicted)[1]


def test_early_stopping_stops_after_patience_and_keeps_the_best_epoch(small_split):
    config = MFConfig(k=16, learning_rate=0.05, batch_size=32, epochs=60)  # overfits fast
    options = TrainOptions(patience=3, monitor="val_rmse")
    result = train(config, small_split, options)
    curve = result.history["val_rmse"]
    assert result.best_epoch == int(np.argmin(curve))
    assert len(curve) == result.best_epoch + 3 + 1 < 60  # stopped, three epochs after the best
    assert _val_rmse(result.model, small_split) == pytest.approx(curve[result.best_epoch], 1e-5)
    assert trial_value(result, "val_rmse") == min(curve)


def test_without_patience_every_epoch_is_trained(small_split):
    result = train(MFConfig(k=4, epochs=6), small_split, TrainOptions())
    assert result.best_epoch is None and len(result.history["val_mae"]) == 6


def test_a_trial_config_trains_the_epochs_its_trial_kept():
    mf = get_arch("mf")
    study = optuna.create_study()
    study.enqueue_trial(mf.default_params() | {"k": 7})
    trial = study.ask()
    mf.suggest(trial, 100)
    trial.set_user_attr("epochs", 13)
    study.tell(trial, 0.9)
    assert "epochs" not in study.best_trial.params  # the space no longer draws epochs
    config = mf.from_trial(study.best_trial)
    assert config.k == 7 and config.epochs == 13


def test_the_metric_changes_the_objective_and_the_study_identity(small_split, tmp_path):
    settings = SweepSettings(arch="mf", metric="rmse", patience=4)
    prepared = SimpleNamespace(settings=settings, tracking_uri=f"sqlite:///{tmp_path}/m.db")
    objective = Objective(prepared, small_split)
    assert objective.metric == "val_rmse"
    assert objective.options.monitor == "val_rmse" and objective.options.patience == 4
    mae = Objective(
        SimpleNamespace(**{**vars(prepared), "settings": replace(settings, metric="mae")}),
        small_split,
    )
    assert mae.metric == mae.options.monitor == "val_mae"
    assert _identity(settings)["metric"] == "rmse"
    for change in ({"metric": "mae"}, {"sampler": "random"}, {"patience": None}):
        assert _identity(settings) != _identity(replace(settings, **change))
