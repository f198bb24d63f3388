"""The three architectures of the reference post, in the Keras 3 functional API.

Embedding tables have n + 1 rows, as in the post, so that the post's settings give exactly
its parameter counts (MF and NNMF 7,881; NN 25,675). Inputs are int32 codes of shape (1,).
"""

from __future__ import annotations

import keras

from bench.config import MFConfig, ModelConfig, NNConfig

USER_EMBEDDING = "user_embedding"
ITEM_EMBEDDING = "item_embedding"


@keras.saving.register_keras_serializable(package="bench")
class GlobalBias(keras.layers.Layer):
    """Adds one trainable scalar (the global rating offset)."""

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")

    def call(self, inputs: keras.KerasTensor) -> keras.KerasTensor:
        return inputs + self.bias


def _embedding(
    rows: int, dim: int, name: str, l2: float, non_negative: bool = False
) -> keras.layers.Embedding:
    return keras.layers.Embedding(
        rows,
        dim,
        name=name,
        embeddings_regularizer=keras.regularizers.L2(l2) if l2 > 0 else None,
        embeddings_constraint=keras.constraints.NonNeg() if non_negative else None,
    )


def _inputs() -> tuple[keras.KerasTensor, keras.KerasTensor]:
    return keras.Input((1,), dtype="int32", name="user"), keras.Input(
        (1,), dtype="int32", name="item"
    )


def build_mf(config: MFConfig, n_users: int, n_items: int) -> keras.Model:
    """Dot product of user and item embeddings, plus optional user/item/global biases."""
    user, item = _inputs()
    flat = keras.layers.Flatten
    user_vec = flat()(
        _embedding(n_users + 1, config.k, USER_EMBEDDING, config.l2, config.non_negative)(user)
    )
    item_vec = flat()(
        _embedding(n_items + 1, config.k, ITEM_EMBEDDING, config.l2, config.non_negative)(item)
    )
    rating = keras.layers.Dot(axes=1, name="dot")([item_vec, user_vec])
    if config.use_bias:
        user_bias = flat()(keras.layers.Embedding(n_users + 1, 1, name="user_bias")(user))
        item_bias = flat()(keras.layers.Embedding(n_items + 1, 1, name="item_bias")(item))
        summed = keras.layers.Add(name="add_bias")([rating, user_bias, item_bias])
        rating = GlobalBias(name="global_bias")(summed)
    return keras.Model([user, item], rating, name=config.arch)


def build_nn(config: NNConfig, n_users: int, n_items: int) -> keras.Model:
    """Concatenated embeddings, each with dropout, then a dense tower to one output."""
    user, item = _inputs()
    item_vec = keras.layers.Flatten()(
        _embedding(n_items + 1, config.item_dim, ITEM_EMBEDDING, config.l2)(item)
    )
    user_vec = keras.layers.Flatten()(
        _embedding(n_users + 1, config.user_dim, USER_EMBEDDING, config.l2)(user)
    )
    hidden = keras.layers.Concatenate(name="concat")(
        [
            keras.layers.Dropout(config.dropout)(item_vec),
            keras.layers.Dropout(config.dropout)(user_vec),
        ]
    )
    for depth, (units, activation) in enumerate(
        zip(config.hidden_units, config.hidden_activations, strict=True), 1
    ):
        hidden = keras.layers.Dense(units, activation=activation, name=f"dense_{depth}")(hidden)
    rating = keras.layers.Dense(1, activation=config.output_activation, name="rating")(hidden)
    return keras.Model([user, item], rating, name=config.arch)


def build_model(config: ModelConfig, n_users: int, n_items: int) -> keras.Model:
    if isinstance(config, NNConfig):
        return build_nn(config, n_users, n_items)
    return build_mf(config, n_users, n_items)
