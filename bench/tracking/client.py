"""The MLflow client every tracker holds: MLflow's own, with writes that survive another
writer's race for the same new key.

Invocations that share a study write the same parent run at the end (the best trial's tags,
the description), tag the same trial runs (`best_trial`, the run name), describe the same
experiment and log the same split as its data sets as they start, and may register the same
champion version. When two of them insert one new key at the same instant, the store's
unique key refuses one insert: PostgreSQL's `UniqueViolation`, SQLite's `UNIQUE constraint
failed`, which an MLflow server returns as BAD_REQUEST, and MLflow's client does not retry.
Written again, the row exists and the write updates or reuses it, so the loser writes again
after a short pause. Every other error is raised as it comes.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

RACE_MARKERS = ("UniqueViolation", "duplicate key value", "UNIQUE constraint failed")
RACE_TRIES = 6  # writes of one call; a race is lost to one other writer at a time
RACE_PAUSE_S = 0.05  # the first pause; doubled each time, with jitter


def lost_a_race(exc: BaseException) -> bool:
    """Whether the store refused a write because another writer inserted the same key."""
    return isinstance(exc, MlflowException) and any(m in str(exc) for m in RACE_MARKERS)


def raced(write: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """write(*args, **kwargs), written again after a pause while it loses a unique-key race
    (at most RACE_TRIES writes)."""
    for attempt in range(RACE_TRIES - 1):
        try:
            return write(*args, **kwargs)
        except MlflowException as exc:
            if not lost_a_race(exc):
                raise
        time.sleep(RACE_PAUSE_S * 2**attempt * random.uniform(0.5, 1.0))
    return write(*args, **kwargs)  # the last try: its error, if any, is the caller's


# the writes that insert a row under a unique key (a run's tag or name, an experiment's tag,
# a data set of an experiment, a model version's tag, a registered model's alias)
KEYED_WRITES = (
    "set_tag",
    "log_batch",
    "update_run",
    "set_experiment_tag",
    "log_inputs",
    "set_model_version_tag",
    "set_registered_model_alias",
)


class SharedClient(MlflowClient):
    """MLflow's client whose KEYED_WRITES are written again when they lose a unique-key
    race (module docstring)."""


def _raced_write(name: str) -> Callable[..., Any]:
    """SharedClient's `name`: MlflowClient's, through `raced`."""

    @functools.wraps(getattr(MlflowClient, name))
    def write(self: SharedClient, *args: Any, **kwargs: Any) -> Any:
        return raced(getattr(super(SharedClient, self), name), *args, **kwargs)

    return write


for _name in KEYED_WRITES:
    setattr(SharedClient, _name, _raced_write(_name))
