"""Riding out a database outage: an RDB storage whose calls wait for the database to come
back, for a bounded time, instead of failing the trial in flight or the invocation.

Every public call of Optuna's `RDBStorage` (and its stale-trial query) is retried, with
backoff of at most `MAX_PAUSE_S`, while it fails with a lost or refused connection, for up
to the outage tolerance (`--outage-tolerance`, default `DEFAULT_TOLERANCE_S`). Each process
says once when its storage went away and once when it is back; a database that stays away
longer is one `BenchError` naming the storage (password redacted). Calls nested inside one
call are not retried apart, so one outage costs one tolerance. The heartbeat thread's
writes are retried too, so it survives the outage. Two writes are not idempotent: a
trial's final state, written again after a commit whose reply was lost, is accepted when
the stored state is the one written; a new trial whose creation committed unseen stays
RUNNING without an owner until `bench study repair` or the heartbeat check fails it.
Optuna's multi-line warning that its trial query falls back to a slower one, which a lost
connection also sets off, is dropped when the call fails with an outage.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from bench.errors import BenchError
from bench.sweep.progress import say
from bench.sweep.settings import DEFAULT_TOLERANCE_S
from bench.sweep.storage.urls import redact

MAX_PAUSE_S = 2.0
_LOCAL = threading.local()  # .depth: calls in flight in this thread; .retried: last call was
_STATE = {"since": None}  # when this process's storage went away (None: it is up)
_STATE_LOCK = threading.Lock()


def is_outage(exc: BaseException | None) -> bool:
    """Whether the error (or one it was raised from) is a lost or refused connection."""
    while exc is not None:
        if isinstance(exc, (OperationalError, InterfaceError)):
            return True
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class Tolerance:
    """How long calls of one storage wait out an outage, and the lines saying so."""

    def __init__(self, url: str, seconds: float = DEFAULT_TOLERANCE_S):
        self.url, self.seconds = redact(url), seconds

    def call(self, function: Callable, *args, **kwargs) -> Any:
        """function(*args, **kwargs), retried through an outage (outermost call only)."""
        depth = getattr(_LOCAL, "depth", 0)
        _LOCAL.depth = depth + 1
        try:
            if depth:
                return function(*args, **kwargs)
            return self._retried(function, args, kwargs)
        finally:
            _LOCAL.depth = depth

    def _retried(self, function: Callable, args: Sequence, kwargs: dict) -> Any:
        deadline, attempt = None, 0
        _LOCAL.retried = False
        while True:
            try:
                result = function(*args, **kwargs)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                deadline = deadline or time.monotonic() + self.seconds
                self._away(exc, deadline)
                attempt += 1
                _LOCAL.retried = True
                time.sleep(min(MAX_PAUSE_S, 0.1 * 2**attempt) * (0.5 + random.random() / 2))
                continue
            self._back()
            return result

    def _away(self, exc: Exception, deadline: float) -> None:
        with _STATE_LOCK:
            if _STATE["since"] is None:
                _STATE["since"] = time.monotonic()
                say(f"storage {self.url} unreachable ({_reason(exc)}); waiting up to "
                    f"{self.seconds:g} s for it (--outage-tolerance)")  # fmt: skip
        if time.monotonic() >= deadline:
            raise BenchError(
                f"storage {self.url} unreachable for {self.seconds:g} s ({_reason(exc)}); "
                "check the database server, then rerun the command to resume (a longer "
                "--outage-tolerance waits longer)"
            ) from exc

    def _back(self) -> None:
        if _STATE["since"] is None:
            return
        with _STATE_LOCK:
            since, _STATE["since"] = _STATE["since"], None
        if since is not None:
            say(f"storage {self.url} is back after {time.monotonic() - since:.0f} s")


def _reason(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


class TolerantRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDBStorage whose calls wait out an outage (see the module docstring)."""

    def __init__(self, url: str, *args, outage_tolerance: float = DEFAULT_TOLERANCE_S, **kw):
        self.tolerance = Tolerance(url, outage_tolerance)  # before set-up, which may call
        super().__init__(url, *args, **kw)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        try:
            return self.tolerance.call(super().set_trial_state_values, trial_id, state, values)
        except UpdateFinishedTrialError:
            # retried after a commit whose reply the outage lost: done, if it says ours
            if getattr(_LOCAL, "retried", False) and self.get_trial(trial_id).state == state:
                return True
            raise

    def _get_trials(self, *args, **kwargs):
        """Optuna's trial query, retried through an outage without its fallback warning."""

        def query():
            with _fallback_warning_unless_outage():
                return super(TolerantRDBStorage, self)._get_trials(*args, **kwargs)

        return self.tolerance.call(query)


FALLBACK = "Caught an error from sqlalchemy"  # Optuna's warning before a slower query
OPTUNA_RDB_LOGGER = "optuna.storages._rdb.storage"


class _HeldBack(logging.Filter):
    """Holds back this thread's records of Optuna's fallback warning."""

    def __init__(self) -> None:
        super().__init__()
        self.thread, self.records = threading.get_ident(), []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread == self.thread and record.getMessage().startswith(FALLBACK):
            self.records.append(record)
            return False
        return True


@contextlib.contextmanager
def _fallback_warning_unless_outage() -> Iterator[None]:
    """Optuna's trial query warns, in several lines, that it falls back to a slower query
    whenever the database errs, a lost connection included; that warning is held back,
    dropped if the call fails with an outage (said in one line by `Tolerance`), else shown."""
    logger, held = logging.getLogger(OPTUNA_RDB_LOGGER), _HeldBack()
    logger.addFilter(held)
    try:
        yield
    except Exception as exc:
        if is_outage(exc):
            held.records.clear()
        raise
    finally:
        logger.removeFilter(held)
        for record in held.records:
            logger.handle(record)


def _tolerant(name: str) -> Callable:
    method = getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        return self.tolerance.call(method, self, *args, **kwargs)

    return call


RETRIED = [
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_all_studies",
    "create_new_trial",
    "set_trial_param",
    "get_trial_param",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number",
    "get_trial",
    "get_all_trials",
    "get_best_trial",
    "record_heartbeat",
    "_get_stale_trial_ids",
    # what Optuna's _CachedStorage calls on its backend instead of the public methods
    "_create_new_trial",
    "_set_trial_param",
    "_get_best_trial_id",
]
for _name in RETRIED:
    setattr(TolerantRDBStorage, _name, _tolerant(_name))
