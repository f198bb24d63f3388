"""What a benchmark, a tuner benchmark or a replication is asked to do: frozen specs, built
by the command line or a notebook. Light: the commands' flags read their defaults here."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from bench.datasets import DEFAULT

POST_ARCHS = ("mf", "nnmf", "nn")  # the benchmark's default: the seed post's three
DEFAULT_SEEDS = 5  # a data set without canonical folds: this many seeded 80/20 splits
SURPRISE_PEERS = ("svd", "svdpp", "knn_baseline")  # scikit-surprise models (benchmark.peers)
RANKING_PEERS = ("ease", "itemknn", "als", "bpr")  # rankers (benchmark.rankers)
BAYESIAN_PEERS = ("bfm",)  # myFM's Bayesian factorisation machine, fixed in advance (benchmark.bfm)
PEERS = SURPRISE_PEERS + RANKING_PEERS + BAYESIAN_PEERS
QUICK_EPOCHS = 2  # a quick replication: epochs per model


@dataclass(frozen=True)
class Budget:
    """What each (fold, architecture) study may spend."""

    trials: int = 20  # a count, so the configs chosen do not depend on the machine's speed
    # a safety cap per study, off by default: a timeout makes the configs chosen depend on
    # the machine's load (a study it cuts short is marked in the report)
    timeout: float | None = None
    max_epochs: int | None = 50
    valid_fraction: float = 0.1
    pruner: str = "median"
    metric: str = "rmse"  # the validation metric a config is selected on
    sampler: str = "tpe-small"
    patience: int | None = 5
    task: str = "rating"  # bench.training.tasks: what the studies train for

    def __post_init__(self) -> None:
        from bench.training.tasks import task_metric  # light: no TensorFlow

        task_metric(self.task, self.metric)  # one error line if the metric is not the task's

    def digest(self) -> str:
        fields = asdict(self)
        if fields["task"] == "rating":  # the digest rating studies had before tasks
            del fields["task"]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where the configs come from, which folds, which models, and how the run is gated."""

    protocol: Literal["nested", "pinned", "studies"] = "nested"
    configs: Path | None = None  # the pinned-config file (protocol "pinned")
    tune_trials: int = Budget.trials
    tune_timeout: float | None = Budget.timeout  # seconds per fold and architecture; 0: none
    valid_fraction: float = Budget.valid_fraction
    metric: str = Budget.metric  # the validation metric nested tuning selects on
    task: str = Budget.task  # what the architectures train for: rating or ranking
    workers: int = 1  # (fold, architecture) studies run at once, each in its own process
    peers: tuple[str, ...] = ()  # peers tuned with the same budget (bfm: fixed in advance)
    ensembles: int = 0  # members per architecture of the ensemble rows (0: no ensembles)
    study_split: str = "seed"  # protocol "studies": the split of the sweep studies read
    storage: str | None = None
    dataset: str = DEFAULT
    archs: tuple[str, ...] = POST_ARCHS
    folds: tuple[str, ...] = ()  # empty: the data set's benchmark folds
    seeds: int = 0  # N seeded splits instead of folds
    baseline: Path | None = None  # results.csv of an earlier run to gate against
    promote: bool = False  # make this run the reference later runs are gated against
    min_delta: float = 0.005
    report_dir: Path = Path("reports/benchmark")
    max_epochs: int | None = None
    seed: int = 0
    data_dir: str | None = None
    tracking_uri: str | None = None


@dataclass(frozen=True)
class TunerSpec:
    """Which tuners to compare, on what, for how long, and where the results go."""

    archs: tuple[str, ...] = ("mf",)
    folds: tuple[str, ...] = ("u1",)
    samplers: tuple[str, ...] = ("random", "tpe", "tpe-small", "qmc")
    pruners: tuple[str, ...] = ("median",)
    seeds: int = 3  # sampler seeds per tuner
    trials: int = 24
    metric: str = Budget.metric
    max_epochs: int = 50
    patience: int | None = Budget.patience
    valid_fraction: float = Budget.valid_fraction
    dataset: str = DEFAULT
    data_dir: str | None = None
    tracking_uri: str | None = None
    report_dir: Path = Path("reports/tuners")


@dataclass(frozen=True)
class ReplicationSpec:
    """Which data, seed, engine and store the replication uses; quick: a few epochs each."""

    dataset: str = DEFAULT
    data_dir: str | None = None
    seed: int = 0
    engine: Literal["compiled", "fit"] = "compiled"
    tracking_uri: str | None = None
    quick: bool = False
