"""Keras pieces shared by the architectures.

Embedding tables have n + 1 rows, as in the reference post, so that the post's settings
give exactly its parameter counts. Inputs are int32 codes of shape (1,).
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="bench")
class GlobalBias(keras.layers.Layer):
    """Adds one trainable scalar (the global rating offset)."""

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")

    def call(self, inputs: keras.KerasTensor) -> keras.KerasTensor:
        return inputs + self.bias


@keras.saving.register_keras_serializable(package="bench")
class Dropout(keras.layers.Dropout):
    """Keras' Dropout whose uniform noise an XLA-compiled loop can hand it.

    TensorFlow draws other random numbers under XLA than its CPU and GPU kernels do for the
    same seed, so an XLA-compiled epoch would not learn what a plain `fit` learns. This
    layer draws its noise with the Philox kernels from the seeds of its `SeedGenerator`,
    as Keras does, or takes the step's noise from `step_noise` when the compiled engine
    has drawn it, the same numbers, with integer ops XLA keeps exact (`bench.training.philox`).
    """

    step_noise: tf.Tensor | None = None

    def call(self, inputs, training: bool = False):
        if not training or self.rate == 0:
            return inputs
        noise = self.step_noise
        if noise is None:
            noise = self.noise(self.seed_generator.next(), tf.shape(inputs))
        keep = noise >= self.rate
        return tf.where(keep, inputs * tf.cast(1 / (1 - self.rate), inputs.dtype), 0.0)

    @staticmethod
    def seed32(seed: tf.Tensor) -> tf.Tensor:
        """Keras' mapping of a generator's int64 seed to the int32 seed its kernels take."""
        return tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)

    @classmethod
    def noise(cls, seed: tf.Tensor, shape) -> tf.Tensor:
        """The uniform noise of one draw: Philox from the generator's seed, as Keras draws it."""
        return tf.random.stateless_uniform(shape, seed=cls.seed32(seed), alg="philox")


@keras.saving.register_keras_serializable(package="bench")
class RowL2(keras.layers.Layer):
    """Identity that adds `strength` x the batch mean of each row's squared norm to the
    training loss: L2 per rating on the embedding rows a batch looks up, as SVD's SGD
    regularises them (a row is shrunk as often as it is rated, whatever the table size).

    The strength is a non-trainable weight, so a compiled epoch reads it at run time and
    trials that differ only in their strength share one compiled epoch.
    """

    def __init__(self, strength: float, **kwargs):
        super().__init__(**kwargs)
        self.initial_strength = float(strength)

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.strength = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.initial_strength),
            trainable=False,
            name="strength",
        )

    def call(self, inputs: keras.KerasTensor, training: bool = False) -> keras.KerasTensor:
        if training:
            squared = keras.ops.sum(keras.ops.square(inputs), axis=-1)
            self.add_loss(self.strength * keras.ops.mean(squared))
        return inputs

    def get_config(self) -> dict:
        return {**super().get_config(), "strength": self.initial_strength}


def row_penalties(model: keras.Model) -> list[tf.Tensor]:
    """The per-rating L2 terms (`RowL2`) of the model's last call."""
    return [loss for layer in model.layers if isinstance(layer, RowL2) for loss in layer.losses]


def embedding(
    rows: int, dim: int, name: str, l2: float = 0.0, non_negative: bool = False
) -> keras.layers.Embedding:
    return keras.layers.Embedding(
        rows,
        dim,
        name=name,
        embeddings_regularizer=keras.regularizers.L2(l2) if l2 > 0 else None,
        embeddings_constraint=keras.constraints.NonNeg() if non_negative else None,
    )


def inputs() -> tuple[keras.KerasTensor, keras.KerasTensor]:
    user = keras.Input((1,), dtype="int32", name="user")
    item = keras.Input((1,), dtype="int32", name="item")
    return user, item


def embedded(
    code: keras.KerasTensor, rows: int, dim: int, name: str, row_l2: float = 0.0, **kwargs
):
    """The flattened embedding vector of `code` from a table of rows + 1 rows; `row_l2`
    > 0 adds that per-rating L2 on the vectors looked up (`RowL2`)."""
    vector = keras.layers.Flatten()(embedding(rows + 1, dim, name, **kwargs)(code))
    return RowL2(row_l2, name=f"{name}_row_l2")(vector) if row_l2 > 0 else vector
