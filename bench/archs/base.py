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
import numpy as np
import optuna

Loss = Literal["mse", "mae"]
Optimizer = Literal["adam", "sgd", "rmsprop", "adagrad"]
BATCH_SIZES = [32, 64, 128, 256, 512, 1024, 2048]
LEARNING_RATES = (5e-4, 5e-2)  # Adam's step: below, 50 epochs barely move; above, it diverges
ROW_L2 = (1e-3, 0.5)  # per-rating L2 (RowL2); 0.05-0.1 measured best for MF on u1
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
    unroll: int = 1  # train steps per compiled-loop iteration in long runs (where it paid)
    # configurations known before any data are seen (a published library's defaults), tried
    # right after trial 0: label -> config fields over the published settings
    priors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    embedding_layers: Mapping[str, str] = field(
        default_factory=lambda: {"user": "user_embedding", "item": "item_embedding"}
    )
    # the config fields that make the output a raw score for the ranking task (the rating
    # head removed: the post's NN ends in a relu); empty: the output is one already
    logit_fields: Mapping[str, Any] = field(default_factory=dict)
    # every item's score for each of some user codes from a built model's tables, where the
    # score is a dot product (one matrix product instead of a model call per pair); None:
    # the model scores the pairs
    grid_scores: Callable[[keras.Model, np.ndarray], np.ndarray] | None = None

    def start_params(self, max_epochs: int | None = None) -> dict[str, dict[str, Any]]:
        """What every study tries first, in order: the published settings ("post", trial
        0), then the `priors` (label -> this space's parameters)."""
        starts = {"post": self.default_params(max_epochs)}
        for label, fields in self.priors.items():
            params = self.to_params(dataclasses.replace(self.config(), **fields))
            del params["epochs"]
            starts[label] = params
        return starts

    def default_params(self, max_epochs: int | None = None) -> dict[str, Any]:
        """The published settings as this space's parameters (trial 0 of every study). The
        epochs are no parameter of the space: a study trains every trial up to its cap, with
        early stopping."""
        params = self.to_params(self.config())
        del params["epochs"]
        return params

    def from_params(self, params: Mapping[str, Any]) -> Any:
        """Rebuild a config from a trial's parameters (e.g. a study's best trial)."""
        trial = optuna.trial.FixedTrial(dict(params))
        epochs = params.get("epochs", self.config().epochs)  # none given: the published ones
        return self.suggest(trial, max(int(epochs), 1))

    def from_trial(
        self, trial: optuna.trial.FrozenTrial, fixed: Mapping[str, Any] | None = None
    ) -> Any:
        """The config a trial chose: its parameters (and `fixed`, those its study did not
        search), trained for the epochs it kept (early stopping's best epoch, recorded as the
        trial's `epochs` attribute)."""
        epochs = trial.user_attrs.get("epochs", trial.params.get("epochs", self.max_epochs))
        return self.from_params({**trial.params, **(fixed or {}), "epochs": epochs})

    def from_fields(self, fields: Mapping[str, Any]) -> Any:
        """A config from its field values (JSON lists become tuples)."""
        return self.config(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def config_params(config: Any) -> dict[str, Any]:
    """Flat dict of a config's fields (tuples joined), suitable for MLflow params; an entry
    that wraps a config (a ranking one) flattens itself (`flat_params`)."""
    if hasattr(config, "flat_params"):
        return config.flat_params()
    params: dict[str, Any] = {"arch": config.arch}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        params[f.name] = "-".join(map(str, value)) if isinstance(value, tuple) else value
    return params


def suggest_training(trial: optuna.Trial, max_epochs: int) -> dict[str, Any]:
    """The training part every space shares: optimiser step, batches, loss, L2. Epochs are
    not drawn: `max_epochs` is a cap, and early stopping picks the epoch (a fidelity, not a
    guess); the trial records it as its `epochs` attribute. The L2 searched is per rating
    (`row_l2`, as SVD): the whole-table L2 (`l2`) was chosen by 1 of 15 tuned studies and
    stays a config field only."""
    row_l2_on = trial.suggest_categorical("row_l2_on", [False, True])
    return {
        "learning_rate": trial.suggest_float("learning_rate", *LEARNING_RATES, log=True),
        "batch_size": trial.suggest_categorical("batch_size", BATCH_SIZES),
        "epochs": max_epochs,
        "loss": trial.suggest_categorical("loss", ["mse", "mae"]),
        "row_l2": trial.suggest_float("row_l2", *ROW_L2, log=True) if row_l2_on else 0.0,
    }


def training_params(config: Any) -> dict[str, Any]:
    """`suggest_training`'s parameters for a config (the inverse direction)."""
    params = {name: getattr(config, name) for name in TRAINING_FIELDS}
    params["row_l2_on"] = config.row_l2 > 0
    if config.row_l2 > 0:
        params["row_l2"] = config.row_l2
    return params


def suggest_tower(trial: optuna.Trial, max_layers: int = 4) -> tuple[int, ...]:
    """A dense tower: 1..max_layers layers of 8..256 units (log scale)."""
    depth = trial.suggest_int("n_hidden", 1, max_layers)
    return tuple(trial.suggest_int(f"units_{i}", 8, 256, log=True) for i in range(depth))


def tower_params(units: tuple[int, ...]) -> dict[str, Any]:
    return {"n_hidden": len(units), **{f"units_{i}": u for i, u in enumerate(units)}}
