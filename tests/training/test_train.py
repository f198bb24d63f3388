"""Training on small generated data: metrics, constraints, determinism, engine equivalence."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, root_mean_squared_error

from bench.archs import get_arch
from bench.archs.mf import MFConfig, NNMFConfig
from bench.archs.nn import NNConfig
from bench.metrics import RatingScale, rating_metrics
from bench.training import noise
from bench.training.compiled import LONG_RUN_STEPS, RUNNERS, loop_unroll
from bench.training.embeddings import embedding_stats, embedding_summary
from bench.training.options import TrainOptions
from bench.training.train import TrainingDiverged, train
from tests.support.synthetic import synthetic_ratings, write_folder

SMALL_MF = MFConfig(k=4, epochs=3, batch_size=16, learning_rate=0.01)
SMALL_NN = NNConfig(
    epochs=3, batch_size=16, hidden_units=(16, 8), hidden_activations=("linear", "relu")
)


def test_rating_metrics_match_scikit_learn_and_round_then_clip():
    y_true = np.array([1, 5, 3, 4], dtype="float32")
    y_pred = np.array([0.2, 5.7, 3.4, 4.5], dtype="float32")
    metrics = rating_metrics(y_true, y_pred, "test")
    assert metrics["test_mae"] == pytest.approx(mean_absolute_error(y_true, y_pred))
    assert metrics["test_rmse"] == pytest.approx(root_mean_squared_error(y_true, y_pred))
    # rounded and clipped to 1..5: [1, 5, 3, 4] (4.5 rounds half to even)
    assert metrics["test_mae_rounded"] == 0.0
    assert metrics["test_rmse_rounded"] == 0.0


def test_rounded_metrics_follow_the_rating_scale_of_the_data_set():
    half_stars = RatingScale(0.5, 5.0, 0.5)
    y_true = np.array([0.5, 3.5, 5.0, 2.0])
    y_pred = np.array([0.1, 3.7, 5.9, 2.26])
    np.testing.assert_allclose(half_stars.snap(y_pred), [0.5, 3.5, 5.0, 2.5])
    metrics = rating_metrics(y_true, y_pred, "test", half_stars)
    assert metrics["test_mae_rounded"] == pytest.approx(0.5 / 4)
    whole = rating_metrics(y_true, y_pred, "test")  # 1..5 in whole stars: 1, 4, 5, 2
    assert whole["test_mae_rounded"] == pytest.approx((0.5 + 0.5) / 4)


def test_test_metrics_are_those_of_the_trained_model(small_split):
    result = train(SMALL_MF, small_split)
    users = small_split.test["user"].to_numpy()[:, None]
    items = small_split.test["item"].to_numpy()[:, None]
    y_pred = result.model.predict([users, items], verbose=0).reshape(-1)
    y_true = small_split.test["rating"].to_numpy()
    assert result.test["test_mae"] == pytest.approx(mean_absolute_error(y_true, y_pred), rel=1e-5)
    assert result.test["test_rmse"] == pytest.approx(
        root_mean_squared_error(y_true, y_pred), rel=1e-5
    )


def test_history_has_one_point_per_epoch_and_callback_never_sees_test(small_split):
    seen = []
    result = train(
        SMALL_MF, small_split, on_epoch_end=lambda epoch, logs: seen.append((epoch, logs))
    )
    assert {name: len(v) for name, v in result.history.items()} == {
        "train_loss": 3,
        "val_loss": 3,
        "val_mae": 3,
        "val_rmse": 3,
        **{f"embeddings/{t}_{s}": 3 for t in ("user", "item") for s in ("norm_mean", "std")},
    }
    last = {name: values[-1] for name, values in result.history.items()}
    for table, values in result.embeddings.items():  # the last epoch's: no early stopping
        norms = np.linalg.norm(values, axis=1).mean()
        assert last[f"embeddings/{table}_norm_mean"] == pytest.approx(norms, rel=1e-6)
        assert last[f"embeddings/{table}_std"] == pytest.approx(values.std(), rel=1e-6)
    assert [epoch for epoch, _ in seen] == [0, 1, 2]
    assert all(not any(key.startswith("test") for key in logs) for _, logs in seen)
    assert result.n_params == (small_split.n_users + 1 + small_split.n_items + 1) * 4


def test_nnmf_embeddings_stay_non_negative(small_split):
    result = train(
        replace(NNMFConfig(k=4), epochs=3, batch_size=16, learning_rate=0.05), small_split
    )
    for table in result.embeddings.values():
        assert (table >= 0).all()
    metrics = result.final_metrics()
    assert metrics["emb_user_neg_share"] == 0 and metrics["emb_item_neg_share"] == 0
    plain = train(replace(SMALL_MF, learning_rate=0.05), small_split).final_metrics()
    assert plain["emb_user_neg_share"] > 0  # without the constraint, negatives do appear


def test_embedding_statistics_are_describe_per_dimension_and_norms():
    table = np.random.default_rng(0).normal(size=(50, 3)).astype("float32")
    stats = embedding_stats(table)
    expected = pd.DataFrame(table).describe()
    np.testing.assert_allclose(stats[["d0", "d1", "d2"]].to_numpy(), expected.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        stats.loc["max", "norm"], np.linalg.norm(table, axis=1).max(), rtol=1e-6
    )
    summary = embedding_summary("item", table)
    assert set(summary) == {f"emb_item_{s}" for s in ("mean", "std", "norm_mean", "neg_share")}
    assert summary["emb_item_mean"] == pytest.approx(table.mean())
    assert summary["emb_item_norm_mean"] == pytest.approx(np.linalg.norm(table, axis=1).mean())
    assert summary["emb_item_neg_share"] == pytest.approx(np.mean(table < 0))


@pytest.mark.parametrize("config", [SMALL_MF, SMALL_NN], ids=["mf-xla", "nn"])
def test_same_config_and_seed_give_identical_numbers(small_split, config):
    first, second = train(config, small_split), train(config, small_split)
    assert first.history == second.history
    assert first.test == second.test
    other = train(config, small_split, TrainOptions(seed=1))
    assert other.history["train_loss"] != first.history["train_loss"]


@pytest.mark.parametrize(
    ("config", "jit"),
    [
        (SMALL_MF, True),
        (replace(SMALL_MF, use_bias=True, l2=1e-3), True),
        (replace(SMALL_MF, use_bias=True, row_l2=0.1), True),
        (SMALL_NN, False),
        (SMALL_NN, True),  # dropout noise drawn ahead of the XLA loop, by the same kernels
        (replace(SMALL_NN, dropout=0.0), True),  # a rate-0 dropout has no seed generator
    ],
    ids=["mf-xla", "mf-bias-l2-xla", "mf-row-l2-xla", "nn", "nn-xla", "nn-no-dropout-xla"],
)
def test_compiled_path_learns_the_same_model_as_plain_fit(small_split, config, jit):
    config = replace(config, epochs=4, batch_size=24)  # 24 leaves a partial last batch
    fast = train(config, small_split, TrainOptions(engine="compiled", jit_compile=jit))
    plain = train(config, small_split, TrainOptions(engine="fit"))
    np.testing.assert_allclose(fast.history["train_loss"], plain.history["train_loss"], rtol=1e-3)
    np.testing.assert_allclose(fast.history["val_mae"], plain.history["val_mae"], rtol=1e-3)
    np.testing.assert_allclose(
        fast.model.get_layer("user_embedding").get_weights()[0],
        plain.model.get_layer("user_embedding").get_weights()[0],
        atol=1e-4,
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            replace(SMALL_MF, use_bias=True, l2=1e-3, bias_l2=1e-4),
            replace(SMALL_MF, use_bias=True, l2=1e-2, bias_l2=1e-3, learning_rate=0.03),
        ),
        (replace(SMALL_NN, l2=1e-3), replace(SMALL_NN, learning_rate=0.02, l2=1e-4, epochs=2)),
        (replace(SMALL_MF, row_l2=0.3), replace(SMALL_MF, row_l2=0.01, learning_rate=0.02)),
    ],
    ids=["mf-bias-l2", "nn", "mf-row-l2"],
)
def test_a_reused_compiled_runner_learns_what_a_fresh_one_does(small_split, first, second):
    """Trials of one structure share a traced, compiled epoch; rates and L2 strengths are
    its inputs, so a trial's numbers do not depend on which trials ran before it."""
    RUNNERS.clear()
    fresh = train(second, small_split)
    RUNNERS.clear()
    earlier = train(first, small_split)
    weights = earlier.model.get_weights()
    reused = train(second, small_split)
    assert (RUNNERS.hits, RUNNERS.misses) == (1, 1)
    assert reused.history == fresh.history
    assert reused.test == fresh.test
    for theirs, mine in zip(reused.model.get_weights(), fresh.model.get_weights(), strict=True):
        np.testing.assert_array_equal(theirs, mine)
    # the earlier trial's returned model is its own, untouched by the later trial
    for before, after in zip(weights, earlier.model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_a_different_structure_gets_its_own_runner(small_split):
    RUNNERS.clear()
    train(SMALL_MF, small_split)
    train(replace(SMALL_MF, k=5), small_split)
    train(replace(SMALL_MF, batch_size=8), small_split)
    train(replace(SMALL_MF, l2=1e-3), small_split)  # an L2 term is structure, its strength not
    train(replace(SMALL_MF, row_l2=1e-3), small_split)
    assert (RUNNERS.hits, RUNNERS.misses) == (0, 5)


def test_diverging_loss_raises_with_its_epoch(small_split):
    config = replace(SMALL_MF, optimizer="sgd", learning_rate=1e6)
    with pytest.raises(TrainingDiverged, match="train loss is (nan|inf) at epoch 0"):
        train(config, small_split)


@pytest.mark.parametrize(
    "config",
    [replace(SMALL_NN, batch_size=13), replace(SMALL_MF, use_bias=True, l2=1e-3, batch_size=13)],
    ids=["nn-xla", "mf-bias-l2-xla"],
)
def test_an_unrolled_loop_learns_bit_for_bit_what_a_step_by_step_loop_does(small_split, config):
    """Four steps per loop iteration: the same steps in the same order, the remainder
    steps (not a multiple of four here) and the partial last batch after them."""
    steps = len(small_split.train) // config.batch_size
    assert steps % 4 and len(small_split.train) % config.batch_size  # both tails exercised
    RUNNERS.clear()
    plain = train(config, small_split, TrainOptions(unroll=1))
    unrolled = train(config, small_split, TrainOptions(unroll=4))
    assert RUNNERS.misses == 2  # two compiled loops, not one reused
    assert unrolled.history == plain.history
    assert unrolled.test == plain.test
    for theirs, mine in zip(unrolled.model.get_weights(), plain.model.get_weights(), strict=True):
        np.testing.assert_array_equal(theirs, mine)


@pytest.mark.parametrize("unroll", [1, 4])
def test_dropout_noise_drawn_in_spans_learns_bit_for_bit_what_one_draw_does(
    small_split, monkeypatch, unroll
):
    """On large data an epoch's noise is drawn a span of steps at a time (bounded memory):
    spans that do not divide the epoch, the last one partial, give the same model."""
    config = replace(SMALL_NN, batch_size=13)
    RUNNERS.clear()
    whole = train(config, small_split, TrainOptions(unroll=unroll))
    per_step = 4 * config.batch_size * config.item_dim * 2  # the widest layer, two layers
    monkeypatch.setattr(noise, "NOISE_BYTES", per_step * 5)
    span = 5 // unroll * unroll
    steps = len(small_split.train) // config.batch_size
    assert steps % span and steps > 2 * span  # several spans, the last one partial
    RUNNERS.clear()
    spans = train(config, small_split, TrainOptions(unroll=unroll))
    assert spans.history == whole.history
    assert spans.test == whole.test
    for theirs, mine in zip(spans.model.get_weights(), whole.model.get_weights(), strict=True):
        np.testing.assert_array_equal(theirs, mine)


def test_a_worker_that_exits_without_cleanup_leaves_no_files_in_the_temp_folder(tmp_path):
    """Sweep workers end with `os._exit`, which skips `atexit`: TensorFlow's autograph, were
    the compiled epoch converted by it, would leave a generated source file per function."""
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from dataclasses import replace\n"
        "from bench.archs.nn import NNConfig\n"
        "from bench.data import make_split\n"
        "from bench.data.ratings import read_folder\n"
        "from bench.training import train\n"
        "split = make_split(read_folder(Path(sys.argv[1])), 'seed', seed=0, valid_fraction=0.1)\n"
        "train(replace(NNConfig(), epochs=1, batch_size=64), split)\n"
        "os._exit(0)\n"
    )
    folder = write_folder(tmp_path / "data", synthetic_ratings())
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    command = [sys.executable, "-c", script, str(folder)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not sorted(p.name for p in temp.iterdir() if p.name.startswith("__autograph"))


def test_a_long_run_of_fixed_length_is_unrolled_where_its_architecture_gains():
    nn, mf, options = get_arch("nn"), get_arch("mf"), TrainOptions()
    post_nn = NNConfig()  # 250 epochs of batch 32
    n_train = LONG_RUN_STEPS * post_nn.batch_size // post_nn.epochs  # just long enough
    assert loop_unroll(nn, post_nn, n_train, options, fixed=True) == nn.unroll > 1
    assert loop_unroll(nn, post_nn, n_train - 64, options, fixed=True) == 1  # too short
    assert loop_unroll(nn, post_nn, n_train, options, fixed=False) == 1  # may stop early
    assert loop_unroll(mf, MFConfig(epochs=1000), n_train, options, fixed=True) == 1
    assert loop_unroll(nn, post_nn, 10, TrainOptions(unroll=3), fixed=False) == 3
    with pytest.raises(ValueError, match="at least 1"):
        TrainOptions(unroll=0)
