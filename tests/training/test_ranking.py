"""Training for the top-k task on small generated data: the negatives' draws, the losses,
the whole-grid metrics, reproducibility, early stopping on NDCG, and that it learns."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from bench.archs.mf import MFConfig
from bench.archs.nn import NNConfig
from bench.data import make_split, read_folder
from bench.errors import BenchError
from bench.metrics.ranking import grid_metrics, ranking_metrics
from bench.training.compiled import RUNNERS
from bench.training.options import TrainOptions
from bench.training.ranking import (
    LOWEST_SCORE,
    RankedPart,
    RankingRunner,
    RankingSetup,
    draw_negatives,
    epoch_key,
    positives,
    ranked_grid,
    ranking_loss,
    sampling_cdf,
    score_grid,
    trained_items,
    upper_bound,
)
from bench.training.train import train
from tests.support.synthetic import synthetic_ratings, write_folder

MF = MFConfig(k=8, epochs=6, batch_size=64, learning_rate=0.02)
BPR = RankingSetup(loss="bpr", negatives=3)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    folder = write_folder(tmp_path_factory.mktemp("data"), synthetic_ratings(60, 80))
    return make_split(read_folder(folder), "seed", seed=0, valid_fraction=0.15)


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    """Two groups of users, each rating (well) only the first or the second half of the
    items: a ranking learnt from who rated what puts the own half first."""
    rng = np.random.default_rng(3)
    rows = []
    for user in range(80):
        half = np.arange(40) + 40 * (user % 2)
        for item in rng.choice(half, size=16, replace=False):
            rows.append((user + 1, item + 1, int(rng.integers(4, 6)), 880000000 + len(rows)))
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    folder = write_folder(tmp_path_factory.mktemp("grouped"), ratings)
    return make_split(read_folder(folder), "seed", seed=0, valid_fraction=0.15)


def _draw(rows, key: int, cdf: np.ndarray, count: int) -> np.ndarray:
    rows = tf.constant(np.asarray(rows, dtype="int32"))
    return draw_negatives(rows, tf.constant(key, tf.int32), tf.constant(cdf), count).numpy()


def test_a_positives_negatives_depend_on_its_row_and_the_epoch_not_on_its_batch():
    cdf = sampling_cdf(pd.DataFrame({"item": [0]}), 50, "uniform")
    whole = _draw(range(20), epoch_key(7, 0), cdf, 5)
    halves = np.concatenate([_draw(range(10, 20), epoch_key(7, 0), cdf, 5),
                             _draw(range(10), epoch_key(7, 0), cdf, 5)])  # fmt: skip
    assert np.array_equal(whole, np.roll(halves, 10, axis=0))  # same draws, in any batch
    assert whole.shape == (20, 5) and whole.min() >= 0 and whole.max() < 50
    assert not np.array_equal(whole, _draw(range(20), epoch_key(7, 1), cdf, 5))  # next epoch
    assert not np.array_equal(whole, _draw(range(20), epoch_key(8, 0), cdf, 5))  # other seed


def test_the_popularity_sampler_draws_items_in_proportion_to_their_training_counts():
    train = pd.DataFrame({"item": [0] * 59 + [1] * 29 + [2] * 9})  # counts + 1: 60, 30, 10
    cdf = sampling_cdf(train, 3, "popularity")
    draws = _draw(range(20_000), epoch_key(0, 0), cdf, 1).ravel()
    shares = np.bincount(draws, minlength=3) / len(draws)
    assert shares == pytest.approx([0.6, 0.3, 0.1], abs=0.015)
    rows = tf.constant(np.arange(20_000, dtype="int32"))
    key = tf.constant(epoch_key(0, 1), tf.int32)
    uniform = draw_negatives(rows, key, tf.constant(cdf), 1, uniform=True).numpy().ravel()
    assert np.bincount(uniform) / len(uniform) == pytest.approx([1 / 3] * 3, abs=0.015)


def test_the_losses_are_bpr_and_binary_cross_entropy():
    positive, negative = np.array([2.0, -1.0]), np.array([[0.5, 1.0], [0.0, -3.0]])
    logits = tf.constant(np.concatenate([positive, negative.ravel()]), tf.float32)
    sigmoid = 1 / (1 + np.exp(-(positive[:, None] - negative)))
    bpr = ranking_loss(logits, 2, 2, "bpr").numpy()
    assert bpr == pytest.approx(np.mean(-np.log(sigmoid)), rel=1e-5)
    bce = -np.log(1 / (1 + np.exp(-positive))).sum() - np.log(1 / (1 + np.exp(negative))).sum()
    assert ranking_loss(logits, 2, 2, "bce").numpy() == pytest.approx(bce / 6, rel=1e-5)


@pytest.mark.parametrize("levels", [None, 3, 1])  # continuous, 3 values (ties), constant
def test_grid_metrics_equal_the_benchmarks_per_user_metrics_ties_included(split, levels):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(split.n_users, split.n_items))
    if levels is not None:
        scores = rng.integers(0, levels, size=scores.shape).astype(float)
    part = RankedPart(split.test, split.train, np.ones(split.n_items, bool), split.scale)
    grid = grid_metrics(scores[part.users], part.excluded.toarray(), part.relevant.toarray(), 10)
    each = ranking_metrics(lambda u: scores[u], split.train, split.test, split.n_items, 10)
    for name in ("precision_at_10", "recall_at_10", "ndcg_at_10"):
        assert grid[name] == pytest.approx(each[name], rel=1e-12)
    assert len(part) == each["n_users_ranked"]


def test_grid_metrics_list_fewer_items_where_fewer_are_allowed():
    scores = np.array([[0.1, 0.9, 0.5, 0.3]])
    excluded = np.array([[False, True, True, False]])  # two candidates: 3 then 0
    relevant = np.array([[True, True, False, False]])  # item 1 is excluded: no hit there
    figures = grid_metrics(scores, excluded, relevant, k=10)  # k above the item count
    ideal = 1 + 1 / np.log2(3)
    assert figures["ndcg_at_10"] == pytest.approx((1 / np.log2(3)) / ideal)
    assert figures["precision_at_10"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="relevant"):
        grid_metrics(scores, excluded, np.zeros_like(relevant), k=2)


def test_the_binary_search_finds_numpys_upper_bound():
    cdf = np.array([0.1, 0.1, 0.35, 0.6, 0.99, 1.0], dtype="float32")
    values = np.array([0.0, 0.1, 0.2, 0.35, 0.5, 0.995, 0.9999, 1.0], dtype="float32")
    found = upper_bound(tf.constant(cdf), tf.constant(values)).numpy()
    assert found.tolist() == np.searchsorted(cdf, values, side="right").tolist()


XLA_DRAW = """
import numpy as np, tensorflow as tf
from bench.training.ranking import draw_negatives
cdf = tf.constant(np.linspace(0.001, 1, 1682, dtype="float32"))
rows, key = tf.range(128), tf.constant(5)
draw = lambda: draw_negatives(rows, key, cdf, 1)
compiled = tf.function(draw, jit_compile=True)().numpy()
print(compiled.shape, np.array_equal(compiled, draw().numpy()))
"""


def test_one_popularity_negative_per_positive_compiles_under_xla_as_it_draws_eagerly():
    # a (batch, 1) binary search once sent XLA's compiler into a 12 GB, minutes-long
    # compilation (MovieLens-100k's 1,682 items); a few seconds is the norm
    done = subprocess.run(
        [sys.executable, "-c", XLA_DRAW], capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == "(128, 1) True"


def test_ranking_training_is_reproducible_bit_for_bit_and_seeded(split):
    options = TrainOptions(seed=1, ranking=BPR)
    first, again = train(MF, split, options), train(MF, split, options)
    other = train(MF, split, TrainOptions(seed=2, ranking=BPR))
    same = zip(first.model.get_weights(), again.model.get_weights(), strict=True)
    assert all(np.array_equal(a, b) for a, b in same)
    assert first.history == again.history
    assert not np.array_equal(first.model.get_weights()[0], other.model.get_weights()[0])


def test_each_epoch_draws_other_negatives(split, monkeypatch):
    keys = []
    original = RankingRunner.run_epoch

    def spy(self, order):
        keys.append(epoch_key(self.seed, self.epoch))
        return original(self, order)

    monkeypatch.setattr(RankingRunner, "run_epoch", spy)
    train(MF, split, TrainOptions(seed=1, ranking=BPR))
    assert keys == [epoch_key(1, epoch) for epoch in range(MF.epochs)]
    assert len(set(keys)) == MF.epochs


def test_the_nn_trains_for_ranking_with_its_rating_head_removed_and_its_dropout(split):
    nn = NNConfig(
        epochs=2, batch_size=32, hidden_units=(16, 8), hidden_activations=("linear", "relu")
    )
    setup = RankingSetup("bce", 2, "popularity", 4.0)
    assert len(positives(split.train, setup)) % nn.batch_size  # a partial last batch too
    options = TrainOptions(seed=0, ranking=setup)
    result, again = train(nn, split, options), train(nn, split, options)
    without = train(replace(nn, dropout=0.0), split, options)
    assert result.history["train_loss"] != without.history["train_loss"]  # dropout ran
    assert result.config.output_activation == "linear"
    assert result.model.get_layer("rating").activation.__name__ == "linear"
    assert result.history["train_loss"] == again.history["train_loss"]
    assert set(result.test) == {"test_precision_at_10", "test_recall_at_10", "test_ndcg_at_10"}


def test_early_stopping_keeps_the_epoch_of_the_highest_validation_ndcg(split):
    options = TrainOptions(seed=0, ranking=BPR, patience=2)
    result = train(MFConfig(k=8, epochs=12, batch_size=64, learning_rate=0.05), split, options)
    curve = result.history["val_ndcg_at_10"]
    assert result.best_epoch == int(np.argmax(curve))
    assert len(curve) <= 12 and (len(curve) == 12 or len(curve) - 1 - result.best_epoch == 2)


def test_a_reused_ranking_runner_trains_as_a_fresh_one(split):
    RUNNERS.clear()
    options = TrainOptions(seed=0, ranking=BPR)
    fresh = train(MF, split, options)
    train(MFConfig(k=8, epochs=2, batch_size=64, learning_rate=0.001), split, options)
    reused = train(MF, split, options)
    assert RUNNERS.hits >= 2 and RUNNERS.misses == 1
    assert all(
        np.array_equal(a, b)
        for a, b in zip(fresh.model.get_weights(), reused.model.get_weights(), strict=True)
    )


def test_an_item_without_a_training_rating_is_listed_last_however_its_row_scores(split):
    item = int(split.test["item"].iloc[0])  # rated in the test part only, from here on
    trained_part = split.train[split.train["item"] != item]
    result = train(MF, replace(split, train=trained_part), TrainOptions(seed=0, ranking=BPR))
    users = result.model.get_layer("user_embedding")
    users.set_weights([np.abs(users.get_weights()[0]) + 0.1])
    rows = result.model.get_layer("item_embedding").get_weights()[0]
    rows[item] = 100.0  # its untrained row: above every other item for every user
    result.model.get_layer("item_embedding").set_weights([rows])
    codes = np.arange(split.n_users)
    assert (np.argmax(score_grid(result.model, codes, split.n_items, 65536), axis=1) == item).all()
    trained = trained_items(trained_part, split.n_items)
    assert not trained[item]
    ranked = ranked_grid(result.model, codes, trained)
    assert (ranked[:, ~trained] == LOWEST_SCORE).all()
    assert np.array_equal(
        ranked[:, trained], score_grid(result.model, codes, split.n_items, 65536)[:, trained]
    )
    part = RankedPart(split.test, trained_part, trained, split.scale)
    expected = grid_metrics(
        ranked[part.users], part.excluded.toarray(), part.relevant.toarray(), 10
    )
    assert part.figures(result.model, "test")["test_ndcg_at_10"] == pytest.approx(
        expected["ndcg_at_10"]
    )


def test_mf_trained_for_ranking_puts_the_users_own_half_first(grouped):
    options = TrainOptions(seed=0, ranking=BPR)
    config = MFConfig(k=4, epochs=15, batch_size=64, learning_rate=0.02)
    trained = train(config, grouped, options)
    untrained = train(MFConfig(k=4, epochs=1, batch_size=64, learning_rate=1e-6), grouped, options)
    assert trained.history["train_loss"][-1] < trained.history["train_loss"][0]
    assert own_half_share(trained.model, grouped) > 0.95
    assert own_half_share(untrained.model, grouped) < 0.7  # about 27 of 67 candidates
    assert trained.test["test_ndcg_at_10"] > untrained.test["test_ndcg_at_10"]


def own_half_share(model, split) -> float:
    """The share of the users' top 10 (of the items they did not rate) from their own half."""
    users = np.arange(split.n_users)
    scores = score_grid(model, users, split.n_items, 65536)
    rated = RankedPart(split.train, split.train, np.ones(split.n_items, bool), split.scale)
    scores[rated.users] = np.where(rated.excluded.toarray(), -np.inf, scores[rated.users])
    top = np.argsort(-scores, axis=1)[:, :10]
    item_half = (split.item_ids.astype(int) - 1) // 40
    user_half = (split.user_ids.astype(int) - 1) % 2
    return float(np.mean(item_half[top] == user_half[:, None]))


def test_ranking_needs_the_compiled_engine_and_dense_updates(split):
    with pytest.raises(BenchError, match="compiled engine"):
        train(MF, split, TrainOptions(engine="fit", ranking=BPR))
    with pytest.raises(BenchError, match="dense updates"):
        train(MF, split, TrainOptions(sparse_updates=True, ranking=BPR))
    with pytest.raises(ValueError, match="negatives"):
        RankingSetup(negatives=0)


def test_early_stopping_watches_a_figure_of_the_task():
    assert TrainOptions(ranking=BPR).watched == "val_ndcg_at_10"
    assert TrainOptions().watched == "val_mae"
    with pytest.raises(ValueError, match="ranking task has no validation figure val_mae"):
        TrainOptions(ranking=BPR, monitor="val_mae")
    with pytest.raises(ValueError, match="rating task has no validation figure val_recall"):
        TrainOptions(monitor="val_recall_at_10")


@pytest.mark.parametrize("bias", [False, True])
def test_mfs_grid_by_matrix_product_equals_its_models_pairwise_scores(split, bias):
    from bench.archs.mf import MF as MF_ARCH

    config = replace(MF, use_bias=bias, epochs=2)
    model = train(config, split, TrainOptions(ranking=BPR)).model
    model.get_layer("item_embedding").embeddings.assign_add(0.1)  # the spare row must not matter
    users = np.array([0, 3, split.n_users - 1])
    grid = MF_ARCH.grid_scores(model, users)
    items = np.arange(split.n_items)
    pairs = [np.repeat(users, split.n_items)[:, None], np.tile(items, len(users))[:, None]]
    pairwise = np.asarray(model(pairs)).reshape(len(users), split.n_items)
    assert grid.shape == pairwise.shape and grid == pytest.approx(pairwise, abs=1e-5)
    assert score_grid(model, users, split.n_items, 64).tolist() == grid.tolist()  # its route


CROSS_PROCESS = """
import numpy as np, tensorflow as tf
from bench.training.ranking import draw_negatives, epoch_key
cdf = tf.constant(np.linspace(0.02, 1, 50, dtype="float32"))
rows = tf.range(40)
for uniform in (True, False):
    draws = draw_negatives(rows, tf.constant(epoch_key(3, 2)), cdf, 6, uniform)
    print(draws.numpy().ravel().tolist())
"""


def test_negatives_are_the_same_in_another_process():
    done = subprocess.run(
        [sys.executable, "-c", CROSS_PROCESS], capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = [line for line in done.stdout.splitlines() if line.startswith("[")]
    cdf = np.linspace(0.02, 1, 50, dtype="float32")
    rows, key = tf.range(40), tf.constant(epoch_key(3, 2))
    for uniform, line in zip((True, False), theirs, strict=True):
        ours = draw_negatives(rows, key, tf.constant(cdf), 6, uniform).numpy().ravel().tolist()
        assert str(ours) == line


@pytest.mark.parametrize("sampler", ["uniform", "popularity"])
def test_a_negative_is_one_of_the_users_own_items_at_the_rate_the_sampler_gives_them(
    split, sampler
):
    # the sampler allows collisions (a drawn item the user rated stays a negative): their
    # rate is the sampling probability of the user's own items, averaged over positives
    train = split.train
    cdf = sampling_cdf(train, split.n_items, sampler)
    count = 40
    draws = _draw(range(len(train)), epoch_key(0, 0), cdf, count)
    own = {u: set(g) for u, g in train.groupby("user")["item"]}
    users = train["user"].to_numpy()
    hits = np.mean([[item in own[u] for item in row] for u, row in zip(users, draws, strict=True)])
    probability = np.diff(np.concatenate([[0.0], cdf.astype("float64")]))
    expected = np.mean([probability[list(own[u])].sum() for u in users])
    assert hits == pytest.approx(expected, abs=0.01)
    assert 0 < hits < 0.5  # collisions happen, and most negatives are unrated items
