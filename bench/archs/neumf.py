"""NeuMF (He et al., 2017, "Neural Collaborative Filtering"), adapted to rating prediction.

Two branches share nothing: GMF, the element-wise product of a user and an item vector,
and an MLP tower over the concatenation of two other user and item vectors. Their outputs
are concatenated and joined by one final dense layer. The paper predicts implicit feedback
with a sigmoid and log loss; here the final layer is linear and the loss a rating loss
(MSE by default). Default settings follow the paper's: 8 predictive factors, MLP layers
64 -> 32 -> 16 -> 8 (its input 64 is two 32-dimensional embeddings), Adam lr 0.001,
batch 256, 20 epochs. The paper publishes no rating-prediction figures.
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


@dataclass(frozen=True)
class NeuMFConfig:
    """GMF branch (gmf_dim factors) and MLP branch (mlp_dim per side, dense tower)."""

    arch: ClassVar[str] = "neumf"
    gmf_dim: int = 8
    mlp_dim: int = 32
    hidden_units: tuple[int, ...] = (32, 16, 8)
    dropout: float = 0.0
    l2: float = 0.0
    row_l2: float = 0.0
    loss: Loss = "mse"
    optimizer: Optimizer = "adam"
    learning_rate: float = 0.001
    batch_size: int = 256
    epochs: int = 20


def build_neumf(config: NeuMFConfig, n_users: int, n_items: int) -> keras.Model:
    """GMF product and MLP tower, concatenated, then one linear output unit."""
    user, item = inputs()
    table = {"l2": config.l2, "row_l2": config.row_l2}
    gmf = keras.layers.Multiply(name="gmf")(
        [
            embedded(user, n_users, config.gmf_dim, "user_gmf", **table),
            embedded(item, n_items, config.gmf_dim, "item_gmf", **table),
        ]
    )
    hidden = keras.layers.Concatenate(name="mlp_input")(
        [
            embedded(user, n_users, config.mlp_dim, "user_mlp", **table),
            embedded(item, n_items, config.mlp_dim, "item_mlp", **table),
        ]
    )
    hidden = Dropout(config.dropout)(hidden)
    for depth, units in enumerate(config.hidden_units, 1):
        hidden = keras.layers.Dense(units, activation="relu", name=f"mlp_{depth}")(hidden)
    joined = keras.layers.Concatenate(name="neumf")([gmf, hidden])
    rating = keras.layers.Dense(1, name="rating")(joined)
    return keras.Model([user, item], rating, name=config.arch)


def suggest(trial: optuna.Trial, max_epochs: int) -> NeuMFConfig:
    return NeuMFConfig(
        gmf_dim=trial.suggest_int("gmf_dim", 2, 128, log=True),
        mlp_dim=trial.suggest_int("mlp_dim", 2, 128, log=True),
        hidden_units=suggest_tower(trial, max_layers=4),
        dropout=trial.suggest_float("dropout", 0.0, 0.5),
        **suggest_training(trial, max_epochs),
    )


def to_params(config: NeuMFConfig) -> dict[str, Any]:
    return {
        **training_params(config),
        **tower_params(config.hidden_units),
        "gmf_dim": config.gmf_dim,
        "mlp_dim": config.mlp_dim,
        "dropout": config.dropout,
    }


NEUMF = Arch(
    name="neumf",
    description="NeuMF: GMF product and MLP tower joined by a dense layer (He et al. 2017)",
    config=NeuMFConfig,
    build=build_neumf,
    suggest=suggest,
    to_params=to_params,
    max_epochs=100,
    reference=Reference("He et al. 2017, Neural Collaborative Filtering (no rating figures)"),
    jit_compile=True,
    embedding_layers={
        "user_gmf": "user_gmf",
        "item_gmf": "item_gmf",
        "user_mlp": "user_mlp",
        "item_mlp": "item_mlp",
    },
)
