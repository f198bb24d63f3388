"""Philox uniform floats in plain TensorFlow ops, bit for bit those of TF's stateless kernels.

`tf.random.stateless_uniform(shape, seed, alg="philox")` runs a CPU/GPU kernel that XLA
replaces by its own generator, which draws other numbers. `uniform` computes the same
numbers as the kernel with integer ops only (Philox-4x32-10, Salmon et al. 2011), so it can
run inside an XLA-compiled loop, where integer arithmetic is exact: the seed is scrambled
into a key and counter as `random_ops_util._philox_scramble_seed` does, then each group of
four floats is one Philox block of counter + group, each float 23 random mantissa bits.
"""

from __future__ import annotations

import tensorflow as tf

MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
KEY_STEPS = (0x9E3779B9, 0xBB67AE85)
SCRAMBLE_KEY = (0x3EC8F720, 0x02461E29)
LOW = 0xFFFFFFFF
ROUNDS = 10


def _words(value: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The low and high 32-bit words of uint64 values, each held in a uint64."""
    high = tf.bitwise.right_shift(value, tf.constant(32, tf.uint64))
    return tf.bitwise.bitwise_and(value, LOW), high


def block(counter: list[tf.Tensor], key: list[tf.Tensor]) -> list[tf.Tensor]:
    """Philox-4x32-10 of four counter words under two key words (uint64 holding 32 bits;
    counter words broadcast against each other)."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    xor = tf.bitwise.bitwise_xor
    for round_ in range(ROUNDS):
        lo0, hi0 = _words(c0 * MULTIPLIERS[0])
        lo1, hi1 = _words(c2 * MULTIPLIERS[1])
        c0, c1, c2, c3 = xor(xor(hi1, c1), k0), lo1, xor(xor(hi0, c3), k1), lo0
        if round_ < ROUNDS - 1:
            k0 = tf.bitwise.bitwise_and(k0 + KEY_STEPS[0], LOW)
            k1 = tf.bitwise.bitwise_and(k1 + KEY_STEPS[1], LOW)
    return [c0, c1, c2, c3]


def key_counter(seeds: tf.Tensor) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
    """The key and the counter's two high words TF derives from integer seeds (..., 2)."""
    seeds = tf.cast(seeds, tf.uint64)
    low0, high0 = _words(seeds[..., 0])
    low1, high1 = _words(seeds[..., 1])
    scramble = [tf.constant(word, tf.uint64) for word in SCRAMBLE_KEY]
    mix = block([low0, high0, low1, high1], scramble)
    return mix[:2], mix[2:]


def uniform(seeds: tf.Tensor, shape: list[int]) -> tf.Tensor:
    """Floats in [0, 1) of static `shape` per int32 seed of shape [2] in `seeds` (m, 2):
    (m, *shape), each equal to `tf.random.stateless_uniform(shape, seed, alg="philox")`."""
    size = 1
    for dim in shape:
        size *= int(dim)
    key, high = key_counter(seeds[:, None])  # (m, 1) against the groups' (1, g) counters
    groups = tf.cast(tf.range((size + 3) // 4, dtype=tf.int64), tf.uint64)[None]
    zeros = tf.zeros_like(high[0] * groups)
    words = block([groups + zeros, zeros, high[0] + zeros, high[1] + zeros], key)
    bits = tf.reshape(tf.stack(words, axis=-1), [tf.shape(seeds)[0], -1])[:, :size]
    mantissa = tf.bitwise.bitwise_or(tf.bitwise.bitwise_and(bits, 0x7FFFFF), 0x3F800000)
    ones_to_twos = tf.bitcast(tf.cast(mantissa, tf.uint32), tf.float32)
    return tf.reshape(ones_to_twos - 1.0, [-1, *shape])
