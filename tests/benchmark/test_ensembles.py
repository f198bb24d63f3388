"""Ensembles of a study's best configs: greedy weights on validation only, a one-member
ensemble is its member, and the job's ensemble rows end to end on small data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bench.archs.mf import MFConfig
from bench.benchmark import ensembles, predictors
from bench.benchmark import nested_tuning as nested
from bench.benchmark.predictors import Ensemble, LearntConfig
from bench.benchmark.spec import Budget
from bench.cli import benchmark as benchmark_cli
from bench.data import make_split
from bench.errors import BenchError

SMALL = MFConfig(k=2, epochs=2)
OTHER = MFConfig(k=3, epochs=3, learning_rate=0.01)


def _spec(*configs) -> ensembles.EnsembleSpec:
    members = tuple((f"mf#{i}", c) for i, c in enumerate(configs))
    return ensembles.EnsembleSpec("mf-ens", members, valid_fraction=0.2, metric="rmse")


def test_greedy_selection_mixes_complementary_members_and_drops_a_useless_one():
    target = np.array([1.0, 2.0, 3.0, 4.0])
    low, high = target - 0.5, target + 0.5  # the mean of the two is exact
    useless = np.full(4, 10.0)
    predictions = np.stack([low, high, useless])
    weights = ensembles.greedy_weights(predictions, target, "rmse")
    assert abs(weights[0] - weights[1]) == pytest.approx(1 / ensembles.ROUNDS)  # alternating
    assert weights[2] == 0.0 and weights.sum() == pytest.approx(1.0)
    mixed = weights @ predictions
    assert np.sqrt(np.mean((mixed - target) ** 2)) < 0.05  # each member alone: 0.5


def test_one_member_gets_all_the_weight():
    predictions = np.array([[1.0, 5.0, 2.0]])
    weights = ensembles.greedy_weights(predictions, np.array([3.0, 3.0, 3.0]), "mae")
    assert weights.tolist() == [1.0]


@pytest.mark.parametrize("fold", ["u1", "seed"])
def test_the_tuning_part_is_the_nested_studys_split(small_data, fold):
    split = make_split(small_data, fold, seed=2 if fold == "seed" else 0, valid_fraction=0.0)
    if fold == "seed":  # the benchmark's seed splits are named by their seed
        split = replace(split, name="seed2")
    budget = Budget(valid_fraction=0.2)
    ours = ensembles.tuning_part(split, seed=0, valid_fraction=0.2)
    theirs = nested.tuning_split(small_data, split, seed=0, budget=budget)
    pd.testing.assert_frame_equal(ours.train, theirs.train)
    pd.testing.assert_frame_equal(ours.valid, theirs.valid)
    assert ours.test.empty and theirs.test.empty


def test_the_weights_are_fitted_on_validation_rows_of_the_training_part_only(
    small_data, monkeypatch
):
    fold = make_split(small_data, "u1", valid_fraction=0.0)
    seen = []
    fit_weights = ensembles.fit_weights
    monkeypatch.setattr(
        ensembles, "fit_weights", lambda p, valid, m: seen.append(valid) or fit_weights(p, valid, m)
    )
    ensemble = Ensemble(_spec(SMALL, OTHER))
    ensemble.fit(fold, seed=0)
    (valid,) = seen
    keys = ["user", "item"]
    in_train = valid.merge(fold.train, on=keys, how="left", indicator=True)["_merge"]
    assert len(valid) == np.ceil(0.2 * len(fold.train)) and (in_train == "both").all()
    assert valid.merge(fold.test, on=keys).empty  # not one test pair
    assert ensemble.weights.sum() == pytest.approx(1.0)
    assert "mf#0:" in ensemble.params()["members"]


def test_a_one_member_ensemble_predicts_as_its_member(small_data, monkeypatch):
    fold = make_split(small_data, "u1", valid_fraction=0.0)
    users, items = fold.test["user"].to_numpy(), fold.test["item"].to_numpy()
    alone = LearntConfig(SMALL).fit(fold, seed=0)
    monkeypatch.setattr(predictors, "MEMBERS", predictors.MemberFits())  # trained afresh
    together = Ensemble(_spec(SMALL)).fit(fold, seed=0)
    assert np.allclose(together.predict(users, items), alone.predict(users, items))
    assert np.allclose(together.score_all(), alone.score_all())


def test_ensembles_need_nested_tuning_and_a_positive_count():
    with pytest.raises(BenchError, match="--ensembles"):
        benchmark_cli.parse_args(["--ensembles", "2", "--protocol", "pinned"])
    with pytest.raises(BenchError, match="--ensembles"):
        benchmark_cli.parse_args(["--ensembles", "-1"])


def test_the_job_adds_each_architectures_ensemble_and_one_across_them(small_data, tmp_path):
    args = benchmark_cli.parse_args(
        ["--archs", "mf,nnmf", "--folds", "u1,u2", "--tune-trials", "3", "--max-epochs", "2",
         "--ensembles", "2", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--storage", str(tmp_path / "journal.log"), "--report-dir", str(tmp_path / "report")]
    )  # fmt: skip
    assert benchmark_cli.run(args, small_data) == 0
    results = pd.read_csv(tmp_path / "report" / "results.csv")
    rows = results[results["model"].isin(["mf-ens", "nnmf-ens", "all-ens"])]
    assert len(rows) == 6 and rows["rmse"].notna().all() and rows["ndcg_at_10"].notna().all()
    report = (tmp_path / "report" / "report.md").read_text()
    assert "greedy ensemble of mf#" in report and "nnmf#" in report
    assert "MFConfig(" not in report  # members by trial, their configs in their own rows
