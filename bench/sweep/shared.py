"""One study run by several invocations at once (several machines, or one twice).

- `SweepControl`: what an invocation adds to its `SweepSettings` for that: the study-wide
  trial budget and the heartbeat settings of a database storage.
- The budget: every trial that has started counts (RUNNING, COMPLETE, PRUNED, FAIL; a
  queued retry counts once it starts), so a killed trial is paid for and a set-up that
  fails every trial still ends. `--study-trials N` stops every invocation once N trials
  have started; since a trial is only checked for between trials, invocations that start
  trials at the same instant can take the study to N + (workers running at once - 1).
- Sampler streams: the invocation that creates a study draws from the plain --seed
  stream (a fresh study with one invocation is reproducible); an invocation that joins an
  existing study mixes in its host, process id and start time, so invocations started at
  the same instant never replay each other's random draws.
- `space_version`: a fingerprint of an architecture's search space, stored with the study
  so that an invocation with a changed space cannot join it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass

import optuna
from optuna.distributions import distribution_to_json
from optuna.trial import TrialState

from bench.archs import Arch
from bench.sweep.storage.outages import DEFAULT_TOLERANCE_S
from bench.sweep.storage.urls import is_database

COUNTED = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
DEFAULT_HEARTBEAT_S = 10
DEFAULT_GRACE_S = 30


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
        interval = self.heartbeat_interval
        if interval is None and is_database(storage_url):
            interval = DEFAULT_HEARTBEAT_S
        return interval, (self.grace_period if interval is not None else None)


def counted(study: optuna.Study) -> int:
    """Trials that count against the study-wide budget."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def budget_left(study: optuna.Study, study_trials: int | None) -> bool:
    return study_trials is None or counted(study) < study_trials


def drop_unrunnable_retries(study: optuna.Study, study_trials: int | None) -> list[int]:
    """Once the study-wide budget is spent no invocation starts another trial, so a queued
    retry of a heartbeat-lost trial would wait for ever: fail it (numbers returned)."""
    if budget_left(study, study_trials):
        return []
    dropped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        study._storage.set_trial_user_attr(trial._trial_id, "dropped", "study budget spent")
        if study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            dropped.append(trial.number)
    return dropped


def budget_callbacks(study_trials: int | None) -> list:
    """Optuna's MaxTrialsCallback over the counted states (none without a budget)."""
    if study_trials is None:
        return []
    return [optuna.study.MaxTrialsCallback(study_trials, states=COUNTED)]


def invocation_stream(created: bool) -> tuple:
    """The sampler stream of this invocation: plain for the study's creator, else mixed
    with host, process id and start time."""
    if created:
        return (0,)
    return (socket.gethostname(), os.getpid(), time.time_ns())


def sampler_seed(seed: int, stream: tuple) -> int:
    """A 32-bit seed from the user's seed and a stream. hash() of integers is the same in
    every process and release (the creator's draws are reproducible); a joiner's stream
    holds its host name, whose hash Python also randomises per process."""
    return hash((seed, *stream)) % 2**32


def space_version(arch: Arch) -> str:
    """A fingerprint of the parameters and ranges the space offers on its default path
    (the published settings, at the space's own epoch limit): a changed range, choice or
    parameter name changes it. Parameters only a non-default branch asks for (an NN's
    fourth layer) are not covered."""
    trial = optuna.trial.FixedTrial(arch.default_params())
    arch.suggest(trial, arch.max_epochs)
    space = {name: distribution_to_json(d) for name, d in sorted(trial.distributions.items())}
    text = json.dumps(space, sort_keys=True)
    return f"{arch.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
