"""Which storage a study uses, decided without loading Optuna or SQLAlchemy: the commands
check their flags against it before the libraries load."""

from __future__ import annotations

import os
from pathlib import Path

STORAGE_ENV = "BENCH_STORAGE"


JOURNAL_NAME = "optuna-journal.log"


def default_storage(tracking_uri: str) -> str:
    """The journal file beside the MLflow SQLite file (or in the working directory)."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / JOURNAL_NAME)
    return JOURNAL_NAME


def resolve_storage(flag: str | None, tracking_uri: str) -> str:
    """The storage to use: the --storage flag, else $BENCH_STORAGE, else the default."""
    return flag or os.environ.get(STORAGE_ENV) or default_storage(tracking_uri)


def is_database(url: str) -> bool:
    """Whether the storage is a database URL (else a journal file)."""
    return "://" in url
