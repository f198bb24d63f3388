"""The settings of one sweep study: which architecture, how long, on what data, stored where."""

from __future__ import annotations

from dataclasses import dataclass

from bench.datasets import get_dataset


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
    sampler: str = "tpe-small"  # a name of bench.sweep.samplers.SAMPLERS
    pruner: str = "median"  # a name of bench.sweep.samplers.PRUNERS
    patience: int | None = 5  # early stopping: epochs without a better validation metric
    workers: int = 1
    max_epochs: int | None = None  # cap on a trial's epochs; None: the space's own maximum
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
        prefix = "" if self.dataset == "ml-100k" else f"{get_dataset(self.dataset).label}-"
        return f"{prefix}{self.arch}-{self.split}"
