"""Opening an MLflow store: its first use serialised among processes, a SQLite file in WAL.

MLflow creates a database store's tables (Alembic migrations) when a client first opens it,
and two processes that do so at the same instant both fail and leave half-made tables
behind. Every `Tracker` opens its store under `setup_lock`, so every command (sweep,
benchmark, tuners, replicate, recommend, study) opens stores one way.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy
from sqlalchemy.pool import NullPool

from bench.errors import BenchError
from bench.files import create_private
from bench.locks import try_flock, wait_for

LOCK_SUFFIX = ".create.lock"  # beside the SQLite file, as the Optuna storage's lock
LOCK_WAIT_S = 120.0
ADVISORY_LOCK_KEY = 0x6D6C666C6F77  # "mlflow": not the Optuna storage's key, which may be held
CONNECT_TIMEOUT_S = 5


@contextlib.contextmanager
def setup_lock(tracking_uri: str) -> Iterator[None]:
    """Held while a store is first opened: a flock beside an MLflow SQLite file, an advisory
    lock on a PostgreSQL database; other stores need none (a server serialises itself; a
    missing folder is MLflow's error to report)."""
    if tracking_uri.startswith("postgresql"):
        with advisory_lock(tracking_uri):
            yield
        return
    path = tracking_uri.removeprefix("sqlite:///")
    if not tracking_uri.startswith("sqlite:///") or not Path(path).parent.is_dir():
        yield
        return
    with file_lock(tracking_uri, path):
        yield


@contextlib.contextmanager
def file_lock(tracking_uri: str, path: str) -> Iterator[None]:
    """An exclusive flock on PATH.create.lock, waiting at most LOCK_WAIT_S."""
    lock = path + LOCK_SUFFIX
    try:
        create_private(path)  # SQLite gives its -wal and -shm files the database's mode
        handle = open(lock, "a")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise BenchError(
            f"cannot open MLflow store {tracking_uri}: {exc.strerror}: {lock}; make the folder "
            "writable, or pass another --tracking-uri"
        ) from exc
    with handle:
        wait_for(lambda: try_flock(handle), LOCK_WAIT_S, lambda: _held(tracking_uri, lock))
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def advisory_lock(tracking_uri: str) -> Iterator[None]:
    """A PostgreSQL session advisory lock, held on a connection of its own."""
    engine = sqlalchemy.create_engine(
        tracking_uri, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
    )
    try:
        with engine.connect() as connection:
            held = _held(tracking_uri, "the MLflow set-up advisory lock")
            wait_for(lambda: _try_advisory(connection), LOCK_WAIT_S, lambda: held)
            try:
                yield
            finally:
                _advisory(connection, "pg_advisory_unlock")
    finally:
        engine.dispose()


def _try_advisory(connection: sqlalchemy.Connection) -> bool:
    return bool(_advisory(connection, "pg_try_advisory_lock"))


def _advisory(connection: sqlalchemy.Connection, function: str) -> object:
    """SELECT function(ADVISORY_LOCK_KEY), committed: a session lock outlives it."""
    value = connection.execute(sqlalchemy.text(f"SELECT {function}({ADVISORY_LOCK_KEY})"))
    result = value.scalar()
    connection.commit()
    return result


def shown(tracking_uri: str) -> str:
    """The URI with any password in it replaced by ***, for messages."""
    return re.sub(r"(://[^:/@\s]*:)[^@/\s]*@", r"\1***@", tracking_uri)


def _held(tracking_uri: str, lock: str) -> BenchError:
    return BenchError(
        f"cannot open MLflow store {shown(tracking_uri)}: another process has held {lock} for "
        f"{LOCK_WAIT_S:.0f} s; check for a hung sweep on this store and stop it"
    )


def sqlite_wal(tracking_uri: str) -> None:
    """WAL lets MLflow writers in several processes wait for each other instead of failing."""
    if tracking_uri.startswith("sqlite:///"):
        with sqlite3.connect(tracking_uri.removeprefix("sqlite:///"), timeout=30) as db:
            db.execute("PRAGMA journal_mode=WAL")
