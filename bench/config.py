"""Every tunable setting in one place, with typed defaults.

The architecture configs' defaults reproduce the reference post exactly; extensions
(L2 regularisation, bias terms) exist but are off by default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

Loss = Literal["mse", "mae"]
Optimizer = Literal["adam", "sgd", "rmsprop", "adagrad"]

DATA_DIR_ENV = "BENCH_DATA_DIR"
DATA_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


@dataclass(frozen=True)
class MFConfig:
    """Matrix factorisation: user and item embeddings combined by a dot product."""

    arch: ClassVar[str] = "mf"
    k: int = 3
    use_bias: bool = False
    l2: float = 0.0
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


@dataclass(frozen=True)
class NNConfig:
    """Concatenated user/item embeddings (with dropout) fed to a dense tower.

    The post's printed summary is Dense 100 -> 50 -> 20 (relu) -> 1 (relu): only the
    20-unit layer and the output have an activation.
    """

    arch: ClassVar[str] = "nn"
    user_dim: int = 5
    item_dim: int = 8
    dropout: float = 0.2
    hidden_units: tuple[int, ...] = (100, 50, 20)
    hidden_activations: tuple[str, ...] = ("linear", "linear", "relu")
    output_activation: str = "relu"
    l2: float = 0.0
    loss: Loss = "mae"
    optimizer: Optimizer = "adam"
    learning_rate: float = 0.005
    batch_size: int = 32
    epochs: int = 250

    def __post_init__(self) -> None:
        if len(self.hidden_units) != len(self.hidden_activations):
            raise ValueError("hidden_units and hidden_activations must have the same length")


ModelConfig = MFConfig | NNMFConfig | NNConfig
CONFIGS: dict[str, type[MFConfig] | type[NNConfig]] = {
    "mf": MFConfig,
    "nnmf": NNMFConfig,
    "nn": NNConfig,
}


def config_params(config: ModelConfig) -> dict[str, Any]:
    """Flat dict of a config's fields (tuples joined), suitable for MLflow params."""
    params: dict[str, Any] = {"arch": config.arch}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        params[f.name] = "-".join(map(str, value)) if isinstance(value, tuple) else value
    return params


@dataclass(frozen=True)
class TrainOptions:
    """How a config is trained, as opposed to what is trained.

    engine "compiled" runs each epoch as one compiled TensorFlow loop (optionally XLA);
    engine "fit" runs a plain Keras `model.fit` on exactly the same batches, the
    reference that the compiled path must match. jit_compile None picks XLA where it was
    measured faster on CPU: on for MF/NNMF (about 5x), off for NN (XLA's dense layers
    were about 20 % slower at batch 32).
    """

    seed: int = 0
    engine: Literal["compiled", "fit"] = "compiled"
    jit_compile: bool | None = None
    eval_batch_size: int = 65536


def use_xla(config: ModelConfig, options: TrainOptions) -> bool:
    if options.jit_compile is not None:
        return options.jit_compile
    return not isinstance(config, NNConfig)


@dataclass(frozen=True)
class SweepSettings:
    """One Optuna study: which architecture, how long, on what data, stored where."""

    arch: str
    n_trials: int = 30
    timeout: float | None = 240.0  # seconds per architecture; None = until n_trials
    split: str = "seed"
    seed: int = 0
    valid_fraction: float = 0.1
    metric: Literal["mae", "rmse"] = "mae"
    pruner: Literal["none", "median", "hyperband"] = "median"
    workers: int = 1
    max_epochs: int | None = None  # cap on sampled epochs; None: the space's own maximum
    trials_per_process: int | None = 25  # recycle worker processes (bounds TF's native memory)
    storage: str | None = None  # default: optuna-journal.log beside the MLflow SQLite file
    tracking_uri: str | None = None
    study_name: str | None = None
    data_dir: str | None = None

    @property
    def name(self) -> str:
        return self.study_name or f"{self.arch}-{self.split}"
