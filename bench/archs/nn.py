"""The post's neural network: concatenated embeddings through a dense tower.

The post's printed summary is item 8 / user 5 embeddings, dropout 0.2 on each, Dense 100
-> 50 -> 20 (relu) -> 1 (relu): only the 20-unit layer and the output have an activation.
MAE loss, Adam lr 0.005, batch 32, 250 epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import keras
import optuna

from bench.archs.base import (
    Arch,
    Loss,
    Optimizer,
    Reference,
    suggest_tower,
    suggest_training,
    tower_params,
    training_params,
)
from bench.archs.layers import Dropout, embedded, inputs

ACTIVATION_PATTERNS = {
    "post": "linear until the last hidden layer, which is relu (the post's tower)",
    "relu": "relu on every hidden layer",
}


@dataclass(frozen=True)
class NNConfig:
    """Concatenated user/item embeddings (with dropout) fed to a dense tower."""

    arch: ClassVar[str] = "nn"
    user_dim: int = 5
    item_dim: int = 8
    dropout: float = 0.2
    hidden_units: tuple[int, ...] = (100, 50, 20)
    hidden_activations: tuple[str, ...] = ("linear", "linear", "relu")
    output_activation: str = "relu"
    l2: float = 0.0
    row_l2: float = 0.0
    loss: Loss = "mae"
    optimizer: Optimizer = "adam"
    learning_rate: float = 0.005
    batch_size: int = 32
    epochs: int = 250

    def __post_init__(self) -> None:
        if len(self.hidden_units) != len(self.hidden_activations):
            raise ValueError("hidden_units and hidden_activations must have the same length")


def build_nn(config: NNConfig, n_users: int, n_items: int) -> keras.Model:
    """Concatenated embeddings, each with dropout, then a dense tower to one output."""
    user, item = inputs()
    table = {"l2": config.l2, "row_l2": config.row_l2}
    item_vec = embedded(item, n_items, config.item_dim, "item_embedding", **table)
    user_vec = embedded(user, n_users, config.user_dim, "user_embedding", **table)
    hidden = keras.layers.Concatenate(name="concat")(
        [
            Dropout(config.dropout)(item_vec),
            Dropout(config.dropout)(user_vec),
        ]
    )
    for depth, (units, activation) in enumerate(
        zip(config.hidden_units, config.hidden_activations, strict=True), 1
    ):
        hidden = keras.layers.Dense(units, activation=activation, name=f"dense_{depth}")(hidden)
    rating = keras.layers.Dense(1, activation=config.output_activation, name="rating")(hidden)
    return keras.Model([user, item], rating, name=config.arch)


def suggest(trial: optuna.Trial, max_epochs: int) -> NNConfig:
    units = suggest_tower(trial)
    pattern = trial.suggest_categorical("activations", list(ACTIVATION_PATTERNS))
    depth = len(units)
    activations = ("linear",) * (depth - 1) + ("relu",) if pattern == "post" else ("relu",) * depth
    return NNConfig(
        user_dim=trial.suggest_int("user_dim", 2, 128, log=True),
        item_dim=trial.suggest_int("item_dim", 2, 128, log=True),
        dropout=trial.suggest_float("dropout", 0.0, 0.6),
        hidden_units=units,
        hidden_activations=activations,
        **suggest_training(trial, max_epochs),
    )


def to_params(config: NNConfig) -> dict[str, Any]:
    pattern = "relu" if set(config.hidden_activations) == {"relu"} else "post"
    return {
        **training_params(config),
        **tower_params(config.hidden_units),
        "activations": pattern,
        "user_dim": config.user_dim,
        "item_dim": config.item_dim,
        "dropout": config.dropout,
    }


NN = Arch(
    name="nn",
    description="the post's neural network (embeddings, dropout, dense tower)",
    config=NNConfig,
    build=build_nn,
    suggest=suggest,
    to_params=to_params,
    max_epochs=250,
    reference=Reference(
        "Keras recommender blog post (seed post)",
        params=25675,
        test_mae_rounded=0.6957,
        test_mae=0.7088,
    ),
    jit_compile=True,  # dropout noise drawn ahead of the loop (training.compiled.EpochNoise)
    unroll=4,  # 1.2x per epoch at batch 32 (MF: none); training.compiled.loop_unroll
    logit_fields={"output_activation": "linear"},
)
