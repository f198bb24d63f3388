"""Run settings, as opposed to what is trained (the architectures' configs live in
`bench.archs`, one module each)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


@dataclass(frozen=True)
class TrainOptions:
    """How a config is trained, as opposed to what is trained.

    engine "compiled" runs each epoch as one compiled TensorFlow loop (optionally XLA);
    engine "fit" runs a plain Keras `model.fit` on exactly the same batches, the
    reference that the compiled path must match. jit_compile None takes the
    architecture's declared default (`Arch.jit_compile`: where XLA measured faster).
    sparse_updates (compiled engine, Adam) updates only the embedding rows of each batch,
    so a step's cost follows the batch and not the table size (`bench.sparse.LazyAdam`).
    """

    seed: int = 0
    engine: Literal["compiled", "fit"] = "compiled"
    jit_compile: bool | None = None
    eval_batch_size: int = 65536
    sparse_updates: bool = False  # row-sparse Adam on embedding tables (bench.sparse)


@dataclass(frozen=True)
class SweepSettings:
    """One Optuna study: which architecture, how long, on what data, stored where."""

    arch: str
    dataset: str = "ml-100k"
    n_trials: int = 30
    timeout: float | None = 240.0  # seconds per architecture; None = until n_trials
    split: str = "seed"
    seed: int = 0
    valid_fraction: float = 0.1
    metric: str = "mae"  # a tunable metric of bench.metrics
    pruner: Literal["none", "median", "hyperband"] = "median"
    workers: int = 1
    max_epochs: int | None = None  # cap on sampled epochs; None: the space's own maximum
    trials_per_process: int | None = 25  # recycle worker processes (bounds TF's native memory)
    storage: str | None = None  # default: optuna-journal.log beside the MLflow SQLite file
    tracking_uri: str | None = None
    study_name: str | None = None
    sparse_updates: bool = False  # row-sparse Adam on embedding tables (TrainOptions)
    register_champion: bool = True  # nested tuning's per-fold studies register none
    data_dir: str | None = None

    @property
    def name(self) -> str:
        if self.study_name:
            return self.study_name
        prefix = "" if self.dataset == "ml-100k" else f"{self.dataset}-"
        return f"{prefix}{self.arch}-{self.split}"
