"""`bench study repair`: fail, in both stores, the trials that stopped processes left running.

    bench study repair --storage URL --tracking-uri URI [--study NAME] [--grace-period S]

For each study (all in the storage unless --study), the trials RUNNING in Optuna whose
process on this machine is dead, and on a database storage those of any machine whose
heartbeat is older than the grace period, become FAIL in Optuna and FAILED in MLflow
with an `error` tag; RUNNING MLflow trial runs of failed trials are closed the same way.
A parent run left RUNNING by a killed invocation is closed (KILLED, with the study's
summary) once no trial of the study runs. Prints one line per thing it did.
"""

from __future__ import annotations

import argparse

import optuna
from optuna.trial import TrialState

from bench.errors import BenchError
from bench.fleet import DEFAULT_GRACE_S
from bench.report import log_study_summary
from bench.stale import Reconciler
from bench.storage import is_database, open_storage, redact, resolve_storage, storage_errors
from bench.tracking import Tracker, resolve_tracking_uri


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench study", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    repair = commands.add_parser("repair", help="fail trials that stopped processes left running")
    repair.add_argument(
        "--storage",
        help="Optuna storage (default: $BENCH_STORAGE, else optuna-journal.log beside the "
        "MLflow SQLite file)",
    )
    repair.add_argument("--tracking-uri", help="MLflow store (default: sqlite:///mlflow.db)")
    repair.add_argument("--study", help="one study (default: every study in the storage)")
    repair.add_argument(
        "--grace-period",
        type=int,
        default=DEFAULT_GRACE_S,
        help="on a database: fail trials whose last heartbeat is older than this (seconds)",
    )
    args = parser.parse_args(argv)
    if args.grace_period < 1:
        raise BenchError("--grace-period must be at least 1 second")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    url = resolve_storage(args.storage, tracking_uri)
    heartbeat = (1, args.grace_period) if is_database(url) else (None, None)
    storage = open_storage(url, *heartbeat)
    with storage_errors(url):
        names = [args.study] if args.study else optuna.get_all_study_names(storage)
    tracker = Tracker(tracking_uri)
    for name in names:
        for line in repair_study(storage, url, tracker, name):
            print(line)
    return 0


def repair_study(storage, url: str, tracker: Tracker, name: str) -> list[str]:
    """Repair one study; the lines saying what was done."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise BenchError(f"no study {name!r} in {redact(url)}; pass another --study") from None
    experiment = tracker.client.get_experiment_by_name(name)
    if experiment is None:
        return [f"{name}: no MLflow experiment of that name in {tracker.uri}; left as it is"]
    repairs = Reconciler(study, tracker, experiment.experiment_id).run(full=True)
    lines = [repair.line(name) for repair in repairs]
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if running:
        numbers = ", ".join(str(t.number) for t in running)
        lines.append(f"{name}: trial {numbers} still running (live processes, or hosts whose "
                     "heartbeat is within the grace period)")  # fmt: skip
    lines += _close_parent(study, tracker, running)
    return lines or [f"{name}: nothing to repair"]


def _close_parent(study: optuna.Study, tracker: Tracker, running: list) -> list[str]:
    """Close a parent run that a killed invocation left RUNNING, once nothing runs."""
    run_id = study.user_attrs.get("mlflow_parent_run_id")
    if running or not run_id or tracker.client.get_run(run_id).info.status != "RUNNING":
        return []
    log_study_summary(tracker, run_id, study)
    tracker.end(run_id, "KILLED")
    return [f"{study.study_name}: parent run {run_id} closed (KILLED): no trial runs"]
