"""Locks that serialise creating a study or an MLflow SQLite file among processes."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlalchemy
from sqlalchemy.exc import (
    SQLAlchemyError,
)
from sqlalchemy.pool import NullPool

from bench.errors import BenchError
from bench.locks import try_flock, wait_for
from bench.sweep.storage.urls import (
    STORAGE_ENV,
    _backend,
    _parse,
    engine_kwargs,
    is_database,
    redact,
    storage_errors,
)

CREATE_LOCK_SUFFIX = ".create.lock"  # not ".lock": Optuna's journal lock uses that name
ADVISORY_LOCK_KEY = 0x62656E6368  # "bench": one key per database, for study creation
LOCK_WAIT_S = 120.0


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
        _wait_for(lambda: try_flock(handle), url, lock_path)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    def timeout() -> BenchError:
        return BenchError(
            f"cannot open Optuna storage {redact(url)}: another process has held "
            f"{what} for {LOCK_WAIT_S:.0f} s while creating a study; check for a hung "
            "sweep on this storage and stop it"
        )

    wait_for(acquire, LOCK_WAIT_S, timeout)
