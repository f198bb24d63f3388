"""Baselines: damped and ALS biases, their tuning, popularity; Surprise parity on real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.benchmark.baselines import (
    BIAS_ALS_GRID,
    BiasALS,
    DampedBias,
    GlobalMean,
    Popularity,
    tune_bias_als,
)
from bench.data import load_dataset, make_split

TINY = pd.DataFrame({"user": [0, 0, 1], "item": [0, 1, 0], "rating": [5, 3, 4]})


def _surprise_loops(train: pd.DataFrame, n_users, n_items, reg_u, reg_i, n_epochs):
    """Surprise's `baseline_als`, loop for loop, as the reference for the vectorised fit."""
    mu = train["rating"].mean()
    by_item = train.groupby("item")[["user", "rating"]].apply(lambda g: g.to_numpy().tolist())
    by_user = train.groupby("user")[["item", "rating"]].apply(lambda g: g.to_numpy().tolist())
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    for _ in range(n_epochs):
        for i, ratings in by_item.items():
            bi[i] = sum(r - mu - bu[int(u)] for u, r in ratings) / (reg_i + len(ratings))
        for u, ratings in by_user.items():
            bu[u] = sum(r - mu - bi[int(i)] for i, r in ratings) / (reg_u + len(ratings))
    return mu, bu, bi


def test_bias_als_one_epoch_by_hand():
    model = BiasALS(2, 2, reg_u=1.0, reg_i=1.0, n_epochs=1, clip=None).fit(TINY)
    # mu = 4; items first: b_i0 = (1 + 0) / 3, b_i1 = -1 / 2; then users with those
    b_item = np.array([1 / 3, -1 / 2])
    b_user = np.array([((1 - 1 / 3) + (-1 + 1 / 2)) / 3, (0 - 1 / 3) / 2])
    np.testing.assert_allclose(model.item_bias_, b_item)
    np.testing.assert_allclose(model.user_bias_, b_user)
    assert model.predict(np.array([0]), np.array([1]))[0] == pytest.approx(4 + b_user[0] - 0.5)


def test_bias_als_equals_surprises_loops_on_generated_data(small_split):
    train, n_users, n_items = small_split.train, small_split.n_users, small_split.n_items
    model = BiasALS(n_users, n_items, reg_u=15, reg_i=10, n_epochs=10).fit(train)
    mu, bu, bi = _surprise_loops(train, n_users, n_items, 15, 10, 10)
    assert model.mean_ == pytest.approx(mu)
    np.testing.assert_allclose(model.user_bias_, bu, atol=1e-12)
    np.testing.assert_allclose(model.item_bias_, bi, atol=1e-12)


def test_bias_als_unseen_codes_get_zero_bias_and_predictions_are_clipped(small_split):
    train = small_split.train
    n_users, n_items = small_split.n_users + 1, small_split.n_items + 1  # one unseen each
    raw = BiasALS(n_users, n_items, reg_u=0.1, reg_i=0.1, clip=None).fit(train)
    assert raw.user_bias_[-1] == 0 and raw.item_bias_[-1] == 0
    assert raw.predict(np.array([n_users - 1]), np.array([n_items - 1]))[0] == raw.mean_
    users, items = np.divmod(np.arange(n_users * n_items), n_items)
    estimates = raw.predict(users, items)
    assert estimates.max() > 5 or estimates.min() < 1  # so clipping has work to do
    clipped = BiasALS(n_users, n_items, reg_u=0.1, reg_i=0.1).fit(train).predict(users, items)
    np.testing.assert_allclose(clipped, np.clip(estimates, 1, 5))


def _rmse(model, frame: pd.DataFrame) -> float:
    predicted = model.predict(frame["user"].to_numpy(), frame["item"].to_numpy())
    return float(np.sqrt(np.mean((predicted - frame["rating"].to_numpy()) ** 2)))


def test_tune_bias_als_picks_the_best_validation_pair_and_refits_on_train_and_valid(
    small_split,
):
    s = small_split
    grid = [(15.0, 10.0), (0.5, 0.5), (100.0, 100.0)]
    model = tune_bias_als(s.train, s.valid, s.n_users, s.n_items, grid=grid)
    by_hand = {
        pair: _rmse(BiasALS(s.n_users, s.n_items, *pair).fit(s.train), s.valid) for pair in grid
    }
    assert model.grid_rmse_ == pytest.approx(by_hand)
    assert (model.reg_u_, model.reg_i_) == min(by_hand, key=by_hand.get)
    assert model.valid_rmse_ == min(by_hand.values())
    both = pd.concat([s.train, s.valid])
    refit = BiasALS(s.n_users, s.n_items, model.reg_u_, model.reg_i_).fit(both)
    np.testing.assert_allclose(model.user_bias_, refit.user_bias_)
    assert model.mean_ == pytest.approx(both["rating"].mean())
    assert (15.0, 10.0) in BIAS_ALS_GRID  # Surprise's defaults are always a candidate
    with pytest.raises(ValueError, match="validation ratings"):
        tune_bias_als(s.train, s.valid.iloc[:0], s.n_users, s.n_items)


def test_popularity_scores_are_training_counts_and_it_predicts_no_rating():
    model = Popularity().fit(TINY)
    assert model.scores(4).tolist() == [2.0, 1.0, 0.0, 0.0]
    assert model.scores(1).tolist() == [2.0]
    assert np.isnan(model.predict(np.array([0, 1]), np.array([0, 1]))).all()
    assert model.name == "popularity" and BiasALS.name == "bias"


def test_damped_bias_and_global_mean_by_hand():
    model = DampedBias(n_users=2, n_items=2, damping=1.0).fit(TINY)
    mu = 4.0
    b_item = np.array([((5 - mu) + (4 - mu)) / 3, (3 - mu) / 2])
    b_user = np.array([((5 - mu - b_item[0]) + (3 - mu - b_item[1])) / 3, (4 - mu - b_item[0]) / 2])
    np.testing.assert_allclose(
        model.predict(np.array([1, 0]), np.array([1, 0])), mu + b_user[[1, 0]] + b_item[[1, 0]]
    )
    assert GlobalMean().fit(TINY).predict(np.array([0, 1]), np.array([1, 1])).tolist() == [4.0, 4.0]


@pytest.fixture(scope="module")
def real_folds(real_data_dir):
    data = load_dataset("ml-100k", real_data_dir)
    return [make_split(data, f"u{i}", valid_fraction=0.0) for i in range(1, 6)]


@pytest.mark.integration
def test_bias_als_reaches_baseline_only_rmse_on_u1_to_u5(real_folds):
    rmses = [_rmse(BiasALS(s.n_users, s.n_items).fit(s.train), s.test) for s in real_folds]
    # surprise.BaselineOnly with its defaults: 0.9457364 mean test RMSE over u1..u5 (its
    # `test` on PredefinedKFold folds, scikit-surprise 1.1.5); ours may not be worse.
    assert np.mean(rmses) <= 0.9457364 + 1e-6


@pytest.mark.integration
def test_bias_als_predicts_as_surprise_baseline_only(real_folds):
    surprise = pytest.importorskip("surprise")
    split = real_folds[0]
    reader = surprise.Reader(rating_scale=(1, 5))
    trainset = surprise.Dataset.load_from_df(
        split.train[["user", "item", "rating"]], reader
    ).build_full_trainset()
    reference = surprise.BaselineOnly(verbose=False).fit(trainset)
    test = split.test
    expected = [
        reference.predict(u, i).est for u, i in zip(test["user"], test["item"], strict=True)
    ]
    ours = BiasALS(split.n_users, split.n_items).fit(split.train)
    np.testing.assert_allclose(
        ours.predict(test["user"].to_numpy(), test["item"].to_numpy()), expected, atol=1e-6
    )
