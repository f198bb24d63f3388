"""Search spaces, one per architecture, sampled with Optuna's define-by-run API.

Every range contains the post's setting (enqueued as trial 0 of each study through
`post_params`) and the region known to work on MovieLens (k up to 256, learning rate
1e-4..1e-1, batch size 32..4096). L2 strength is sampled on a log scale behind an on/off
switch, so that exactly 0 stays reachable.
"""

from __future__ import annotations

from typing import Any

import optuna

from bench.config import CONFIGS, MFConfig, ModelConfig, NNConfig

BATCH_SIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096]
ACTIVATION_PATTERNS = {
    "post": "linear until the last hidden layer, which is relu (the post's tower)",
    "relu": "relu on every hidden layer",
}
MIN_EPOCHS = 5
MAX_EPOCHS = {"mf": 100, "nnmf": 100, "nn": 250}
MAX_HIDDEN_LAYERS = 4


def _common(trial: optuna.Trial, max_epochs: int) -> dict[str, Any]:
    l2_on = trial.suggest_categorical("l2_on", [False, True])
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", BATCH_SIZES),
        "epochs": trial.suggest_int("epochs", min(MIN_EPOCHS, max_epochs), max_epochs),
        "loss": trial.suggest_categorical("loss", ["mse", "mae"]),
        "l2": trial.suggest_float("l2", 1e-7, 1e-2, log=True) if l2_on else 0.0,
    }


def _mf(trial: optuna.Trial, arch: str, max_epochs: int) -> MFConfig:
    return CONFIGS[arch](
        k=trial.suggest_int("k", 1, 256, log=True),
        use_bias=trial.suggest_categorical("use_bias", [False, True]),
        **_common(trial, max_epochs),
    )


def _nn(trial: optuna.Trial, max_epochs: int) -> NNConfig:
    depth = trial.suggest_int("n_hidden", 1, MAX_HIDDEN_LAYERS)
    units = tuple(trial.suggest_int(f"units_{i}", 8, 256, log=True) for i in range(depth))
    pattern = trial.suggest_categorical("activations", list(ACTIVATION_PATTERNS))
    activations = ("linear",) * (depth - 1) + ("relu",) if pattern == "post" else ("relu",) * depth
    return NNConfig(
        user_dim=trial.suggest_int("user_dim", 2, 128, log=True),
        item_dim=trial.suggest_int("item_dim", 2, 128, log=True),
        dropout=trial.suggest_float("dropout", 0.0, 0.6),
        hidden_units=units,
        hidden_activations=activations,
        **_common(trial, max_epochs),
    )


def suggest_config(trial: optuna.Trial, arch: str, max_epochs: int | None = None) -> ModelConfig:
    """Sample one config of `arch` from its search space (epochs capped at max_epochs)."""
    max_epochs = max_epochs or MAX_EPOCHS[arch]
    return _nn(trial, max_epochs) if arch == "nn" else _mf(trial, arch, max_epochs)


def post_params(arch: str, max_epochs: int | None = None) -> dict[str, Any]:
    """The post's settings, written as this space's parameters (for `enqueue_trial`)."""
    config = CONFIGS[arch]()
    params: dict[str, Any] = {
        "learning_rate": config.learning_rate,
        "batch_size": config.batch_size,
        "epochs": min(config.epochs, max_epochs or config.epochs),
        "loss": config.loss,
        "l2_on": False,
    }
    if isinstance(config, NNConfig):
        params.update(
            n_hidden=len(config.hidden_units),
            **{f"units_{i}": units for i, units in enumerate(config.hidden_units)},
            activations="post",
            user_dim=config.user_dim,
            item_dim=config.item_dim,
            dropout=config.dropout,
        )
    else:
        params.update(k=config.k, use_bias=config.use_bias)
    return params
