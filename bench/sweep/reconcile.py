"""Trials of stopped processes, failed in both stores: Optuna's trial and its MLflow run.

A process killed mid-trial (kill -9, a lost machine, an interrupt that came before the
trial could be marked) leaves its trial RUNNING in Optuna and the trial's MLflow run
RUNNING. `Reconciler.run` is the one pass that finds them:

1. in Optuna: running trials of dead processes on this host (their `host`/`pid` user
   attrs, set by every trial), of this invocation's own finished processes (`mine`),
   and, on a database with heartbeats, of any host whose heartbeat is older than the
   grace period (the latter are retried once, as Optuna does);
2. in MLflow: the runs of those trials, and every RUNNING trial run whose Optuna trial
   has failed meanwhile (Optuna's own heartbeat check, run before each new trial by any
   worker, fails trials without touching MLflow): each becomes FAILED with tag
   trial_state=FAIL and an `error` tag naming the host, the process and the reason;
3. with full=True (at set-up and when an invocation ends), a failed trial that never got
   its MLflow run (interrupted between Optuna's ask and the run's creation) gets a
   FAILED one, so that every trial is exactly one MLflow run.

The sweep runs the pass when an invocation starts, after every trial in every worker,
when a worker process dies, and when the invocation ends; `bench study repair` runs it
on demand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Event

import optuna
from mlflow.exceptions import MlflowException
from optuna.exceptions import StorageInternalError
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

from bench.errors import BenchError, StoreFull, disk_full, one_line
from bench.sweep.descriptions import trial_run_name
from bench.sweep.invocations import live_others
from bench.sweep.progress import say
from bench.sweep.settings import REGISTERS_ATTR
from bench.sweep.stale_trials import (
    fail_heartbeat_stale_trials,
    fail_trial,
    grace_period_of,
    has_heartbeats,
    pid_alive,
    stale_trials,
)
from bench.sweep.storage.urls import redact
from bench.sweep.summary import log_study_summary
from bench.tracking.tracker import Tracker

RUNNING_RUNS = "attributes.status = 'RUNNING'"
MAX_RUNS = 1000
PASS_ERRORS = (MlflowException, SQLAlchemyError, StorageInternalError, OSError, BenchError)


@dataclass(frozen=True)
class Repair:
    """One trial failed in both stores by the pass."""

    number: int
    reason: str
    run_id: str | None

    def line(self, study: str) -> str:
        run = f"MLflow run {self.run_id}" if self.run_id else "no MLflow run"
        return f"{study}: trial {self.number} marked FAIL ({run} FAILED): {self.reason}"


def owner(trial: FrozenTrial) -> str:
    """Who ran the trial, as far as the trial says (a process killed before it wrote its
    owner leaves none)."""
    attrs = trial.user_attrs
    if "pid" not in attrs:
        return "a process that died before recording itself"
    return f"process {attrs['pid']} on {attrs.get('host', 'an unknown host')}"


class Reconciler:
    """The stale-trial pass over one study and its MLflow experiment."""

    def __init__(self, study: optuna.Study, tracker: Tracker, experiment_id: str):
        self.study = study
        self.tracker = tracker
        self.experiment_id = experiment_id

    def run(self, mine: frozenset[int] = frozenset(), full: bool = False) -> list[Repair]:
        """Fail stale trials in Optuna, then close their MLflow runs; what was repaired."""
        failed = self._fail_in_optuna(mine)
        repairs = [self._close(trial, reason) for trial, reason in failed]
        done = {trial.number for trial, _ in failed}
        repairs += self._close_orphaned_runs(done)
        if full:
            repairs += self._backfill(done | {r.number for r in repairs})
        return repairs

    def _fail_in_optuna(self, mine: frozenset[int]) -> list[tuple[FrozenTrial, str]]:
        failed = []
        for trial in stale_trials(self.study, mine=mine):
            if fail_trial(self.study, trial):
                alive = pid_alive(trial.user_attrs["pid"])
                failed.append((trial, f"{owner(trial)} {'stopped' if alive else 'died'}"))
        grace = grace_period_of(self.study)
        for trial in fail_heartbeat_stale_trials(self.study):
            failed.append((trial, f"heartbeat lost: {owner(trial)} sent none for {grace} s"))
        return failed

    def _close(self, trial: FrozenTrial, reason: str) -> Repair:
        run_id = trial.user_attrs.get("mlflow_run_id") or self._find_run(trial.number)
        if run_id:
            self._fail_run(run_id, trial.number, reason)
        else:
            run_id = self._create_failed_run(trial.number, reason)
        return Repair(trial.number, reason, run_id)

    def _fail_run(self, run_id: str, number: int, reason: str) -> None:
        """FAILED, named as the objective names a failed trial's run in the runs table."""
        tags = {"trial_state": "FAIL", "error": reason}
        self.tracker.log(run_id, tags={**tags, "mlflow.runName": trial_run_name(number, "FAIL")})
        self.tracker.end(run_id, "FAILED")

    def _close_orphaned_runs(self, done: set[int]) -> list[Repair]:
        """RUNNING trial runs whose Optuna trial failed without them (a heartbeat check)."""
        repairs = []
        runs = self.tracker.client.search_runs(
            [self.experiment_id],
            f"{RUNNING_RUNS} and tags.study = '{self.study.study_name}'",
            max_results=MAX_RUNS,
        )
        for run in runs:
            number = run.data.tags.get("trial_number")
            if number is None or int(number) in done:
                continue
            trial = self._trial(int(number))
            if trial is None or trial.state != TrialState.FAIL:
                continue
            reason = f"{owner(trial)} stopped before closing its run"
            if has_heartbeats(self.study):
                reason = f"heartbeat lost: {owner(trial)} stopped beating"
            self._fail_run(run.info.run_id, trial.number, reason)
            repairs.append(Repair(trial.number, reason, run.info.run_id))
        return repairs

    def _backfill(self, done: set[int]) -> list[Repair]:
        """A FAILED run for each failed trial that never got one."""
        repairs = []
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            if trial.number in done or "mlflow_run_id" in trial.user_attrs:
                continue
            if self._find_run(trial.number) is None:
                reason = "stopped before its MLflow run was created"
                run_id = self._create_failed_run(trial.number, reason)
                repairs.append(Repair(trial.number, reason, run_id))
        return repairs

    def _trial(self, number: int) -> FrozenTrial | None:
        storage = self.study._storage
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
        except KeyError:
            return None
        return storage.get_trial(trial_id)

    def _find_run(self, number: int) -> str | None:
        runs = self.tracker.client.search_runs(
            [self.experiment_id],
            f"tags.trial_number = '{number}' and tags.study = '{self.study.study_name}'",
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def _create_failed_run(self, number: int, reason: str) -> str:
        tags = {"trial_number": str(number), "study": self.study.study_name}
        run_id = self.tracker.start_run(
            self.experiment_id,
            trial_run_name(number),
            parent=self.study.user_attrs.get("mlflow_parent_run_id"),
            tags=tags,
        )
        self._fail_run(run_id, number, reason)
        return run_id


def after_trial_pass(
    reconciler: Reconciler, stop: Event | None = None
) -> Callable[[optuna.Study, FrozenTrial], None]:
    """An Optuna callback: the pass after each trial (a failing store only costs a line:
    the next pass tries again), and the end of the worker once `stop` is set."""

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if stop is not None and stop.is_set():
            study.stop()
        try:
            repairs = reconciler.run()
        except PASS_ERRORS as exc:
            if disk_full(exc):  # the next trial could not be recorded either
                raise StoreFull(one_line(exc)) from exc
            say(f"{study.study_name}: stale-trial pass skipped ({type(exc).__name__}: {exc})")
            return
        for repair in repairs:
            say(repair.line(study.study_name))

    return callback


def repair_study(storage, url: str, tracker: Tracker, name: str) -> list[str]:
    """Repair one study; the lines saying what was done."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise BenchError(f"no study {name!r} in {redact(url)}; pass another --study") from None
    experiment_id = _experiment_of(study, tracker)
    if experiment_id is None:
        return [f"{name}: neither its parent run nor an MLflow experiment of its name is in "
                f"{tracker.uri}; left as it is (pass the study's --tracking-uri)"]  # fmt: skip
    repairs = Reconciler(study, tracker, experiment_id).run(full=True)
    lines = [repair.line(name) for repair in repairs]
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if running:
        numbers = ", ".join(str(t.number) for t in running)
        lines.append(f"{name}: trial {numbers} still running (live processes, or hosts whose "
                     "heartbeat is within the grace period)")  # fmt: skip
    lines += _close_parent(study, tracker, running)
    return lines or [f"{name}: nothing to repair"]


def _experiment_of(study: optuna.Study, tracker: Tracker) -> str | None:
    """The MLflow experiment of a study's runs (they carry its `study` tag): its parent
    run's, which several studies may share (the benchmark's `nested-tuning`), else the
    experiment it was made for."""
    parent = study.user_attrs.get("mlflow_parent_run_id")
    if parent:
        try:
            return tracker.client.get_run(parent).info.experiment_id
        except MlflowException:  # a parent run of another store, or deleted: by name then
            pass
    name = study.user_attrs.get("experiment") or study.study_name
    experiment = tracker.client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else None


def _close_parent(study: optuna.Study, tracker: Tracker, running: list) -> list[str]:
    """Close a parent run that a killed invocation left RUNNING, once nothing runs and no
    invocation is alive (one starting up or between trials runs no trial)."""
    run_id = study.user_attrs.get("mlflow_parent_run_id")
    if running or not run_id or tracker.client.get_run(run_id).info.status != "RUNNING":
        return []
    if live := live_others(study):
        return [f"{study.study_name}: parent run {run_id} left RUNNING: invocation "
                f"{', '.join(live)} alive"]  # fmt: skip
    log_study_summary(tracker, run_id, study, register=study.user_attrs.get(REGISTERS_ATTR, True))
    tracker.end(run_id, "KILLED")
    return [f"{study.study_name}: parent run {run_id} closed (KILLED): no trial runs"]
