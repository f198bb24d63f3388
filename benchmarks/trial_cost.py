"""Where a sweep trial's time goes: training (compilation apart) against the MLflow and
Optuna records, summed over one study run in this process.

    BENCH_DATA_DIR=../shared/data/ml-100k python benchmarks/trial_cost.py mf 30 20

(architecture, trials, epoch cap). Prints seconds, calls and share of the trials' time for
each part, and how often a compiled runner was reused. Not part of the test suite.
"""

from __future__ import annotations

import quiet  # noqa: F401 - first: before TensorFlow loads

# isort: split
import collections
import functools
import sys
import tempfile
import time
from pathlib import Path

import bench.sweep.objective as objective
import bench.tracking.tracker as tracker
from bench.data import load_dataset, make_split
from bench.sweep.settings import SweepSettings
from bench.sweep.workers import run_study
from bench.training.compiled import RUNNERS

SPENT: collections.Counter = collections.Counter()
CALLS: collections.Counter = collections.Counter()


def timed(owner, name: str, label: str) -> None:
    """Replace owner.name by a wrapper that adds its seconds and calls under `label`."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT[label] += time.perf_counter() - start
            CALLS[label] += 1

    setattr(owner, name, wrapper)


def count_training() -> None:
    """Training per trial, with its first epoch's excess (tracing and compiling) apart."""
    original = objective.train

    def train(*args, **kwargs):
        start = time.perf_counter()
        try:
            result = original(*args, **kwargs)
        except BaseException:  # pruned (or failed) mid-training
            SPENT["train, pruned trials"] += time.perf_counter() - start
            CALLS["train, pruned trials"] += 1
            raise
        SPENT["train, finished trials"] += time.perf_counter() - start
        CALLS["train, finished trials"] += 1
        SPENT["  of which compiling"] += result.compile_seconds
        SPENT["  of which steady epochs"] += result.train_seconds
        return result

    objective.train = train


def main() -> None:
    arch, trials, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for name in ("start_run", "log_config", "log_training", "log", "log_figure", "end"):
        timed(tracker.Tracker, name, f"MLflow: Tracker.{name}")
    timed(objective, "log_rating_model", "MLflow: log_rating_model")
    timed(objective, "embedding_figure", "figure: embedding_figure")
    timed(objective.Objective, "__call__", "trials")
    count_training()
    folder = Path(tempfile.mkdtemp())
    data = load_dataset("ml-100k")
    split = make_split(data, "seed", seed=0, valid_fraction=0.1)
    settings = SweepSettings(
        arch=arch, n_trials=trials, timeout=None, max_epochs=epochs,
        storage=str(folder / "journal.log"), tracking_uri=f"sqlite:///{folder}/mlflow.db",
        trials_per_process=None,  # in this process, so the wrappers see every call
    )  # fmt: skip
    start = time.perf_counter()
    run_study(settings, split)
    wall = time.perf_counter() - start
    total = SPENT["trials"]
    print(f"{arch}: {CALLS['trials']} trials, {wall:.1f} s wall, {total:.1f} s in trials")
    print(f"compiled runners: {RUNNERS.hits} reused, {RUNNERS.misses} built")
    for label, seconds in SPENT.most_common():
        share = 100 * seconds / total
        calls = f"{CALLS[label]:5d} calls" if CALLS[label] else ""
        print(f"{label:32s} {seconds:7.2f} s {calls:>11s} {share:5.1f} %")


if __name__ == "__main__":
    main()
