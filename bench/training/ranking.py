"""Training for the top-k task: positives from the ratings, negatives drawn inside the
compiled epoch, a ranking loss, and NDCG@k on the validation part every epoch.

The positives are the training ratings at or above `RankingSetup.positives` (None: every
rating: having rated an item is the signal). Each positive of a batch meets
`RankingSetup.negatives` items drawn for it, uniformly or in proportion to the items'
counts among the positives (plus one, so every item has a chance). A draw depends on the
run's seed, the epoch and the positive's row alone
(Philox, integer ops, exact under XLA: `bench.training.philox`), so it is the same for any
batch size, unrolling or process, bit for bit. A drawn item the user did rate stays a
negative (the usual approximation; with 1,682 items a user rates about 6 % of them).

Losses: "bce" (pointwise: positives labelled 1, negatives 0, as NCF trains) and "bpr"
(pairwise: each positive's logit above each of its negatives'). The model's output is read
as a logit: an architecture whose output has a rating head declares the fields that remove
it (`Arch.logit_fields`). A per-rating L2 (`RowL2`) averages over every row a step scores,
its negatives included.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
import pandas as pd
import scipy.sparse as sp
import tensorflow as tf

from bench.archs import REGISTRY as ARCH_NAMES
from bench.archs import get_arch
from bench.data import Split
from bench.metrics import RatingScale
from bench.metrics.ranking import grid_metrics
from bench.training.compiled import RUNNERS, CompiledEpochs, inputs, structure_key
from bench.training.options import RANKING_FIGURES, RANKING_K, RankingLoss, RankingSetup, Sampler
from bench.training.philox import uniform as philox_uniform

K = RANKING_K  # the validation list length (NDCG@10, recall@10)
LOWEST_SCORE = -1e30  # the score of an item a ranking lists last: one no training rated


def as_scorer(arch, config: Any) -> Any:
    """The config with its architecture's rating head removed (its output a raw logit)."""
    return dataclasses.replace(config, **arch.logit_fields) if arch.logit_fields else config


def positives(train: pd.DataFrame, setup: RankingSetup) -> pd.DataFrame:
    """The training rows that count as positives."""
    if setup.positives is None:
        return train
    return train[train["rating"] >= setup.positives].reset_index(drop=True)


def sampling_cdf(train: pd.DataFrame, n_items: int, sampler: Sampler) -> np.ndarray:
    """The cumulative sampling distribution over item codes 0..n_items-1 (float32, ends at 1)."""
    if sampler == "uniform":
        weights = np.ones(n_items)
    else:  # popularity: training counts, and every item a chance
        weights = np.bincount(train["item"].to_numpy(), minlength=n_items)[:n_items] + 1.0
    cdf = np.cumsum(weights) / weights.sum()
    cdf[-1] = 1.0
    return cdf.astype("float32")


def epoch_key(seed: int, epoch: int) -> int:
    """The first Philox seed word of an epoch's negatives (the second is the positive's row)."""
    return (seed * 1_000_003 + epoch + 1) % (2**31 - 1)


def draw_negatives(
    rows: tf.Tensor, key: tf.Tensor, cdf: tf.Tensor, count: int, uniform: bool = False
) -> tf.Tensor:
    """Item codes (len(rows), count): for each positive row, `count` draws from `cdf`
    (`uniform`: every item alike, whatever `cdf` says), from the Philox seed (key, row)."""
    seeds = tf.stack([tf.fill(tf.shape(rows), key), rows], axis=1)
    draws = philox_uniform(seeds, [count])
    n_items = cdf.shape[0]
    codes = tf.cast(tf.floor(draws * n_items), tf.int32) if uniform else upper_bound(cdf, draws)
    return tf.minimum(codes, n_items - 1)  # a draw at the very top: the last item


def upper_bound(cdf: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """For each value, how many entries of the sorted `cdf` are <= it (numpy's
    `searchsorted(side="right")`), by a binary search of ceil(log2(n + 1)) steps: XLA's own
    search compares every value with every entry (n times the work)."""
    n, shape = cdf.shape[0], tf.shape(values)
    values = tf.reshape(values, [-1])  # one axis: XLA's compilation of a (b, 1) search blows up
    low = tf.zeros_like(values, dtype=tf.int32)
    high = tf.fill(tf.shape(values), n)
    for _ in range(max(1, int(np.ceil(np.log2(n + 1))))):
        active = low < high
        middle = (low + high) // 2
        right = tf.gather(cdf, tf.minimum(middle, n - 1)) <= values
        low = tf.where(active & right, middle + 1, low)
        high = tf.where(active & ~right, middle, high)
    return tf.reshape(low, shape)


def ranking_loss(logits: tf.Tensor, batch: tf.Tensor, negatives: int, loss: RankingLoss):
    """The mean loss of one batch: `logits` holds its positives', then each positive's
    `negatives` negatives' (row-major)."""
    positive = logits[:batch]
    negative = tf.reshape(logits[batch:], [batch, negatives])
    if loss == "bpr":
        return tf.reduce_mean(tf.math.softplus(negative - positive[:, None]))
    total = tf.reduce_sum(tf.math.softplus(-positive)) + tf.reduce_sum(tf.math.softplus(negative))
    return total / tf.cast(batch * (1 + negatives), total.dtype)


class RankingEpochs(CompiledEpochs):
    """The compiled engine's epoch with ranking steps: each positive is scored with its
    drawn negatives in one model call (so one draw of dropout noise covers them all)."""

    def __init__(self, model: keras.Model, config: Any, jit: bool, setup: RankingSetup):
        super().__init__(model, config, jit, sparse=False)
        self.setup = setup
        self.noise_rows = 1 + setup.negatives

    def _weighted_step(self, rows: tf.Tensor, data: tuple[tf.Tensor, ...]) -> tf.Tensor:
        """One train step on the positives `rows`; returns its loss times their count."""
        users, items = tf.gather(data[0], rows), tf.gather(data[1], rows)
        cdf, key = data[2], data[3]
        count = self.setup.negatives
        negatives = draw_negatives(rows, key, cdf, count, self.setup.sampler == "uniform")
        all_users = tf.concat([users, tf.repeat(users, count, axis=0)], axis=0)
        all_items = tf.concat([items, tf.reshape(negatives, [-1, 1])], axis=0)
        batch = tf.shape(rows)[0]
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = tf.reshape(self.model([all_users, all_items], training=True), [-1])
            loss = ranking_loss(logits, batch, count, self.setup.loss)
            penalties = self._penalties()
            if penalties:
                loss += tf.add_n(penalties)
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        return loss * tf.cast(batch, loss.dtype)


def ranking_runner(arch, model: keras.Model, config: Any, split: Split, options) -> RankingRunner:
    """The process's ranking runner for this structure and setup, loaded with `model`'s
    initial state and bound to the split's positives (one train step per loop iteration:
    `options.unroll` is not read)."""
    jit = arch.jit_compile if options.jit_compile is None else options.jit_compile
    setup = options.ranking

    def create() -> RankingEpochs:
        return RankingEpochs(arch.build(config, split.n_users, split.n_items), config, jit, setup)

    # the rating loss is no part of a ranking step: configs that differ in it share a runner
    key = structure_key(model, dataclasses.replace(config, loss="mse"), jit, False, 1)
    compiled = RUNNERS.get((*key, setup), create)
    compiled.load(model, config)
    return RankingRunner(compiled, split, options.seed)


class RankingRunner:
    """One trial's positives bound to a ranking runner; each epoch draws its own negatives
    (the epoch's key advances with every call)."""

    def __init__(self, compiled: RankingEpochs, split: Split, seed: int):
        self.compiled, self.model = compiled, compiled.model
        setup = compiled.setup
        kept = positives(split.train, setup)
        users, items, _ = inputs(kept)
        cdf = sampling_cdf(kept, split.n_items, setup.sampler)
        self.data = (tf.constant(users), tf.constant(items), tf.constant(cdf))
        self.n_rows, self.seed, self.epoch = len(kept), seed, 0
        self.predictions = None  # validation is scored apart, on the whole item grid

    def store(self, model: keras.Model) -> None:
        self.compiled.store(model)

    def run_epoch(self, order: np.ndarray) -> float:
        key = tf.constant(epoch_key(self.seed, self.epoch), tf.int32)
        self.epoch += 1
        loss, _ = self.compiled.run_epoch(order, (*self.data, key), ())
        return loss


def trained_items(train: pd.DataFrame, n_items: int) -> np.ndarray:
    """Whether each item has a rating in `train` (the others' embedding rows never met a
    positive: a ranking lists them last, as the served model does)."""
    return rated_codes(train, "item", n_items)


def rated_codes(train: pd.DataFrame, column: str, n: int) -> np.ndarray:
    """One bool per code 0..n-1 of `column` ("user" or "item"): whether `train` rates it."""
    return np.bincount(train[column].to_numpy(), minlength=n) > 0


def ranked_grid(model: keras.Model, users: np.ndarray, trained: np.ndarray) -> np.ndarray:
    """`score_grid` of `users` with every item outside `trained` scored `LOWEST_SCORE`."""
    scores = score_grid(model, users, len(trained), 65536)
    scores[:, ~trained] = LOWEST_SCORE
    return scores


def score_grid(model: keras.Model, users: np.ndarray, n_items: int, rows: int) -> np.ndarray:
    """The model's score of every item for each of `users` (len(users) x n_items): by its
    architecture's matrix product where it has one (`Arch.grid_scores`), else eagerly,
    about `rows` pairs per call."""
    name = getattr(model, "name", None)
    if name in ARCH_NAMES and get_arch(name).grid_scores is not None:
        return get_arch(name).grid_scores(model, np.asarray(users, dtype="int64"))
    per_call = max(1, rows // n_items)
    items = np.arange(n_items, dtype="int32")
    blocks = []
    for start in range(0, len(users), per_call):
        block = np.asarray(users[start : start + per_call], dtype="int32")
        pairs = [np.repeat(block, n_items)[:, None], np.tile(items, len(block))[:, None]]
        blocks.append(np.asarray(model(pairs)).reshape(len(block), n_items))
    return np.concatenate(blocks) if blocks else np.zeros((0, n_items), dtype="float32")


def _mask(users: np.ndarray, frame: pd.DataFrame, n_items: int) -> sp.csr_matrix:
    """Rows of `users` (sorted codes) x items: True where `frame` pairs them."""
    frame = frame[frame["user"].isin(users)]
    rows = np.searchsorted(users, frame["user"].to_numpy())
    data = np.ones(len(frame), dtype=bool)
    shape = (len(users), n_items)
    return sp.csr_matrix((data, (rows, frame["item"].to_numpy())), shape=shape, dtype=bool)


class RankedPart:
    """A part's users with a relevant rating (>= the scale's `relevant`), each one's relevant
    items and the items not to list (those `known`: rated in training), for NDCG@k of a
    model's whole score grid, a block of users at a time; an item the model's training
    part (`trained`) has no rating of is listed last."""

    def __init__(self, part: pd.DataFrame, known: pd.DataFrame, trained: np.ndarray,
                 scale: RatingScale):  # fmt: skip
        liked = part[part["rating"] >= scale.relevant]
        n_items = len(trained)
        self.users = np.unique(liked["user"].to_numpy()).astype("int32")
        self.relevant = _mask(self.users, liked, n_items)
        self.excluded = _mask(self.users, known, n_items)
        self.n_items, self.trained = n_items, trained

    def __len__(self) -> int:
        return len(self.users)

    def figures(self, model: keras.Model, prefix: str, rows: int = 2**20) -> dict[str, float]:
        """precision@K, recall@K and NDCG@K (mean over the part's users), named PREFIX_NAME."""
        per_block = max(1, rows // self.n_items)
        sums: dict[str, float] = {}
        for start in range(0, len(self.users), per_block):
            end = min(start + per_block, len(self.users))
            scores = ranked_grid(model, self.users[start:end], self.trained)
            if not np.isfinite(scores).all():  # diverged: the caller says so
                return {f"{prefix}_{name}": np.nan for name in RANKING_FIGURES}
            block = grid_metrics(
                scores, self.excluded[start:end].toarray(), self.relevant[start:end].toarray(), K
            )
            for name, value in block.items():
                sums[name] = sums.get(name, 0.0) + value * (end - start)
        return {f"{prefix}_{name}": total / len(self.users) for name, total in sums.items()}
