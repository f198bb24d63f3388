"""Fit one config on one split and measure it.

Both engines train on the same batches in the same order (a seeded permutation per epoch)
from the same initial weights, so they learn the same model:

- "fit": a plain Keras `model.fit` per epoch, the reference;
- "compiled" (`bench.training.compiled`): one compiled `tf.while_loop` per epoch over in-memory
  tensors, XLA where the architecture says so, shared by the trials of one structure.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import pandas as pd

from bench.archs import arch_of
from bench.data import Split
from bench.errors import BenchError
from bench.metrics import BY_NAME, lower_is_better, rating_metrics
from bench.training.compiled import compiled_runner, inputs, loop_unroll, make_optimizer
from bench.training.embeddings import (
    embedding_stats,
    embedding_summary,
    epoch_figures,
    mae_rmse,
)
from bench.training.options import TrainOptions
from bench.training.ranking import K, RankedPart, as_scorer, ranking_runner, trained_items

EpochCallback = Callable[[int, dict[str, float]], None]


class TrainingDiverged(BenchError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainResult:
    config: Any
    history: dict[str, list[float]]
    test: dict[str, float]
    fit_seconds: float
    epoch_seconds: list[float]
    n_params: int
    model: keras.Model
    embeddings: dict[str, np.ndarray] = field(repr=False)
    best_epoch: int | None = None  # early stopping: the epoch whose weights were kept
    embedding_tables: dict[str, pd.DataFrame] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.embedding_tables = {k: embedding_stats(v) for k, v in self.embeddings.items()}

    @property
    def compile_seconds(self) -> float:
        """Tracing and compilation, estimated as the first epoch's excess over the median."""
        if len(self.epoch_seconds) < 2:
            return 0.0
        return max(0.0, self.epoch_seconds[0] - float(np.median(self.epoch_seconds[1:])))

    @property
    def train_seconds(self) -> float:
        """Steady-state training time: the epochs' train steps, without compilation."""
        return sum(self.epoch_seconds) - self.compile_seconds

    def final_metrics(self) -> dict[str, float]:
        """The one-number-per-run figures (the curves in `history` are logged apart)."""
        metrics = dict(self.test)
        metrics.update(
            fit_seconds=self.fit_seconds,
            compile_seconds=self.compile_seconds,
            train_seconds=self.train_seconds,
            n_params=float(self.n_params),
        )
        if self.best_epoch is not None:
            metrics["epochs_kept"] = float(self.best_epoch + 1)  # early stopping's best epoch
        for name, table in self.embeddings.items():
            metrics.update(embedding_summary(name, table))
        return metrics


def epoch_orders(n: int, epochs: int, seed: int) -> Iterator[np.ndarray]:
    """The row order of each epoch: one seeded permutation per epoch."""
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        yield rng.permutation(n).astype("int32")


class _PlainFitEpochs:
    """The reference: Keras `fit` for one epoch on the rows in the given order."""

    def __init__(self, model: keras.Model, config: Any, train: pd.DataFrame):
        self.model = model
        model.compile(optimizer=make_optimizer(config), loss=config.loss, jit_compile=False)
        self.users, self.items, self.ratings = inputs(train)
        self.batch_size = config.batch_size
        self.predictions = None  # validation is predicted apart
        self.n_rows = len(self.ratings)

    def store(self, model: keras.Model) -> None:
        """Nothing to copy: `fit` trains the trial's own model."""

    def run_epoch(self, order: np.ndarray) -> float:
        x = [self.users[order], self.items[order]]
        history = self.model.fit(
            x, self.ratings[order], batch_size=self.batch_size, epochs=1, shuffle=False, verbose=0
        )
        return float(history.history["loss"][0])


def predict_codes(
    model: keras.Model, users: np.ndarray, items: np.ndarray, batch_size: int = 65536
) -> np.ndarray:
    """Eager inference on code arrays in large batches: a few ms per call and, unlike a
    tf.function, no tracing or compiled code per trial. Non-finite predictions mean
    divergence."""
    users = np.asarray(users, dtype="int32").reshape(-1, 1)
    items = np.asarray(items, dtype="int32").reshape(-1, 1)
    parts = [
        np.asarray(model([users[start : start + batch_size], items[start : start + batch_size]]))
        for start in range(0, len(users), batch_size)
    ]
    return finite_or_raise(np.concatenate(parts).reshape(-1), model.name)


def finite_or_raise(predictions: np.ndarray, name: str) -> np.ndarray:
    """Non-finite predictions mean the training diverged."""
    if not np.isfinite(predictions).all():
        raise TrainingDiverged(
            f"{name}: predictions contain NaN or inf; lower the learning rate or add regularisation"
        )
    return predictions


class _Validation:
    """The validation part as arrays (converted once, not every epoch) and its figures."""

    def __init__(self, split: Split, loss: str, batch_size: int):
        self.users, self.items, self.ratings = inputs(split.valid)
        self.loss, self.batch_size = loss, batch_size

    def __len__(self) -> int:
        return len(self.ratings)

    def logs(self, model: keras.Model, y_pred: np.ndarray | None) -> dict[str, float]:
        """Figures of `y_pred`, the runner's predictions (None: predict here, eagerly)."""
        if y_pred is None:
            y_pred = predict_codes(model, self.users, self.items, self.batch_size)
        finite_or_raise(y_pred, model.name)
        val_mae, val_rmse = mae_rmse(self.ratings, y_pred)
        val_loss = val_mae if self.loss == "mae" else val_rmse**2
        return {"val_loss": val_loss, "val_mae": val_mae, "val_rmse": val_rmse}


class _RankingValidation:
    """The validation part's ranked users: their precision, recall and NDCG@10 per epoch,
    from the model's scores of every item they did not rate in training."""

    def __init__(self, split: Split):
        trained = trained_items(split.train, split.n_items)
        self.part = RankedPart(split.valid, split.train, trained, split.scale)

    def __len__(self) -> int:
        return len(self.part)

    def logs(self, model: keras.Model, y_pred: np.ndarray | None) -> dict[str, float]:
        logs = self.part.figures(model, "val")
        finite_or_raise(np.array([logs[f"val_ndcg_at_{K}"]]), model.name)
        return logs


def _validation(split: Split, config: Any, options: TrainOptions):
    """The task's validation: rating errors, or ranking figures."""
    if options.ranking is not None:
        return _RankingValidation(split)
    return _Validation(split, config.loss, options.eval_batch_size)


class _EarlyStopping:
    """Keeps the weights of the best epoch by the monitored validation figure; says when
    `patience` epochs have passed without a better one."""

    def __init__(self, options: TrainOptions, has_validation: bool):
        self.on = options.patience is not None and has_validation
        self.patience, self.monitor = options.patience, options.watched
        name = self.monitor.removeprefix("val_")
        self.sign = -1.0 if name in BY_NAME and not lower_is_better(name) else 1.0  # loss: 1
        self.best_epoch: int | None = None
        self.best_value = np.inf  # times `sign`: lower is better here
        self.weights: list[np.ndarray] = []

    def update(self, epoch: int, logs: dict[str, float], model: keras.Model) -> bool:
        """Record this epoch; True when training should stop."""
        if not self.on:
            return False
        if self.sign * logs[self.monitor] < self.best_value:
            self.best_epoch, self.best_value = epoch, self.sign * logs[self.monitor]
            self.weights = [np.array(v.value) for v in model.variables]
        return epoch - self.best_epoch >= self.patience

    def restore(self, model: keras.Model) -> None:
        """Put the best epoch's weights into `model` (the trial's own)."""
        for variable, value in zip(model.variables, self.weights, strict=True):
            variable.assign(value)


def _run_epochs(runner, config, split, options, on_epoch_end):
    """Every epoch: train, check for divergence, validate, report, stop early; (history,
    seconds, early stopping)."""
    validation = _validation(split, config, options)
    stopping = _EarlyStopping(options, len(validation) > 0)
    history: dict[str, list[float]] = defaultdict(list)
    epoch_seconds = []
    for epoch, order in enumerate(epoch_orders(runner.n_rows, config.epochs, options.seed)):
        epoch_start = time.perf_counter()
        logs = {"train_loss": runner.run_epoch(order)}
        epoch_seconds.append(time.perf_counter() - epoch_start)
        if not np.isfinite(logs["train_loss"]):
            raise TrainingDiverged(
                f"{config.arch}: train loss is {logs['train_loss']} at epoch {epoch}; "
                f"lower the learning rate or add regularisation"
            )
        if len(validation):
            logs.update(validation.logs(runner.model, runner.predictions))
        for name, value in {**logs, **_embedding_figures(runner.model, config)}.items():
            history[name].append(value)
        if on_epoch_end is not None:
            on_epoch_end(epoch, logs)
        if stopping.update(epoch, logs, runner.model):
            break
    return dict(history), epoch_seconds, stopping


def _embedding_figures(model: keras.Model, config: Any) -> dict[str, float]:
    """The embedding tables' figures after an epoch (without the spare last row)."""
    figures = {}
    for name, layer in arch_of(config).embedding_layers.items():
        figures.update(epoch_figures(name, model.get_layer(layer).get_weights()[0][:-1]))
    return figures


def _runner(arch, model: keras.Model, config: Any, split: Split, options: TrainOptions, plain):
    """The epochs' runner the options ask for: a plain `fit`, the compiled engine, or its
    ranking form (`plain`: no epoch callback, so a run of fixed length may unroll)."""
    if options.engine == "fit":
        if options.sparse_updates or options.ranking is not None:
            raise BenchError("sparse updates and ranking need the compiled engine, not the fit")
        return _PlainFitEpochs(model, config, split.train)
    if options.ranking is not None:
        if options.sparse_updates:
            raise BenchError("ranking trains with dense updates: drop the sparse updates")
        return ranking_runner(arch, model, config, split, options)
    fixed = plain and options.patience is None
    unroll = loop_unroll(arch, config, len(split.train), options, fixed)
    compiled = compiled_runner(arch, model, config, split, options, unroll)
    return compiled.epochs(split.train, split.valid, options.eval_batch_size)


def _test_figures(model: keras.Model, split: Split, options: TrainOptions) -> dict[str, float]:
    """The test part's figures: rating errors, or the ranking metrics of every item the user
    did not rate in training or validation."""
    if options.ranking is not None:
        known = pd.concat([split.train, split.valid], ignore_index=True)
        part = RankedPart(split.test, known, trained_items(split.train, split.n_items), split.scale)
        figures = part.figures(model, "test")
        finite_or_raise(np.array(list(figures.values())), model.name)
        return figures
    users, items, ratings = inputs(split.test)
    predictions = predict_codes(model, users, items, options.eval_batch_size)
    return rating_metrics(ratings, predictions, "test", split.scale)


def train(
    config: Any,
    split: Split,
    options: TrainOptions | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> TrainResult:
    """Train `config` on `split.train`, track `split.valid` per epoch, score `split.test`.

    `on_epoch_end(epoch, logs)` sees train and validation figures only (never test), and
    may raise to stop training (pruning).
    """
    options = options or TrainOptions()
    arch = arch_of(config)
    if options.ranking is not None:
        config = as_scorer(arch, config)  # its output a logit, not a rating
    keras.utils.set_random_seed(options.seed)
    model = arch.build(config, split.n_users, split.n_items)
    runner = _runner(arch, model, config, split, options, on_epoch_end is None)
    start = time.perf_counter()
    history, epoch_seconds, stopping = _run_epochs(runner, config, split, options, on_epoch_end)
    fit_seconds = time.perf_counter() - start
    runner.store(model)
    if stopping.weights:
        stopping.restore(model)
    test = _test_figures(model, split, options) if len(split.test) else {}  # nested: no test
    embeddings = {  # without the spare last row, which no code reaches
        name: model.get_layer(layer).get_weights()[0][:-1]
        for name, layer in arch.embedding_layers.items()
    }
    return TrainResult(
        config=config,
        history=history,
        test=test,
        fit_seconds=fit_seconds,
        epoch_seconds=epoch_seconds,
        n_params=model.count_params(),
        model=model,
        embeddings=embeddings,
        best_epoch=stopping.best_epoch,
    )
