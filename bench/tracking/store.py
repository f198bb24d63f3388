"""Opening an MLflow store: its first use serialised among processes, a SQLite file in WAL."""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from bench.errors import BenchError
from bench.files import create_private
from bench.locks import try_flock, wait_for
from bench.tracking.tracker import Tracker

LOCK_SUFFIX = ".create.lock"  # beside the SQLite file, as the Optuna storage's lock
LOCK_WAIT_S = 120.0


@contextlib.contextmanager
def opened(tracking_uri: str) -> Iterator[Tracker]:
    """A `Tracker` on the store, used first under a lock (MLflow creates its tables on first
    use, and simultaneous creations fail); a SQLite store is then switched to WAL."""
    with setup_lock(tracking_uri):
        yield Tracker(tracking_uri)
        sqlite_wal(tracking_uri)


@contextlib.contextmanager
def setup_lock(tracking_uri: str) -> Iterator[None]:
    """An exclusive lock beside an MLflow SQLite file; other stores need none (a server
    serialises itself; a missing folder is MLflow's error to report)."""
    path = tracking_uri.removeprefix("sqlite:///")
    if not tracking_uri.startswith("sqlite:///") or not Path(path).parent.is_dir():
        yield
        return
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


def _held(tracking_uri: str, lock: str) -> BenchError:
    return BenchError(
        f"cannot open MLflow store {tracking_uri}: another process has held {lock} for "
        f"{LOCK_WAIT_S:.0f} s; check for a hung sweep on this store and stop it"
    )


def sqlite_wal(tracking_uri: str) -> None:
    """WAL lets MLflow writers in several processes wait for each other instead of failing."""
    if tracking_uri.startswith("sqlite:///"):
        with sqlite3.connect(tracking_uri.removeprefix("sqlite:///"), timeout=30) as db:
            db.execute("PRAGMA journal_mode=WAL")
