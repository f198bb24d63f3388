"""Matrix factorisation (the post's MF) and its non-negative variant (the post's NNMF).

rating = <user vector, item vector> (+ user bias + item bias + global offset when
`use_bias`). The post trains k = 3 with MSE and Adam (lr 0.001, batch 32): 100 epochs for
MF, 10 for NNMF, whose embedding tables are constrained to be >= 0.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import keras
import numpy as np
import optuna

from bench.archs.base import (
    Arch,
    Loss,
    Optimizer,
    Reference,
    suggest_training,
    training_params,
)
from bench.archs.layers import GlobalBias, embedded, inputs

POST = "Keras recommender blog post (seed post)"


@dataclass(frozen=True)
class MFConfig:
    """Matrix factorisation: user and item embeddings combined by a dot product."""

    arch: ClassVar[str] = "mf"
    k: int = 3
    use_bias: bool = False
    l2: float = 0.0  # L2 on the whole embedding tables, every step (Keras' regulariser)
    row_l2: float = 0.0  # L2 per rating on the rows a batch reads (as SVD; layers.RowL2)
    bias_l2: float = 0.0  # L2 on the user and item bias terms (their own strength)
    non_negative: bool = False
    loss: Loss = "mse"
    optimizer: Optimizer = "adam"
    learning_rate: float = 0.001
    batch_size: int = 32
    epochs: int = 100


@dataclass(frozen=True)
class NNMFConfig(MFConfig):
    """Matrix factorisation with both embedding tables constrained to be >= 0."""

    arch: ClassVar[str] = "nnmf"
    non_negative: bool = True
    epochs: int = 10


def build_mf(config: MFConfig, n_users: int, n_items: int) -> keras.Model:
    """Dot product of user and item embeddings, plus optional user/item/global biases."""
    user, item = inputs()
    table = {"l2": config.l2, "row_l2": config.row_l2, "non_negative": config.non_negative}
    user_vec = embedded(user, n_users, config.k, "user_embedding", **table)
    item_vec = embedded(item, n_items, config.k, "item_embedding", **table)
    rating = keras.layers.Dot(axes=1, name="dot")([item_vec, user_vec])
    if config.use_bias:
        user_bias = embedded(user, n_users, 1, "user_bias", l2=config.bias_l2)
        item_bias = embedded(item, n_items, 1, "item_bias", l2=config.bias_l2)
        summed = keras.layers.Add(name="add_bias")([rating, user_bias, item_bias])
        rating = GlobalBias(name="global_bias")(summed)
    return keras.Model([user, item], rating, name=config.arch)


# scikit-surprise's SVD defaults (100 factors, biases, L2 0.02 per rating, Funk/Koren's
# biased MF) with Keras's Adam default (learning rate 1e-3) in place of its SGD: a published
# starting point, chosen before any data were seen. The bias L2 here is on the whole table,
# so 0.02 per rating spread over about 1,000-2,000 rows is about 1e-5.
SVD_DEFAULTS = {
    "k": 100, "use_bias": True, "row_l2": 0.02, "bias_l2": 1e-5, "loss": "mse",
    "learning_rate": 1e-3, "batch_size": 256,
}  # fmt: skip


def _suggester(config_type: type[MFConfig]):
    def suggest(trial: optuna.Trial, max_epochs: int) -> MFConfig:
        config = config_type(
            k=trial.suggest_int("k", 1, 256, log=True),
            use_bias=trial.suggest_categorical("use_bias", [False, True]),
            **suggest_training(trial, max_epochs),
        )
        if not config.use_bias:
            return config
        # the biases of rarely rated items need shrinking, or they top every ranking
        bias_l2_on = trial.suggest_categorical("bias_l2_on", [False, True])
        bias_l2 = trial.suggest_float("bias_l2", 1e-7, 1e-1, log=True) if bias_l2_on else 0.0
        return replace(config, bias_l2=bias_l2)

    return suggest


def to_params(config: MFConfig) -> dict[str, Any]:
    params = {**training_params(config), "k": config.k, "use_bias": config.use_bias}
    if config.use_bias:
        params["bias_l2_on"] = config.bias_l2 > 0
        if config.bias_l2 > 0:
            params["bias_l2"] = config.bias_l2
    return params


def mf_grid(model: keras.Model, users: np.ndarray) -> np.ndarray:
    """Every item's score for each of `users` (codes): the model's dot products (and biases)
    as one matrix product, float32 as the model computes them (the spare last row of each
    table, which no code reaches, left out)."""
    names = {layer.name for layer in model.layers}

    def table(name: str) -> np.ndarray:
        return model.get_layer(name).get_weights()[0]

    scores = table("user_embedding")[users] @ table("item_embedding")[:-1].T
    if "user_bias" in names:  # added in the model's order: dot, user, item, global
        scores = scores + table("user_bias")[users] + table("item_bias")[:-1, 0][None, :]
        scores = scores + model.get_layer("global_bias").get_weights()[0]
    return scores


MF = Arch(
    name="mf",
    description="matrix factorisation (dot product, optional biases)",
    config=MFConfig,
    build=build_mf,
    suggest=_suggester(MFConfig),
    to_params=to_params,
    max_epochs=100,
    reference=Reference(POST, params=7881, test_mae_rounded=0.6915),
    priors={"svd-defaults": SVD_DEFAULTS},
    grid_scores=mf_grid,
)
NNMF = replace(
    MF,
    name="nnmf",
    description="non-negative matrix factorisation (embeddings >= 0)",
    config=NNMFConfig,
    suggest=_suggester(NNMFConfig),
    reference=Reference(POST, params=7881),
)
