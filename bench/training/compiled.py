"""The compiled training engine: whole epochs as one compiled loop, reused across trials.

The training arrays live in memory as tensors, and one `tf.function` (XLA-compiled where
the architecture says so) runs a whole epoch as a `tf.while_loop` of train steps, so
Python and per-step dispatch drop out of the hot loop. Batches, their order, the initial
weights and the dropout noise are those a plain Keras `fit` would use (`bench.training.train`).

A runner (`CompiledEpochs`) owns a model, its optimiser and the compiled epoch. Trials whose
structure matches (`structure_key`: the config without learning rate, epochs and L2
strengths, which the compiled code reads from variables) share one runner per process
(`RUNNERS`): the trial's freshly built model is loaded into it and the trained state copied
back, so the trial pays no tracing and no compilation.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from bench.archs.layers import row_penalties
from bench.data import Split
from bench.errors import BenchError
from bench.training.lazy_adam import LazyAdam
from bench.training.noise import EpochNoise
from bench.training.options import TrainOptions


def inputs(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        frame["user"].to_numpy("int32")[:, None],
        frame["item"].to_numpy("int32")[:, None],
        frame["rating"].to_numpy("float32"),
    )


LOSSES = {"mse": keras.losses.MeanSquaredError, "mae": keras.losses.MeanAbsoluteError}


def make_optimizer(config: Any) -> keras.optimizers.Optimizer:
    return keras.optimizers.get(
        {"class_name": config.optimizer, "config": {"learning_rate": config.learning_rate}}
    )


class CompiledEpochs:
    """Runs epochs of train steps as compiled loops over in-memory tensors.

    The runner owns its model, optimiser and compiled epoch. A trial's model is loaded
    into it (`load`) and its trained weights copied back out (`store`); the learning rate
    and the L2 strengths are variables read by the compiled code, so every trial whose
    structure matches (`structure_key`) reuses the same traced, XLA-compiled epoch.
    """

    def __init__(self, model: keras.Model, config: Any, jit: bool, sparse: bool, unroll: int = 1):
        self.model, self.unroll = model, unroll
        self.loss_fn = LOSSES[config.loss]()
        if sparse and config.optimizer != "adam":
            raise BenchError(f"sparse updates need the adam optimiser, not {config.optimizer!r}")
        self.optimizer = LazyAdam(model, config.learning_rate) if sparse else None
        if self.optimizer is None:
            self.optimizer = make_optimizer(config)
            self.optimizer.build(model.trainable_variables)
            self._initial_state = [v.numpy() for v in self.optimizer.variables]
        # sparse: LazyAdam applies the tables' L2 itself; dense: one strength per variable
        self.regularised = [] if sparse else regularised(model)
        self.l2 = [tf.Variable(0.0, trainable=False) for _ in self.regularised]
        self.batch_size = config.batch_size
        self.sparse = sparse
        noise = EpochNoise(self.model) if jit else None
        self.noise = noise if noise and noise.layers else None  # no dropout: no noise
        self.noise_rows = 1  # model rows per example a step feeds (ranking: 1 + negatives)
        # no autograph: the loops are explicit; autograph writes each converted function to a
        # file in /tmp that only a normal exit deletes, so sweep workers left them behind
        self._epoch = tf.function(self._epoch_fn, jit_compile=jit, autograph=False)

    def load(self, model: keras.Model, config: Any) -> None:
        """Start a trial: `model`'s initial state, fresh optimiser state, its rates."""
        for mine, theirs in zip(self.model.variables, model.variables, strict=True):
            mine.assign(theirs.value)
        for variable, value in zip(self.optimizer.variables, self._initial_state, strict=True):
            variable.assign(value)
        self.optimizer.learning_rate.assign(config.learning_rate)
        for strength, variable in zip(self.l2, regularised(model), strict=True):
            strength.assign(variable.regularizer.l2)

    def store(self, model: keras.Model) -> None:
        """Copy the trained state into `model` (the trial's own, returned to the caller)."""
        for theirs, mine in zip(model.variables, self.model.variables, strict=True):
            theirs.assign(mine.value)

    def _penalties(self) -> list[tf.Tensor]:
        if self.sparse:
            return LazyAdam.regularisation(self.model)
        pairs = zip(self.l2, self.regularised, strict=True)
        tables = [strength * tf.reduce_sum(tf.square(v.value)) for strength, v in pairs]
        return tables + row_penalties(self.model)

    def _weighted_step(self, rows: tf.Tensor, data: tuple[tf.Tensor, ...]) -> tf.Tensor:
        """One train step on `rows`; returns its loss times its batch size."""
        users, items, ratings = (tf.gather(column, rows) for column in data)
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            loss = self.loss_fn(ratings, self.model([users, items], training=True))
            penalties = self._penalties()
            if penalties:
                loss += tf.add_n(penalties)
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        return loss * tf.cast(tf.shape(rows)[0], loss.dtype)

    def _noise_at(self, noise: list[tf.Tensor], index, rows: int | None = None):
        return self.noise.at(noise, index, rows) if self.noise else contextlib.nullcontext()

    def _draw(self, bases, first, count: int, batch_size: int) -> list[tf.Tensor]:
        return self.noise.draw(bases, first, count, batch_size) if self.noise else []

    def _epoch_fn(self, order: tf.Tensor, data: tuple, valid: tuple) -> tuple:
        """All full batches, their dropout noise drawn a span of steps at a time (one span:
        the whole epoch, unless its noise would outgrow `NOISE_BYTES`); then the partial
        last batch (static shape); then the predictions for `valid` (user and item codes;
        may be empty)."""
        n = order.shape[0]
        batch_size = min(self.batch_size, n)
        full, last = divmod(n, batch_size)
        bases = self.noise.begin(full + (last > 0)) if self.noise else None
        noise_batch = batch_size * self.noise_rows
        span = self.noise.span(full, noise_batch, self.unroll) if self.noise else full

        def run_span(first, total: tf.Tensor) -> tuple:
            noise = self._draw(bases, first, span, noise_batch)
            end = full if span == full else tf.minimum(first + span, full)
            return end, self._run_steps(first, end, total, order, data, noise, batch_size)

        if span == full:
            total = run_span(0, tf.constant(0.0))[1]
        else:
            state = (tf.constant(0), tf.constant(0.0))
            total = tf.while_loop(lambda first, _: first < full, run_span, state)[1]
        if last:
            noise = self._draw(bases, full, 1, noise_batch)
            with self._noise_at(noise, 0, rows=last * self.noise_rows):
                total += self._weighted_step(order[full * batch_size :], data)
        if not valid:
            return total, tf.zeros([0])
        return total, tf.reshape(self.model(list(valid), training=False), [-1])

    def _run_steps(self, first, end, total, order, data, noise, batch_size: int) -> tf.Tensor:
        """Steps `first`.. `end - 1` (noise: theirs, from step `first` on): while loops of
        `unroll` steps per iteration, then of single steps; the summed weighted loss."""
        head = end - (end - first) % self.unroll  # ints for a whole epoch, else tensors
        state = (tf.convert_to_tensor(first), total)
        body = self._steps(self.unroll, first, order, data, noise, batch_size)
        state = tf.while_loop(lambda step, _: step < head, body, state)
        if self.unroll > 1 and not (isinstance(head, int) and head == end):  # steps left
            body = self._steps(1, first, order, data, noise, batch_size)
            state = tf.while_loop(lambda step, _: step < end, body, state)
        return state[1]

    def _steps(self, count: int, first, order, data: tuple, noise: list, batch_size: int):
        """A while-loop body that runs `count` train steps, traced one after the other."""

        def body(step: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            for i in range(count):
                rows = tf.slice(order, [(step + i) * batch_size], [batch_size])
                with self._noise_at(noise, step + i - first):
                    total = total + self._weighted_step(rows, data)
            return step + count, total

        return body

    def run_epoch(self, order: np.ndarray, data: tuple, valid: tuple) -> tuple:
        """(mean train loss, validation predictions or None) of one epoch."""
        total, predictions = self._epoch(tf.constant(order), data, valid)
        return float(total) / len(order), (predictions.numpy() if valid else None)

    def epochs(self, train: pd.DataFrame, valid: pd.DataFrame, max_rows: int) -> EpochRunner:
        return EpochRunner(self, train, valid, max_rows)


class EpochRunner:
    """One trial's data bound to a compiled runner. The validation part (up to `max_rows`
    ratings, else it is predicted apart, in batches) is predicted inside the compiled
    epoch, so validating costs no call of its own."""

    def __init__(self, compiled: CompiledEpochs, train: pd.DataFrame, valid, max_rows: int):
        self.compiled, self.model = compiled, compiled.model
        self.data = tuple(map(tf.constant, inputs(train)))
        inside = 0 < len(valid) <= max_rows
        self.valid = tuple(map(tf.constant, inputs(valid)[:2])) if inside else ()
        self.predictions: np.ndarray | None = None
        self.n_rows = len(train)

    def store(self, model: keras.Model) -> None:
        self.compiled.store(model)

    def run_epoch(self, order: np.ndarray) -> float:
        loss, self.predictions = self.compiled.run_epoch(order, self.data, self.valid)
        return loss


def regularised(model: keras.Model) -> list[Any]:
    """The trainable variables with a weight regulariser (all L2 in this harness)."""
    found = [v for v in model.trainable_variables if v.regularizer is not None]
    for variable in found:
        if not isinstance(variable.regularizer, keras.regularizers.L2):
            raise BenchError(f"{variable.path}: only L2 weight regularisers are supported")
    return found


class RunnerCache:
    """Compiled runners of this process by structure, least recently used evicted first.

    Bounded by count and by the bytes of the variables the runners hold, so large tables
    do not pin gigabytes; a reused runner costs no tracing, no compilation and no new
    native memory."""

    def __init__(self, max_runners: int = 8, max_bytes: int = 256 * 2**20):
        self.max_runners, self.max_bytes = max_runners, max_bytes
        self.runners: OrderedDict[tuple, tuple[CompiledEpochs, int]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: tuple, create: Callable[[], CompiledEpochs]) -> CompiledEpochs:
        if key in self.runners:
            self.hits += 1
            self.runners.move_to_end(key)
            return self.runners[key][0]
        self.misses += 1
        runner = create()
        size = sum(int(np.prod(v.shape)) * 4 for v in runner.model.variables) * 3
        self.runners[key] = (runner, size)
        while len(self.runners) > 1 and (
            len(self.runners) > self.max_runners
            or sum(size for _, size in self.runners.values()) > self.max_bytes
        ):
            self.runners.popitem(last=False)
        return runner

    def clear(self) -> None:
        self.runners.clear()
        self.hits = self.misses = 0


RUNNERS = RunnerCache()


def structure_key(model: keras.Model, config: Any, jit: bool, sparse: bool, unroll: int) -> tuple:
    """What a compiled epoch depends on: the config with the fields the runner takes as
    inputs (learning rate, epochs, L2 strengths) cleared, the variables' shapes, and how
    it is compiled."""
    cleared = {f.name: None for f in dataclasses.fields(config) if _is_runtime_field(f.name)}
    shapes = tuple((tuple(v.shape), v.regularizer is not None) for v in model.variables)
    return (config.arch, dataclasses.replace(config, **cleared), shapes, jit, sparse, unroll)


def _is_runtime_field(name: str) -> bool:
    return name in ("learning_rate", "epochs") or name == "l2" or name.endswith("_l2")


LONG_RUN_STEPS = 200_000  # an unrolled loop's longer compilation (about 1 s) pays beyond this


def loop_unroll(arch, config: Any, n_train: int, options: TrainOptions, fixed: bool) -> int:
    """Train steps per iteration of the compiled loop: `options.unroll` if set, else the
    architecture's where a run of fixed length (no pruning, no early stopping) has enough
    steps to repay the longer compilation, else 1. Results are the same either way."""
    if options.unroll is not None:
        return options.unroll
    steps = config.epochs * -(-n_train // config.batch_size)
    return arch.unroll if fixed and steps >= LONG_RUN_STEPS else 1


def compiled_runner(
    arch, model: keras.Model, config: Any, split: Split, options: TrainOptions, unroll: int = 1
):
    """The process's runner for this structure, loaded with `model`'s initial state. The
    sparse path bakes its rates into the trace, so it trains `model` in a runner of its own."""
    jit = arch.jit_compile if options.jit_compile is None else options.jit_compile
    if options.sparse_updates:
        return CompiledEpochs(model, config, jit, sparse=True, unroll=unroll)

    def create() -> CompiledEpochs:
        built = arch.build(config, split.n_users, split.n_items)
        return CompiledEpochs(built, config, jit, False, unroll)

    compiled = RUNNERS.get(structure_key(model, config, jit, False, unroll), create)
    compiled.load(model, config)
    return compiled
