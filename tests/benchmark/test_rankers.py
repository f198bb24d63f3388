"""EASE and ItemKNN against brute-force references, their tuning kept off the test part, and
their rows on the real data."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

import bench.benchmark.nested_tuning as nested
import bench.benchmark.rankers as rankers
from bench.benchmark.peers import PeerSpec
from bench.benchmark.predictors import PopularityBaseline, as_predictor, evaluate
from bench.benchmark.spec import Budget
from bench.data import load_dataset, make_split
from bench.metrics import RatingScale


def _tiny(seed: int = 0, users: int = 9, items: int = 7):
    """A random binary user x item matrix (as sparse positives) with every item rated."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((users, items)) < 0.45).astype(float)
    dense[rng.integers(0, users, items), np.arange(items)] = 1.0
    rows, cols = np.nonzero(dense)
    frame = pd.DataFrame({"user": rows, "item": cols, "rating": rng.integers(1, 6, len(rows))})
    return frame, rankers.positives(frame, users, items, "all", RatingScale())


def _ridge_columns(x: np.ndarray, l2: float) -> np.ndarray:
    """EASE by its definition, one item at a time: column j is the ridge regression of item
    j's column on every other item's column (so B_jj = 0)."""
    n = x.shape[1]
    weights = np.zeros((n, n))
    for j in range(n):
        others = [i for i in range(n) if i != j]
        a = x[:, others]
        weights[others, j] = np.linalg.solve(a.T @ a + l2 * np.eye(n - 1), a.T @ x[:, j])
    return weights


def _knn_loops(x: np.ndarray, neighbours: int, shrinkage: float) -> np.ndarray:
    """Shrunk cosine item-item similarity pair by pair, each item's top neighbours kept."""
    n = x.shape[1]
    sims = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                dot = float(x[:, i] @ x[:, j])
                norm = np.sqrt(x[:, i] @ x[:, i]) * np.sqrt(x[:, j] @ x[:, j])
                sims[i, j] = dot / (norm + shrinkage + 1e-12)
    kept = np.zeros_like(sims)
    for j in range(n):
        best = sorted(range(n), key=lambda i: (-sims[i, j], i))[:neighbours]
        kept[best, j] = sims[best, j]
    return kept


@pytest.mark.parametrize("l2", [0.5, 3.0, 50.0])
def test_ease_matches_its_per_item_ridge_definition(l2):
    _, x = _tiny()
    expected = _ridge_columns(x.toarray(), l2)
    np.testing.assert_allclose(rankers.ease_weights(x, l2), expected, atol=1e-10)


@pytest.mark.parametrize(("neighbours", "shrinkage"), [(2, 0.0), (3, 5.0), (50, 1.0)])
def test_itemknn_matches_a_pairwise_loop(neighbours, shrinkage):
    _, x = _tiny(seed=3)
    expected = _knn_loops(x.toarray(), neighbours, shrinkage)
    np.testing.assert_allclose(
        rankers.itemknn_weights(x, neighbours, shrinkage), expected, atol=1e-12
    )


IMPLICIT_PARAMS = {
    "als": {"factors": 4, "regularization": 0.1, "alpha": 2.0, "iterations": 5},
    "bpr": {"factors": 4, "learning_rate": 0.05, "regularization": 0.01, "iterations": 30},
}


@pytest.mark.parametrize("name", rankers.IMPLICIT)
def test_implicit_scores_are_its_factors_product_and_repeat_with_the_seed(name):
    implicit = pytest.importorskip("implicit.cpu.als")
    frame, x = _tiny(seed=5, users=15, items=8)
    params = IMPLICIT_PARAMS[name]
    first = rankers.fit_scores(name, params, frame, x.shape, RatingScale(), seed=4)
    again = rankers.fit_scores(name, params, frame, x.shape, RatingScale(), seed=4)
    other = rankers.fit_scores(name, params, frame, x.shape, RatingScale(), seed=5)
    assert first.shape == x.shape and np.array_equal(first, again)
    assert not np.allclose(first, other)
    if name == "als":  # the same fit through implicit's own API ranks the same items first
        model = implicit.AlternatingLeastSquares(random_state=4, num_threads=1, **params)
        model.fit(x.astype("float32"), show_progress=False)
        ids, _ = model.recommend(0, x[0], N=3, filter_already_liked_items=False)
        assert list(ids) == list(np.argsort(-first[0], kind="stable")[:3])


def test_implicit_peers_without_the_package_are_one_error_line(monkeypatch):
    monkeypatch.setattr(rankers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(rankers.BenchError, match=r"--peers als,bpr needs implicit.*pip install"):
        rankers.require_implicit(["ease", "als", "bpr"])
    rankers.require_implicit(["ease", "itemknn"])  # no implicit needed: no error


def test_relevant_positives_keep_only_ratings_at_the_threshold():
    frame = pd.DataFrame({"user": [0, 0, 1, 1], "item": [0, 1, 1, 2], "rating": [5, 3, 4, 1]})
    x = rankers.positives(frame, 2, 3, "relevant", RatingScale())
    assert x.toarray().tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    assert rankers.positives(frame, 2, 3, "all", RatingScale()).sum() == 4


def test_tuning_ranks_validation_items_only_and_never_a_test_pair(small_data, monkeypatch):
    fold = make_split(small_data, "u1", valid_fraction=0.0)
    budget = Budget(trials=3, timeout=None)
    tuning = nested.tuning_split(small_data, fold, 0, budget)
    ranked = []

    def spy(score_user, train, test, n_items, k=10, **kwargs):
        ranked.append((train, test))
        return {"ndcg_at_10": float(len(ranked))}  # later trials look better: best = last

    monkeypatch.setattr(rankers, "ranking_metrics", spy)
    storage = optuna.storages.InMemoryStorage()
    params, origin = rankers.tune("ease", tuning, budget, 0, storage, "t")
    assert len(ranked) == 3 and origin["trial"] == 2 and origin["metric"] == "val_ndcg_at_10"
    test_pairs = set(zip(fold.test["user"], fold.test["item"], strict=True))
    for train, test in ranked:
        assert train is tuning.train and test is tuning.valid
        assert not test_pairs & set(zip(test["user"], test["item"], strict=True))
    assert set(params) == {"l2", "positives"}


def test_a_rerun_tops_the_budget_up_instead_of_adding_one(small_data):
    tuning = nested.tuning_split(
        small_data, make_split(small_data, "u1", valid_fraction=0.0), 0, Budget()
    )
    storage = optuna.storages.InMemoryStorage()
    rankers.tune("itemknn", tuning, Budget(trials=2, timeout=None), 0, storage, "t")
    _, origin = rankers.tune("itemknn", tuning, Budget(trials=3, timeout=None), 0, storage, "t")
    assert origin["trials"] == 3


def test_a_ranker_row_has_ranking_metrics_and_no_rating_error(small_data):
    fold = make_split(small_data, "u1", valid_fraction=0.0)
    spec = PeerSpec("ease", {"l2": 10.0, "positives": "all"})
    row = evaluate("ease", as_predictor(spec), fold, 0)
    assert np.isnan(row.metrics["mae"]) and np.isnan(row.metrics["rmse"])
    assert 0.0 <= row.metrics["ndcg_at_10"] <= 1.0


def test_too_many_items_for_a_dense_item_matrix_is_one_error():
    frame = pd.DataFrame({"user": [0], "item": [0], "rating": [5]})
    with pytest.raises(rankers.BenchError, match="leave ease out"):
        rankers.fit_scores("ease", {"l2": 1.0}, frame, (1, rankers.MAX_ITEMS + 1), RatingScale())
    assert rankers.RANKERS["ease"].item_item and not rankers.RANKERS["als"].item_item


@pytest.mark.integration
def test_ease_itemknn_and_als_beat_popularity_on_u1(real_data_dir):
    fold = make_split(load_dataset("ml-100k", real_data_dir), "u1", valid_fraction=0.0)
    popularity = evaluate("popularity", PopularityBaseline(), fold, 0).metrics["ndcg_at_10"]
    ease = PeerSpec("ease", {"l2": 500.0, "positives": "all"})
    knn = PeerSpec("itemknn", {"neighbours": 100, "shrinkage": 10.0, "positives": "all"})
    als = {"factors": 64, "regularization": 0.05, "alpha": 2.0, "iterations": 15}
    for spec in (ease, knn, PeerSpec("als", {**als, "positives": "all"})):
        row = evaluate(spec.name, as_predictor(spec), fold, 0)
        assert row.metrics["ndcg_at_10"] > popularity * 1.3, spec.name


def test_a_metric_a_ranker_does_not_predict_is_not_compared_and_reads_n_a():
    from bench.benchmark.job import REPORTED, comparisons, summary_table

    rows = []
    for model, fold, value in [("mf", "u1", 0.7), ("mf", "u2", 0.8), ("ease", "u1", 0.9)]:
        rows.append({"model": model, "fold": fold, **{m: value for m in REPORTED}})
    rows.append({"model": "ease", "fold": "u2", **{m: 0.95 for m in REPORTED}})
    results = pd.DataFrame(rows)
    results.loc[results["model"] == "ease", ["mae", "rmse"]] = np.nan
    sentences = comparisons(results, ["mf", "ease"], 0.25)
    assert len(sentences) == 1 and "on ndcg_at_10" in sentences[0]
    table = summary_table(results, 0.25).set_index("model")
    assert table.loc["ease", "mae"] == "n/a" and table.loc["mf", "mae"] != "n/a"
