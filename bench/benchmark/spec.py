"""What one benchmark run is asked to do: a frozen spec, built by the command line or a notebook."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.benchmark.nested_tuning import Budget
from bench.datasets import DEFAULT

POST_ARCHS = ("mf", "nnmf", "nn")  # the benchmark's default: the seed post's three
DEFAULT_SEEDS = 5  # a data set without canonical folds: this many seeded 80/20 splits


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where the configs come from, which folds, which models, and how the run is gated."""

    protocol: Literal["nested", "pinned", "studies"] = "nested"
    configs: Path | None = None  # the pinned-config file (protocol "pinned")
    tune_trials: int = Budget.trials
    tune_timeout: float | None = Budget.timeout  # seconds per fold and architecture; 0: none
    valid_fraction: float = Budget.valid_fraction
    metric: str = Budget.metric  # the validation metric nested tuning selects on
    peers: tuple[str, ...] = ()  # scikit-surprise peers tuned with the same budget
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
