"""The XLA path's dropout noise is, bit for bit, what TensorFlow's Philox kernels draw."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from bench.archs import get_arch
from bench.archs.layers import Dropout
from bench.archs.nn import NNConfig
from bench.training import noise as noise_module
from bench.training import philox
from bench.training.noise import EpochNoise

SHAPES = [[32, 8], [7, 5], [1, 8], [3], [2, 3, 5]]


def _bits(values) -> np.ndarray:
    return np.asarray(values, np.float32).view(np.uint32)


def _seeds(n: int, seed: int) -> np.ndarray:
    """Random int32 seed pairs, with the extremes Keras' seed mapping can give."""
    drawn = np.random.default_rng(seed).integers(0, tf.int32.max - 1, size=(n, 2))
    return np.vstack([drawn, [[0, 0], [tf.int32.max - 2, tf.int32.max - 2]]]).astype("int32")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "xla"])
def test_uniform_equals_the_philox_kernel_for_each_seed(shape, jit):
    seeds = _seeds(12, seed=len(shape))
    draw = tf.function(lambda s: philox.uniform(s, shape), jit_compile=True) if jit else None
    mine = (draw or (lambda s: philox.uniform(s, shape)))(tf.constant(seeds)).numpy()
    assert mine.shape == (len(seeds), *shape)
    for seed, values in zip(seeds, mine, strict=True):
        kernel = tf.random.stateless_uniform(shape, seed=tf.constant(seed), alg="philox")
        np.testing.assert_array_equal(_bits(values), _bits(kernel))
    assert mine.min() >= 0.0 and mine.max() < 1.0
    assert len(np.unique(mine)) > 0.9 * mine.size  # not a constant or a short cycle


def test_an_epochs_noise_is_the_noise_a_plain_fit_draws_step_by_step():
    """n = 50 ratings in batches of 24: two full steps and a last one of 2 ratings, drawn
    as the compiled epoch draws them: a span of steps, then the last step on its own."""
    model = get_arch("nn").build(NNConfig(user_dim=3, item_dim=4), 10, 12)
    noise = EpochNoise(model)
    assert len(noise.layers) == 2
    before = [layer.seed_generator.state.numpy() for layer in noise.layers]

    def epoch():
        bases = noise.begin(3)
        return noise.draw(bases, 0, 2, 24), noise.draw(bases, tf.constant(2), 1, 24)

    spans, lasts = tf.function(epoch, jit_compile=True)()
    for layer, start, span, last in zip(noise.layers, before, spans, lasts, strict=True):
        width = layer.input.shape[1:]
        for step, shape, values in ((0, 24, span[0]), (1, 24, span[1]), (2, 2, last[0, :2])):
            kernel = Dropout.noise(tf.constant(start + [0, step]), [shape, *width])
            np.testing.assert_array_equal(_bits(values), _bits(kernel))
        # the generator moved on by the epoch's three steps, as three `fit` steps move it
        np.testing.assert_array_equal(layer.seed_generator.state.numpy(), start + [0, 3])


def test_a_span_holds_as_many_steps_as_the_noise_budget_allows(monkeypatch):
    model = get_arch("nn").build(NNConfig(user_dim=3, item_dim=4), 10, 12)
    noise = EpochNoise(model)
    per_step = 4 * 24 * 4 * 2  # float32, batch 24, the widest layer (4), two layers
    monkeypatch.setattr(noise_module, "NOISE_BYTES", per_step * 10)
    assert noise.span(100, 24, 1) == 10
    assert noise.span(100, 24, 4) == 8  # whole loop iterations
    assert noise.span(100, 24, 16) == 16  # at least one iteration, over budget or not
    assert noise.span(7, 24, 1) == 7  # never more than the epoch
