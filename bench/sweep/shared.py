"""One study run by several invocations at once (several machines, or one twice).

- `SweepControl` (in `bench.sweep.settings`): what an invocation adds to its
  `SweepSettings` for that: the study-wide trial budget and the heartbeat settings.
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

import optuna
from optuna.distributions import distribution_to_json
from optuna.trial import TrialState

from bench.archs import Arch

COUNTED = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def counted(study: optuna.Study) -> int:
    """Trials that count against the study-wide budget."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def budget_left(study: optuna.Study, study_trials: int | None) -> bool:
    return study_trials is None or counted(study) < study_trials


def drop_unrunnable_retries(study: optuna.Study, study_trials: int | None) -> list[int]:
    """Once the study-wide budget is spent no invocation starts another trial, so a queued
    retry of a heartbeat-lost trial would wait for ever: fail it (numbers returned). Queued
    starting points (the priors) stay queued for an invocation with a budget."""
    if budget_left(study, study_trials):
        return []
    dropped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if "failed_trial" not in trial.system_attrs:  # Optuna's mark of a retry
            continue
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


def space_version(arch: Arch) -> str:
    """A fingerprint of the parameters and ranges the space offers on its default path
    (the published settings, at the space's own epoch limit): a changed range, choice or
    parameter name changes it. Parameters only a non-default branch asks for (an NN's
    fourth layer) are not covered. The starting points (trial 0, the priors) are part of it."""
    trial = optuna.trial.FixedTrial(arch.default_params())
    arch.suggest(trial, arch.max_epochs)
    space = {name: distribution_to_json(d) for name, d in sorted(trial.distributions.items())}
    text = json.dumps({**space, **arch.start_params()}, sort_keys=True, default=str)
    return f"{arch.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
