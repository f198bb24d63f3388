"""Per-trial storage overhead of each back end, side by side in one run.

    .ci/services.sh .venv/bin/python benchmarks/storage_overhead.py [--trials N] [--rounds R]

The same N+1 tiny trials (trial 0 and N configs drawn from the MF space, 1 epoch, small
generated data) run as a study, one worker in this process, against:
- local: an Optuna journal file + an MLflow SQLite file (one machine, the default);
- shared: Optuna on PostgreSQL (heartbeats every 10 s) + an MLflow tracking server with
  proxied artifacts (several machines), as `.ci/services.sh` starts them on this machine
  ($BENCH_TEST_PG_URL, $BENCH_TEST_MLFLOW_SERVER).
Training is measured once per config and then replayed (the trial reports the recorded
epochs and gets the recorded result at once), so a trial's seconds are exactly what the
stores cost: Optuna's ask/report/tell, the owner attrs, the MLflow run with its params,
metrics and artifact files, the stale-trial pass after the trial. The back ends alternate
for --rounds rounds; the means are shown, with the real training's seconds for scale.
Not part of the test suite; absolute seconds vary with the machine and its load.
"""

from __future__ import annotations

import quiet  # noqa: F401 - first: before TensorFlow loads

# isort: split
import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

import keras
import numpy as np
import optuna
import pandas as pd

from bench.archs import get_arch
from bench.data import Split, make_split, read_folder
from bench.sweep import study as study_module
from bench.sweep.pool import WorkerJob
from bench.sweep.settings import SweepSettings
from bench.sweep.storage.backends import open_storage
from bench.sweep.study import prepare
from bench.sweep.workers import run_worker
from bench.training.options import TrainOptions
from bench.training.train import TrainResult, train

ARCH = get_arch("mf")


def small_split(folder: Path, users: int = 300, items: int = 400) -> Split:
    """Ratings 1..5 from a rank-2 model plus noise, written as a MovieLens u.data."""
    rng = np.random.default_rng(0)
    user, item = np.nonzero(rng.random((users, items)) < 0.2)
    taste = rng.normal(size=(users, 2)) @ rng.normal(size=(2, items))
    rating = np.clip(np.round(3 + taste[user, item] + rng.normal(0, 0.5, len(user))), 1, 5)
    folder.mkdir()
    frame = pd.DataFrame({"u": user + 1, "i": item + 1, "r": rating.astype(int), "t": 0})
    frame.to_csv(folder / "u.data", sep="\t", header=False, index=False)
    return make_split(read_folder(folder), "seed", seed=0, valid_fraction=0.1)


def configs(n: int) -> list[dict]:
    """Trial 0's parameters and n drawn from the MF space, all at 1 epoch."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: ARCH.suggest(trial, 1) and 0.0, n_trials=n)
    return [ARCH.default_params(max_epochs=1), *(t.params for t in study.trials)]


def record(split, params: list[dict]) -> tuple[dict, float]:
    """Each config's training result, and the seconds per training."""
    options, results = TrainOptions(seed=0), {}
    start = time.perf_counter()
    for values in params:
        keras.backend.clear_session(free_memory=False)  # as each trial does
        config = ARCH.from_params(values)
        results[config] = train(config, split, options)
    return results, (time.perf_counter() - start) / len(params)


def replay(results: dict[object, TrainResult]):
    """A stand-in for train(): the recorded epochs reported, the recorded result returned."""

    def train_again(config, split, options=None, on_epoch_end=None) -> TrainResult:
        result = results[config]
        for epoch in range(len(result.history["train_loss"])):
            if on_epoch_end is not None:
                on_epoch_end(epoch, {k: v[epoch] for k, v in result.history.items()})
        return result

    return train_again


def study_seconds(split, params: list[dict], storage: str, tracking_uri: str) -> float:
    """Seconds per trial of a study running the configs (trial 0 is enqueued by set-up)."""
    settings = SweepSettings(
        arch="mf",
        n_trials=len(params),
        timeout=None,
        pruner="none",
        max_epochs=1,
        storage=storage,
        tracking_uri=tracking_uri,
        study_name=f"overhead-{uuid.uuid4().hex[:8]}",
    )
    prepared = prepare(settings, split)
    study = optuna.load_study(study_name=settings.name, storage=open_storage(storage))
    for values in params[1:]:
        study.enqueue_trial(values)
    start = time.perf_counter()
    run_worker(prepared, split, WorkerJob(0, 0, len(params), None))
    return (time.perf_counter() - start) / len(params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="rounds, back ends alternating")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pg, server = os.environ["BENCH_TEST_PG_URL"] + "bench", os.environ["BENCH_TEST_MLFLOW_SERVER"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        split = small_split(Path(tmp) / "data")
        params = configs(args.trials)
        record(split, params[:2])  # warm-up: imports, first compilation
        results, training = record(split, params)
        study_module.train = replay(results)
        for r in range(args.rounds):
            local = (f"{tmp}/journal-{r}.log", f"sqlite:///{tmp}/mlflow-{r}.db")
            rows.append(
                {
                    "journal + MLflow SQLite": study_seconds(split, params, *local),
                    "PostgreSQL + MLflow server": study_seconds(split, params, pg, server),
                }
            )
    frame = pd.DataFrame(rows).agg(["mean", "min", "max"]).T.rename_axis("back end")
    print(f"{len(params)} trials of 1 epoch x {args.rounds} rounds, {len(split.train):,} ratings")
    print(f"store seconds per trial (real training: {training:.3f} s per trial, not included):")
    print(frame.reset_index().to_string(index=False, float_format="{:.3f}".format))


if __name__ == "__main__":
    main()
