"""The tuner benchmark as a job: every tuner on every fold, logged to MLflow, reported."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from bench.benchmark.nested_tuning import Budget, tuning_split
from bench.benchmark.tuner_report import write_tuner_report
from bench.benchmark.tuners import TunerRun, TunerSpec, run_tuner, warm_up
from bench.data import RatingData, Split, load_dataset, make_split
from bench.sweep.anytime import area
from bench.sweep.stale_trials import pid_alive
from bench.tracking.tracker import Tracker, as_metrics

EXPERIMENT = "tuners"
OWNER_HOST, OWNER_PID = "bench.owner.host", "bench.owner.pid"  # parent-run tags: its process


def _log_run(tracker: Tracker, experiment_id: str, parent_id: str, run: TunerRun, spec) -> None:
    run_id = tracker.start_run(
        experiment_id,
        f"{run.arch}-{run.fold}-{run.sampler}-{run.pruner}-s{run.seed}",
        parent=parent_id,
    )
    name = f"best_val_{spec.metric}"
    metrics = [m for n, b in zip(run.curve.trials, run.curve.best, strict=True) if b == b
               for m in as_metrics({name: b}, step=n)]  # fmt: skip
    params = {"arch": run.arch, "fold": run.fold, "sampler": run.sampler,
              "pruner": run.pruner, "seed": run.seed}  # fmt: skip
    final = {"final": run.curve.best[-1], "area": area(run.curve.best),
             "cpu_seconds": run.curve.seconds[-1]}  # fmt: skip
    tracker.log(run_id, metrics + as_metrics(final), params)
    tracker.end(run_id)


def _splits(spec: TunerSpec, data: RatingData) -> list[Split]:
    budget = Budget(valid_fraction=spec.valid_fraction)
    return [
        tuning_split(data, make_split(data, fold, valid_fraction=0.0), 0, budget)
        for fold in spec.folds
    ]


def run_tuners(spec: TunerSpec, data: RatingData | None = None) -> list[TunerRun]:
    """Every tuner on every architecture and fold, `spec.seeds` sampler seeds each, logged
    to the `tuners` experiment (one parent run, a child run per study)."""
    data = data if data is not None else load_dataset(spec.dataset, spec.data_dir)
    tracker = Tracker(spec.tracking_uri)
    experiment_id = tracker.experiment(EXPERIMENT)
    _close_dead_parents(tracker, experiment_id)
    parent_id = _start_parent(tracker, experiment_id)
    tracker.log(parent_id, params=_spec_params(spec))
    runs = []
    try:
        for split in _splits(spec, data):
            for arch in spec.archs:
                warm_up(split, arch)
                for sampler in spec.samplers:
                    for pruner in spec.pruners:
                        for seed in range(spec.seeds):
                            print(f"{split.name} {arch}: {sampler} / {pruner}, seed {seed} ...")
                            run = run_tuner(split, arch, sampler, pruner, seed, spec)
                            _log_run(tracker, experiment_id, parent_id, run, spec)
                            runs.append(run)
    except BaseException:
        tracker.end(parent_id, "FAILED")
        raise
    spec.report_dir.mkdir(parents=True, exist_ok=True)
    write_tuner_report(spec.report_dir, runs, spec.metric)
    tracker.client.log_artifacts(parent_id, str(spec.report_dir))
    tracker.end(parent_id)
    return runs


def _start_parent(tracker: Tracker, experiment_id: str) -> str:
    """The job's parent run, tagged with its process, so that a rerun can close it when
    that process was killed (kill -9 leaves it RUNNING)."""
    owner = {OWNER_HOST: socket.gethostname(), OWNER_PID: str(os.getpid())}
    return tracker.start_run(experiment_id, f"tuners-{time.strftime('%Y%m%d-%H%M%S')}", tags=owner)


def _close_dead_parents(tracker: Tracker, experiment_id: str) -> None:
    """Close (KILLED) the RUNNING parent runs, and their RUNNING children, whose process on
    this machine is dead; one line each."""
    mine = f"attributes.status = 'RUNNING' and tags.`{OWNER_HOST}` = '{socket.gethostname()}'"
    for run in tracker.client.search_runs([experiment_id], mine):
        pid = int(run.data.tags[OWNER_PID])
        if pid_alive(pid):
            continue  # a tuner benchmark still running here
        children = (
            f"attributes.status = 'RUNNING' and tags.`mlflow.parentRunId` = '{run.info.run_id}'"
        )
        for child in tracker.client.search_runs([experiment_id], children):
            tracker.end(child.info.run_id, "KILLED")
        tracker.end(run.info.run_id, "KILLED")
        print(f"tuners: parent run {run.info.run_id} ({run.info.run_name}) closed (KILLED): "
              f"its process {pid} on {run.data.tags[OWNER_HOST]} died", flush=True)  # fmt: skip


def _spec_params(spec: TunerSpec) -> dict[str, Any]:
    return {
        key: ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        for key, value in vars(spec).items()
        if key not in ("tracking_uri", "data_dir")
    }
