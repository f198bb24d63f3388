"""The settings of one sweep study (which architecture, how long, on what data, stored
where) and of an invocation that shares it with others. Light: the commands' flags read
their defaults here."""

from __future__ import annotations

from dataclasses import dataclass, fields

from bench.datasets import get_dataset

DEFAULT_HEARTBEAT_S = 10
DEFAULT_GRACE_S = 30
DEFAULT_TOLERANCE_S = 120.0  # seconds a database outage is waited out
REGISTERS_ATTR = "bench.registers_champion"  # study user attr: closing its parent registers


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
    metric: str = "mae"  # a tunable metric of bench.metrics, of the task's kind
    task: str = "rating"  # a name of bench.training.tasks.TASKS
    sampler: str = "tpe-small"  # a name of bench.sweep.samplers.SAMPLERS
    pruner: str = "median"  # a name of bench.sweep.samplers.PRUNERS
    patience: int | None = 5  # early stopping: epochs without a better validation metric
    workers: int = 1
    max_epochs: int | None = None  # cap on a trial's epochs; None: the space's own maximum
    trials_per_process: int | None = 25  # recycle worker processes (bounds TF's native memory)
    storage: str | None = None  # default: optuna-journal.log beside the MLflow SQLite file
    tracking_uri: str | None = None
    study_name: str | None = None
    experiment: str | None = None  # the MLflow experiment; None: one named after the study
    sparse_updates: bool = False  # row-sparse Adam on embedding tables (TrainOptions)
    register_champion: bool = True  # nested tuning's per-fold studies register none
    resumable: bool = True  # a rerun adds trials (nested tuning reuses a finished study)
    data_dir: str | None = None

    def __post_init__(self) -> None:
        from bench.training.tasks import task_metric  # light: no TensorFlow

        task_metric(self.task, self.metric)  # one error line if the metric is not the task's

    @property
    def direction(self) -> str:
        """The study's direction: the selection metric's own."""
        from bench.metrics import lower_is_better  # light: no TensorFlow

        return "minimize" if lower_is_better(self.metric) else "maximize"

    @property
    def experiment_name(self) -> str:
        """The MLflow experiment the study's runs go to."""
        return self.experiment or self.name

    @property
    def name(self) -> str:
        """The study's name: --study-name, else one made of its identity (ARCH-SPLIT, then a
        part for each identity setting off its default), so differently set runs of one
        folder make different studies (`mf-seed` and the first look's `mf-seed-e10`)."""
        if self.study_name:
            return self.study_name
        prefix = "" if self.dataset == "ml-100k" else f"{get_dataset(self.dataset).label}-"
        return "-".join([f"{prefix}{self.arch}-{self.split}", *self._name_parts()])

    def _name_parts(self) -> list[str]:
        """A name part for each identity setting that differs from the default."""
        from bench.training.tasks import get_task

        default = {f.name: f.default for f in fields(SweepSettings)}
        default["metric"] = get_task(self.task).metric  # the task's own names no part
        return [
            part(getattr(self, key))
            for key, part in NAME_PARTS.items()
            if getattr(self, key) != default[key]
        ]


NAME_PARTS = {  # identity setting -> its part of a default study name, when not the default
    "task": str,
    "max_epochs": lambda epochs: f"e{epochs}",
    "metric": str,
    "seed": lambda seed: f"s{seed}",
    "valid_fraction": lambda fraction: f"v{fraction:g}",
    "sampler": str,
    "pruner": lambda pruner: f"pruner-{pruner}",
    "patience": lambda patience: f"patience-{patience or 'off'}",
    "sparse_updates": lambda _: "sparse",
    "experiment": lambda experiment: f"in-{experiment}",
}


@dataclass(frozen=True)
class SweepControl:
    """How this invocation shares its study with others.

    study_trials: stop once the study holds that many started trials (None: no study-wide
    limit; `SweepSettings.n_trials` is this invocation's own share either way).
    heartbeat_interval: seconds between a running trial's heartbeats on a database storage
    (None: DEFAULT_HEARTBEAT_S there, none on a journal file, which has no heartbeats).
    grace_period: seconds without a heartbeat after which any process fails the trial.
    """

    study_trials: int | None = None
    heartbeat_interval: int | None = None
    grace_period: int = DEFAULT_GRACE_S
    outage_tolerance: float = DEFAULT_TOLERANCE_S  # seconds a database outage is waited out

    def heartbeat(self, storage_url: str) -> tuple[int | None, int | None]:
        """(interval, grace period) for open_storage; an explicit interval on a journal is
        passed on, for open_storage to refuse."""
        from bench.sweep.storage.urls import is_database  # SQLAlchemy: not for `--help`

        interval = self.heartbeat_interval
        if interval is None and is_database(storage_url):
            interval = DEFAULT_HEARTBEAT_S
        return interval, (self.grace_period if interval is not None else None)
