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

import contextlib
import copy
import fcntl
import json
import os
import random
import re
import socket
import sqlite3
import time
import warnings
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import optuna
import sqlalchemy
from optuna.exceptions import (
    ExperimentalWarning,
    StorageInternalError,
    UpdateFinishedTrialError,
)
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.pool import NullPool

from bench.errors import BenchError

STORAGE_ENV = "BENCH_STORAGE"
JOURNAL_NAME = "optuna-journal.log"
INITIALISED = "initialised"  # study user attr: the one-off set-up is done
CREATE_LOCK_SUFFIX = ".create.lock"  # not ".lock": Optuna's journal lock uses that name
ADVISORY_LOCK_KEY = 0x62656E6368  # "bench": one key per database, for study creation
LOCK_WAIT_S = 120.0
CREATE_ATTEMPTS = 5
CONNECT_TIMEOUT_S = 5
POSTGRES_INSTALL = "pip install 'recsys-sweep-bench[postgres]'"
POSTGRES_FORM = "postgresql+psycopg://user@host:5432/db"
URL_FORMS = f"{POSTGRES_FORM}, sqlite:///path/to/optuna.db, or a journal file path"
RACES = (IntegrityError, OperationalError, StorageInternalError)
PASSWORD_PATTERN = re.compile(r"(://[^:/@]*:)([^@]*)@")  # for URLs SQLAlchemy can't parse
OWNED_ATTRS = ("host", "pid", "mlflow_run_id")  # a trial's owner process and MLflow run


def default_storage(tracking_uri: str) -> str:
    """The journal file beside the MLflow SQLite file (or in the working directory)."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / JOURNAL_NAME)
    return JOURNAL_NAME


def resolve_storage(flag: str | None, tracking_uri: str) -> str:
    """The storage to use: the --storage flag, else $BENCH_STORAGE, else the default."""
    return flag or os.environ.get(STORAGE_ENV) or default_storage(tracking_uri)


def redact(url: str) -> str:
    """The storage URL with any password replaced by ***, safe for messages and logs."""
    if not is_database(url):
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return PASSWORD_PATTERN.sub(r"\1***@", url)


def is_database(url: str) -> bool:
    return "://" in url


def open_storage(
    url: str, heartbeat_interval: int | None = None, grace_period: int | None = None
) -> optuna.storages.BaseStorage:
    """The storage at url: a database URL gives an RDBStorage, anything else a journal file.

    With heartbeat_interval (databases only), a trial whose process stops beating for
    grace_period seconds is failed by the next trial of any worker, and its parameters are
    enqueued again once.
    """
    with creation_lock(url):
        return _retry(url, lambda: _open_storage(url, heartbeat_interval, grace_period))


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


def _open_storage(url: str, heartbeat_interval, grace_period) -> optuna.storages.BaseStorage:
    if not is_database(url):
        if heartbeat_interval is not None:
            raise BenchError(
                f"heartbeats need a database storage, not the journal file {url}; pass a "
                f"database URL ({POSTGRES_FORM}) or no heartbeat interval"
            )
        return _open_journal(url)
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs(url),
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
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


def engine_kwargs(url: str) -> dict:
    """SQLAlchemy engine options: fail fast on an unreachable PostgreSQL server, and test
    pooled connections before use (a server restart or idle timeout drops them)."""
    kwargs: dict = {"pool_pre_ping": True}
    if _backend(url) == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    return kwargs


def _open_journal(path: str) -> JournalStorage:
    check_writable_folder(path, path)
    repair_journal(path)
    backend = JournalFileBackend(path, JournalFileOpenLock(path))
    return JournalStorage(backend)


def _backend(url: str) -> str:
    return _parse(url).get_backend_name()


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise BenchError(
            f"cannot open Optuna storage {redact(url)}: not a valid database URL "
            f"({_scrub(str(exc), url)}); use {URL_FORMS}"
        ) from exc


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Turn the errors of opening a storage into one-line BenchErrors (password redacted)."""
    try:
        yield
    except BenchError:
        raise
    except ImportError as exc:
        raise BenchError(_driver_message(url)) from exc
    except NoSuchModuleError as exc:
        raise BenchError(
            f"cannot open Optuna storage {redact(url)}: unknown scheme "
            f"{url.split('://')[0]!r}; use {URL_FORMS}"
        ) from exc
    except (SQLAlchemyError, StorageInternalError, RuntimeError, OSError) as exc:
        raise BenchError(_failure_message(url, exc)) from exc


def _driver_message(url: str) -> str:
    where = f"cannot open Optuna storage {redact(url)}"
    if _backend(url) == "postgresql":
        return (
            f"{where}: the PostgreSQL driver is not installed; run {POSTGRES_INSTALL} and "
            f"use a URL of the form {POSTGRES_FORM}"
        )
    return f"{where}: its database driver is not installed; install it, or use {URL_FORMS}"


def _failure_message(url: str, exc: BaseException) -> str:
    reason = _one_line(exc, url)
    where = f"cannot open Optuna storage {redact(url)}"
    if isinstance(exc, OperationalError) and _backend(url) == "postgresql":
        return (
            f"{where}: {reason}; check that the server runs and accepts this host, user, "
            "password and database"
        )
    return f"{where}: {reason}; check the URL or pass another --storage / ${STORAGE_ENV}"


def _one_line(exc: BaseException, url: str) -> str:
    """The first line of the underlying driver error, with the password removed."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines() or [type(cause).__name__]
    return _scrub(lines[0], url)


def _scrub(text: str, url: str) -> str:
    """text with the URL's password, if any, replaced by ***."""
    password = _password(url)
    return text.replace(password, "***") if password else text


def _password(url: str) -> str | None:
    if not is_database(url):
        return None
    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        found = PASSWORD_PATTERN.search(url)
        return found.group(2) if found else None


def check_writable_folder(path: str, url: str) -> None:
    """Fail now, not after Optuna's minutes of lock retries, when path can't be written."""
    file = Path(path)
    folder = file.parent
    where = f"cannot open Optuna storage {redact(url)}"
    if not folder.is_dir():
        raise BenchError(
            f"{where}: folder {folder} does not exist; create it, or pass another --storage "
            f"/ ${STORAGE_ENV}"
        )
    if file.is_dir():
        raise BenchError(f"{where}: {file} is a folder; name a file")
    writable = os.access(folder, os.W_OK | os.X_OK)
    if not writable or (file.exists() and not os.access(file, os.W_OK)):
        raise BenchError(
            f"{where}: {folder if not writable else file} is read-only; make it writable, "
            f"or pass another --storage / ${STORAGE_ENV}"
        )


@contextlib.contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Serialise table and study creation among processes on one storage."""
    if not is_database(url):
        check_writable_folder(url, url)
        with file_lock(url + CREATE_LOCK_SUFFIX, url):
            yield
        return
    path = _sqlite_path(url)
    if _backend(url) == "postgresql":
        with advisory_lock(url):
            yield
    elif path is not None:
        check_writable_folder(path, url)
        with file_lock(path + CREATE_LOCK_SUFFIX, url):
            yield
    else:
        yield


def _sqlite_path(url: str) -> str | None:
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


@contextlib.contextmanager
def file_lock(lock_path: str, url: str) -> Iterator[None]:
    """An exclusive flock on lock_path, waiting at most LOCK_WAIT_S; the file stays."""
    with storage_errors(url):
        handle = open(lock_path, "a")  # noqa: SIM115 - closed below
    with handle:
        _wait_for(lambda: _try_flock(handle), url, lock_path)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _try_flock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def advisory_lock(url: str) -> Iterator[None]:
    """A PostgreSQL session advisory lock held on its own connection."""
    with storage_errors(url):
        engine = sqlalchemy.create_engine(url, poolclass=NullPool, **engine_kwargs(url))
        connection = engine.connect()
    try:
        with storage_errors(url):
            _wait_for(lambda: _try_advisory(connection), url, "the advisory lock")
        try:
            yield
        finally:
            _unlock_advisory(connection)
    finally:
        connection.close()
        engine.dispose()


def _try_advisory(connection) -> bool:
    query = sqlalchemy.text("SELECT pg_try_advisory_lock(:key)")
    got = connection.execute(query, {"key": ADVISORY_LOCK_KEY}).scalar()
    connection.commit()  # a session lock outlives the transaction; don't idle inside one
    return bool(got)


def _unlock_advisory(connection) -> None:
    query = sqlalchemy.text("SELECT pg_advisory_unlock(:key)")
    with contextlib.suppress(SQLAlchemyError):  # closing the connection releases it too
        connection.execute(query, {"key": ADVISORY_LOCK_KEY})
        connection.commit()


def _wait_for(acquire: Callable[[], bool], url: str, what: str) -> None:
    deadline = time.monotonic() + LOCK_WAIT_S
    while not acquire():
        if time.monotonic() > deadline:
            raise BenchError(
                f"cannot open Optuna storage {redact(url)}: another process has held "
                f"{what} for {LOCK_WAIT_S:.0f} s while creating a study; check for a hung "
                "sweep on this storage and stop it"
            )
        time.sleep(0.05 + random.random() * 0.1)


def repair_journal(path: str | os.PathLike) -> int:
    """Drop a torn last record (no trailing newline) from a journal file; the bytes removed.

    A record cut mid-write was never acknowledged to anyone, so dropping it loses nothing
    complete; left in place, the next record would be appended to it and the whole line
    would become unreadable. Runs under Optuna's own journal lock. A damaged record before
    the last one is a BenchError naming its line.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return 0
    lock = JournalFileOpenLock(path)
    lock.acquire()
    try:
        return _drop_torn_tail(path)
    finally:
        lock.release()


def _drop_torn_tail(path: str) -> int:
    complete = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                break
            _check_record(path, number, line)
            complete += len(line)
    torn = os.path.getsize(path) - complete
    if torn:
        os.truncate(path, complete)
    return torn


def _check_record(path: str, number: int, line: bytes) -> None:
    try:
        record = json.loads(line)
    except ValueError as exc:
        record = exc
    if not isinstance(record, dict):
        raise BenchError(
            f"Optuna journal {path} line {number} is not a journal record; the file is "
            "damaged: restore it from a backup, or move it away to start the study afresh"
        )


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
    return getattr(storage, "grace_period", None) or 2 * storage.get_heartbeat_interval()


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


@contextlib.contextmanager
def tracking_setup_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise the first use of an MLflow SQLite file among processes (MLflow creates its
    tables then, and simultaneous creations fail); other stores need no lock."""
    path = tracking_uri.removeprefix("sqlite:///")
    if not tracking_uri.startswith("sqlite:///") or not Path(path).parent.is_dir():
        yield  # a server serialises itself; a missing folder is MLflow's error to report
        return
    with file_lock(path + CREATE_LOCK_SUFFIX, tracking_uri):
        yield


def sqlite_wal(tracking_uri: str) -> None:
    """WAL lets MLflow writers in several processes wait for each other instead of failing."""
    if tracking_uri.startswith("sqlite:///"):
        with sqlite3.connect(tracking_uri.removeprefix("sqlite:///"), timeout=30) as db:
            db.execute("PRAGMA journal_mode=WAL")
