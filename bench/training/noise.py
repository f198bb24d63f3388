"""Dropout noise of a compiled epoch: the numbers a plain Keras `fit` draws, step by step,
drawn inside the XLA-compiled loop a span of steps at a time (`EpochNoise`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf

from bench.archs.layers import Dropout
from bench.training.philox import uniform as philox_uniform

NOISE_BYTES = 16 * 2**20  # dropout noise drawn at once: bounds an epoch's memory on large data


class EpochNoise:
    """An epoch's dropout noise, drawn inside the compiled epoch, a span of steps at a time.

    Under XLA, TensorFlow's random ops draw other numbers than its CPU/GPU kernels, and a
    seed read from Keras' per-step `SeedGenerator` variable made each dropout about 10x
    slower than the rest of the step. So the noise of many steps is drawn at once from the
    seeds a plain `fit` uses ([seed, counter + step]), by `philox.uniform`: integer ops,
    exact under XLA, that give bit for bit the numbers of the Philox kernels `fit` runs.
    Each step's numbers depend on its seed alone, so drawing an epoch in spans of
    `span` steps (at most `NOISE_BYTES` of noise each) gives the same numbers as drawing it
    whole, in bounded memory. Each generator advances once per epoch by the number of steps.
    """

    def __init__(self, model: keras.Model):
        self.layers = [
            layer
            for layer in model._flatten_layers()
            if isinstance(layer, Dropout) and layer.rate > 0  # rate 0 has no generator
        ]
        self.widths = [int(np.prod(layer.input.shape[1:])) for layer in self.layers]

    def span(self, steps: int, batch_size: int, multiple: int) -> int:
        """Steps per draw: all `steps`, or as many as `NOISE_BYTES` holds (a multiple of
        `multiple`, at least one multiple)."""
        per_step = 4 * batch_size * max(self.widths, default=0) * len(self.layers)
        fits = NOISE_BYTES // max(per_step, 1) // multiple * multiple
        return min(steps, max(fits, multiple))

    def begin(self, steps: int) -> tf.Tensor:
        """Each layer's generator state at the epoch's start (layers, 2); each generator
        then moves on by the epoch's `steps`, as that many `fit` steps move it."""
        bases = []
        for layer in self.layers:
            state = layer.seed_generator.state.value
            base = state.read_value()
            state.assign(base + tf.constant([0, steps], base.dtype))
            bases.append(base)
        return tf.stack(bases)

    def draw(self, bases: tf.Tensor, first, count: int, batch_size: int) -> list[tf.Tensor]:
        """Per layer, the noise (count, batch, ...) of steps `first`.. `first + count - 1`:
        one Philox call for every layer and step (a draw's numbers are a prefix of a longer
        draw's from the same seed, so each layer takes the widest layer's batch)."""
        counters = tf.cast(first, bases.dtype) + tf.range(count, dtype=bases.dtype)
        offsets = tf.stack([tf.zeros_like(counters), counters], axis=1)
        seeds = Dropout.seed32(tf.reshape(bases[:, None] + offsets[None], [-1, 2]))
        draws = philox_uniform(seeds, [batch_size * max(self.widths)])
        draws = tf.reshape(draws, [len(self.layers), count, -1])
        noise = []
        for i, (layer, width) in enumerate(zip(self.layers, self.widths, strict=True)):
            steps = draws[i, :, : batch_size * width]
            noise.append(tf.reshape(steps, [count, batch_size, *layer.input.shape[1:]]))
        return noise

    @contextlib.contextmanager
    def at(self, noise: list[tf.Tensor], index, rows: int | None = None) -> Iterator[None]:
        """While a step is traced, each layer reads its noise: step `index` of `noise`
        (its first `rows` rows for the partial last batch)."""
        for layer, steps in zip(self.layers, noise, strict=True):
            layer.step_noise = tf.gather(steps, index) if rows is None else steps[index, :rows]
        try:
            yield
        finally:
            for layer in self.layers:
                layer.step_noise = None
