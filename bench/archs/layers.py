"""Keras pieces shared by the architectures.

Embedding tables have n + 1 rows, as in the reference post, so that the post's settings
give exactly its parameter counts. Inputs are int32 codes of shape (1,).
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="bench")
class GlobalBias(keras.layers.Layer):
    """Adds one trainable scalar (the global rating offset)."""

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")

    def call(self, inputs: keras.KerasTensor) -> keras.KerasTensor:
        return inputs + self.bias


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


def embedded(code: keras.KerasTensor, rows: int, dim: int, name: str, **kwargs):
    """The flattened embedding vector of `code` from a table of rows + 1 rows."""
    return keras.layers.Flatten()(embedding(rows + 1, dim, name, **kwargs)(code))
