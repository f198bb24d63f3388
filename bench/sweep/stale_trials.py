"""Running trials whose process is gone: found by owner pid or lost heartbeat, and failed."""

from __future__ import annotations

import copy
import os
import socket
from collections.abc import Callable, Collection
from pathlib import Path

import optuna
from optuna.exceptions import (
    UpdateFinishedTrialError,
)
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

OWNED_ATTRS = ("host", "pid", "mlflow_run_id")  # a trial's owner process and MLflow run


def trial_owner_attrs() -> dict[str, str | int]:
    """User attrs for the objective to set on each trial, for fail_stale_trials."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def fail_stale_trials(
    study: optuna.Study,
    is_alive: Callable[[int], bool] = pid_alive,
    mine: Collection[int] = (),
) -> list[int]:
    """Set FAIL on running trials owned by dead processes on this host; their numbers.

    For storages without heartbeats (the journal file): a trial's owner is known from the
    user attrs of `trial_owner_attrs()`; trials without them, or of other hosts, are left.
    Trials of the processes in `mine` (this invocation's, all done) fail even if alive.
    """
    return [t.number for t in stale_trials(study, is_alive, mine) if fail_trial(study, t)]


def stale_trials(
    study: optuna.Study,
    is_alive: Callable[[int], bool] = pid_alive,
    mine: Collection[int] = (),
) -> list[FrozenTrial]:
    """The running trials that `fail_stale_trials` would fail, as they are now."""
    host = socket.gethostname()
    stale = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") != host or not isinstance(pid, int):
            continue
        if pid in mine or not is_alive(pid):
            stale.append(trial)
    return stale


def fail_trial(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Set FAIL on a running trial; False if it finished meanwhile (or another process
    failed it first)."""
    try:
        return bool(study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL))
    except UpdateFinishedTrialError:
        return False


def has_heartbeats(study: optuna.Study) -> bool:
    return is_heartbeat_enabled(study._storage)


def grace_period_of(study: optuna.Study) -> int | None:
    """The storage's grace period in seconds (Optuna's default: two heartbeat intervals)."""
    storage = study._storage
    if not is_heartbeat_enabled(storage):
        return None
    backend = getattr(storage, "_backend", storage)  # RDB storages come wrapped in a cache
    return getattr(backend, "grace_period", None) or 2 * storage.get_heartbeat_interval()


def fail_heartbeat_stale_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Optuna's `fail_stale_trials`, returning the trials this call failed (as they were
    while running, with their owner attrs) after running the storage's retry callback."""
    storage = study._storage
    if not isinstance(storage, BaseHeartbeat) or not is_heartbeat_enabled(storage):
        return []
    failed = []
    for trial_id in storage._get_stale_trial_ids(study._study_id):
        trial = storage.get_trial(trial_id)
        if trial.state == TrialState.RUNNING and fail_trial(study, trial):
            failed.append(trial)
    retry = storage.get_heartbeat_stale_trial_callback()
    for trial in failed if retry is not None else ():
        retry(study, copy.deepcopy(storage.get_trial(trial._trial_id)))
    return failed
