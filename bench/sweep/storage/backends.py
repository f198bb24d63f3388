"""Optuna storage: where a study lives, opening it with one-line errors, creating it once.

A URL with `://` is a SQLAlchemy database (PostgreSQL for several machines, SQLite for
one); anything else is a journal file, Optuna's advice for several processes on one
machine. Every failure to open a storage is a `BenchError` whose message names the
storage with its password replaced by `***`.

Several processes may create the same study at the same instant (a sweep started on
several machines, or twice). Creating the tables, the study and the study's one-off
set-up (trial 0, the MLflow parent run) is serialised by a lock: a PostgreSQL advisory
lock, or `flock` on a file beside a SQLite database or journal; `create_or_load_study`
says which caller did the set-up.
"""

from __future__ import annotations

import copy
import random
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime

import optuna
from optuna.exceptions import (
    ExperimentalWarning,
    StorageInternalError,
)
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import (
    IntegrityError,
    OperationalError,
)

from bench.errors import BenchError
from bench.files import create_private
from bench.sweep.stale_trials import OWNED_ATTRS, trial_owner_attrs
from bench.sweep.storage.journal import repair_journal
from bench.sweep.storage.locks import check_writable_folder, creation_lock
from bench.sweep.storage.outages import DEFAULT_TOLERANCE_S, TolerantRDBStorage
from bench.sweep.storage.urls import POSTGRES_FORM, engine_kwargs, is_database, storage_errors

INITIALISED = "initialised"  # study user attr: the one-off set-up is done
CREATE_ATTEMPTS = 5
RACES = (IntegrityError, OperationalError, StorageInternalError)


def open_storage(
    url: str,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    outage_tolerance: float = DEFAULT_TOLERANCE_S,
) -> optuna.storages.BaseStorage:
    """The storage at url: a database URL gives an RDBStorage that waits out outages of up
    to `outage_tolerance` seconds (`bench.sweep.storage.outages`), anything else a journal
    file.

    With heartbeat_interval (databases only), a trial whose process stops beating for
    grace_period seconds is failed by the next trial of any worker, and its parameters are
    enqueued again once.
    """
    with creation_lock(url):
        return _retry(
            url, lambda: _open_storage(url, heartbeat_interval, grace_period, outage_tolerance)
        )


def create_or_load_study(
    url: str,
    name: str,
    direction: str = "minimize",
    *,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    initialise: Callable[[optuna.Study], None] | None = None,
) -> tuple[optuna.Study, bool]:
    """Create the study or load it, and whether this call did the study's one-off set-up.

    Safe when several processes call it at the same instant on a fresh storage: exactly
    one gets True. `initialise(study)` (enqueue trial 0, create the MLflow parent run) runs
    under the same lock before the study is marked initialised, so if it fails, the next
    caller runs it again.
    """
    with creation_lock(url):
        study = _create_with_retry(
            url, name, direction, sampler, pruner, (heartbeat_interval, grace_period)
        )
        with storage_errors(url):
            if study.user_attrs.get(INITIALISED):
                return study, False
        if initialise is not None:
            initialise(study)
        with storage_errors(url):
            study.set_user_attr(INITIALISED, True)
        return study, True


def _create_with_retry(url, name, direction, sampler, pruner, heartbeat) -> optuna.Study:
    def create() -> optuna.Study:
        return optuna.create_study(
            storage=_open_storage(url, *heartbeat),
            study_name=name,
            direction=direction,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )

    return _retry(url, create)


def _retry(url: str, action: Callable):
    """action(), again after a short pause on the errors of concurrent schema creation
    (a process that does not take the creation lock may still race us)."""
    for attempt in range(1, CREATE_ATTEMPTS):
        try:
            with storage_errors(url):
                return action()
        except BenchError as exc:
            if not isinstance(exc.__cause__, RACES):
                raise
        time.sleep(0.2 * attempt + random.random() * 0.2)
    with storage_errors(url):
        return action()


def _open_storage(
    url: str, heartbeat_interval, grace_period, outage_tolerance: float = DEFAULT_TOLERANCE_S
) -> optuna.storages.BaseStorage:
    if not is_database(url):
        if heartbeat_interval is not None:
            raise BenchError(
                f"heartbeats need a database storage, not the journal file {url}; pass a "
                f"database URL ({POSTGRES_FORM}) or no heartbeat interval"
            )
        return _open_journal(url)
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", ExperimentalWarning)
        return TolerantRDBStorage(
            url,
            engine_kwargs=engine_kwargs(url),
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            outage_tolerance=outage_tolerance,
            **_retry_callback(heartbeat_interval),
        )


RetryCallback = getattr(  # Optuna 4.9 renamed it
    optuna.storages, "RetryHeartbeatStaleTrialCallback", optuna.storages.RetryFailedTrialCallback
)


class RetryStaleTrial(RetryCallback):
    """Re-enqueue a heartbeat-stale trial's parameters once, without the user attrs that
    name its dead owner and its MLflow run: the retry is a new trial with its own."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial = copy.copy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in OWNED_ATTRS}
        super().__call__(study, trial)


def _retry_callback(heartbeat_interval: int | None) -> dict:
    if heartbeat_interval is None:
        return {}
    name = (
        "heartbeat_stale_trial_callback"
        if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback")
        else "failed_trial_callback"
    )
    return {name: RetryStaleTrial(max_retry=1)}


def _open_journal(path: str) -> JournalStorage:
    check_writable_folder(path, path)
    create_private(path)
    repair_journal(path)
    backend = JournalFileBackend(path, JournalFileOpenLock(path))
    return OwnedJournalStorage(backend)


class OwnedJournalStorage(JournalStorage):
    """A journal whose new trials name their owner process in the record that creates them.

    A journal has no heartbeats: a running trial is failed once its owner (host, pid) is
    gone. Set in a later record, the owner would be missing whenever that write fails (a
    full disk), and such a trial would stay RUNNING for good.
    """

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        """Create a trial, owned by this process if it starts running now."""
        if template_trial is None:
            template_trial = _running_template()
        if template_trial.state == TrialState.RUNNING:
            template_trial = copy.copy(template_trial)
            template_trial.user_attrs = {**template_trial.user_attrs, **trial_owner_attrs()}
        return super().create_new_trial(study_id, template_trial)


def _running_template() -> FrozenTrial:
    """What `create_new_trial` makes without a template: a trial running from now."""
    return FrozenTrial(
        number=-1, state=TrialState.RUNNING, value=None, values=None,
        datetime_start=datetime.now(UTC), datetime_complete=None, params={},
        distributions={}, user_attrs={}, system_attrs={}, intermediate_values={},
        trial_id=-1,
    )  # fmt: skip
