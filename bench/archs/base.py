"""What an architecture declares to the rest of the harness, and the parts they share.

An architecture is one module that builds an `Arch` entry: its config dataclass (whose
defaults are the published settings), its Keras builder, its Optuna search space, how a
config is written as that space's parameters, and the engine facts (XLA default, which
layers hold the embedding tables). `bench.archs` registers the entries by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import keras
import optuna

Loss = Literal["mse", "mae"]
Optimizer = Literal["adam", "sgd", "rmsprop", "adagrad"]
BATCH_SIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096]
MIN_EPOCHS = 5
TRAINING_FIELDS = ("learning_rate", "batch_size", "epochs", "loss")


@dataclass(frozen=True)
class Reference:
    """Figures published for an architecture's default settings (None: not published)."""

    source: str
    params: int | None = None
    test_mae_rounded: float | None = None
    test_mae: float | None = None


@dataclass(frozen=True)
class Arch:
    """One registered architecture: everything the engines, sweeps and reports ask of it."""

    name: str
    description: str
    config: type  # frozen dataclass; its defaults are the published settings
    build: Callable[[Any, int, int], keras.Model]  # (config, n_users, n_items) -> model
    suggest: Callable[[optuna.Trial, int], Any]  # (trial, max_epochs) -> config
    to_params: Callable[[Any], dict[str, Any]]  # config -> the space's parameters
    max_epochs: int
    reference: Reference
    jit_compile: bool = True  # XLA for the compiled epoch loop (where it measured faster)
    embedding_layers: Mapping[str, str] = field(
        default_factory=lambda: {"user": "user_embedding", "item": "item_embedding"}
    )

    def default_params(self, max_epochs: int | None = None) -> dict[str, Any]:
        """The published settings as this space's parameters (trial 0 of every study)."""
        params = self.to_params(self.config())
        params["epochs"] = min(params["epochs"], max_epochs or params["epochs"])
        return params

    def from_params(self, params: Mapping[str, Any]) -> Any:
        """Rebuild a config from a trial's parameters (e.g. a study's best trial)."""
        trial = optuna.trial.FixedTrial(dict(params))
        return self.suggest(trial, max(int(params.get("epochs", 1)), 1))

    def from_fields(self, fields: Mapping[str, Any]) -> Any:
        """A config from its field values (JSON lists become tuples)."""
        return self.config(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def config_params(config: Any) -> dict[str, Any]:
    """Flat dict of a config's fields (tuples joined), suitable for MLflow params."""
    params: dict[str, Any] = {"arch": config.arch}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        params[f.name] = "-".join(map(str, value)) if isinstance(value, tuple) else value
    return params


def suggest_training(trial: optuna.Trial, max_epochs: int) -> dict[str, Any]:
    """The training part every space shares: optimiser step, batches, epochs, loss, L2."""
    l2_on = trial.suggest_categorical("l2_on", [False, True])
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", BATCH_SIZES),
        "epochs": trial.suggest_int("epochs", min(MIN_EPOCHS, max_epochs), max_epochs),
        "loss": trial.suggest_categorical("loss", ["mse", "mae"]),
        "l2": trial.suggest_float("l2", 1e-7, 1e-2, log=True) if l2_on else 0.0,
    }


def training_params(config: Any) -> dict[str, Any]:
    """`suggest_training`'s parameters for a config (the inverse direction)."""
    params = {name: getattr(config, name) for name in TRAINING_FIELDS}
    params["l2_on"] = config.l2 > 0
    if config.l2 > 0:
        params["l2"] = config.l2
    return params


def suggest_tower(trial: optuna.Trial, max_layers: int = 4) -> tuple[int, ...]:
    """A dense tower: 1..max_layers layers of 8..256 units (log scale)."""
    depth = trial.suggest_int("n_hidden", 1, max_layers)
    return tuple(trial.suggest_int(f"units_{i}", 8, 256, log=True) for i in range(depth))


def tower_params(units: tuple[int, ...]) -> dict[str, Any]:
    return {"n_hidden": len(units), **{f"units_{i}": u for i, u in enumerate(units)}}
