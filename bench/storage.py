"""Optuna storage: one module that the sweep and the benchmark both use.

A database URL gives an RDB storage; anything else is a journal file path (Optuna's
advice for several processes on one machine; SQLite is not).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import optuna

STORAGE_ENV = "BENCH_STORAGE"
JOURNAL_NAME = "optuna-journal.log"


def resolve_storage(flag: str | None, tracking_uri: str) -> str:
    """--storage > $BENCH_STORAGE > the journal file beside the MLflow SQLite file."""
    if flag or os.environ.get(STORAGE_ENV):
        return flag or os.environ[STORAGE_ENV]
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / JOURNAL_NAME)
    return JOURNAL_NAME


def open_storage(url: str) -> optuna.storages.BaseStorage:
    if "://" in url:
        return optuna.storages.RDBStorage(url)
    lock = optuna.storages.journal.JournalFileOpenLock(url)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url, lock))


def sqlite_wal(tracking_uri: str) -> None:
    """WAL lets MLflow writers in several processes wait for each other instead of failing."""
    if tracking_uri.startswith("sqlite:///"):
        with sqlite3.connect(tracking_uri.removeprefix("sqlite:///"), timeout=30) as db:
            db.execute("PRAGMA journal_mode=WAL")
