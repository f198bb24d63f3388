"""The MLflow client every tracker holds: MLflow's own, with writes that survive another
writer's race for the same new key.

Invocations that share a study write the same parent run at the end (the best trial's tags,
the description), tag the same trial runs (`best_trial`, the run name), describe the same
experiment and log the same split as its data sets as they start, and may register the same
champion version. When two of them insert one new key at the same instant, the store's
unique key refuses one insert: PostgreSQL's `UniqueViolation`, SQLite's `UNIQUE constraint
failed`, which an MLflow server returns as BAD_REQUEST, and MLflow's client does not retry.
Written again, the row exists and the write updates or reuses it, so the loser writes again
after a short pause. When the server answers that its own store is away (a 503,
TEMPORARILY_UNAVAILABLE: a database restart or outage), it wrote nothing, and the call is
sent again for up to OUTAGE_S seconds: MLflow's client (3.18) no longer retries a 503 for a
write such as creating a run. Every other error is raised as it comes.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import Any

from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking import MlflowClient

from bench.errors import disk_full

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


OUTAGE_S = 120.0  # how long a call waits out its server's store being away (as --outage-tolerance)
OUTAGE_PAUSE_S = 2.0  # the longest pause between two tries
# the calls that wait out an outage: every write above and the others this harness makes
WAITED = (
    *KEYED_WRITES, "create_run", "set_terminated", "log_metric", "log_param", "log_artifact",
    "log_artifacts", "log_text", "log_dict", "log_figure", "create_experiment", "get_experiment",
    "get_experiment_by_name", "get_run", "search_runs", "search_experiments", "delete_tag",
    "create_registered_model", "create_model_version", "get_registered_model",
    "search_model_versions", "get_model_version_by_alias", "get_model_version",
)  # fmt: skip


def store_away(exc: BaseException) -> bool:
    """Whether an MLflow server answered that its own store is away (503,
    TEMPORARILY_UNAVAILABLE): it wrote nothing, so the same call may be sent again. MLflow's
    client retries a 503 only for reads and retry-safe writes. A local store's error (the
    same code for any SQLite error) and a full disk are not waited for: they are said at
    once (`bench.errors.disk_full`)."""
    away = isinstance(exc, RestException) and exc.error_code == "TEMPORARILY_UNAVAILABLE"
    return away and not disk_full(exc)


def through_outages(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """call(*args, **kwargs), sent again while the server's store is away (at most OUTAGE_S
    seconds; then its error is the caller's)."""
    deadline, attempt = time.monotonic() + OUTAGE_S, 0
    while True:
        try:
            return call(*args, **kwargs)
        except MlflowException as exc:
            if not store_away(exc) or time.monotonic() >= deadline:
                raise
        attempt += 1
        time.sleep(min(OUTAGE_PAUSE_S, 0.1 * 2**attempt) * random.uniform(0.5, 1.0))


class SharedClient(MlflowClient):
    """MLflow's client whose KEYED_WRITES are written again when they lose a unique-key
    race, and whose WAITED calls wait out an outage of the server's store (module docstring)."""


def _shared_call(name: str) -> Callable[..., Any]:
    """SharedClient's `name`: MlflowClient's, through `raced` (a keyed write) and through
    `through_outages`."""
    keyed = name in KEYED_WRITES

    @functools.wraps(getattr(MlflowClient, name))
    def call(self: SharedClient, *args: Any, **kwargs: Any) -> Any:
        method = getattr(super(SharedClient, self), name)
        if keyed:
            return through_outages(raced, method, *args, **kwargs)
        return through_outages(method, *args, **kwargs)

    return call


for _name in WAITED:
    if hasattr(MlflowClient, _name):
        setattr(SharedClient, _name, _shared_call(_name))
