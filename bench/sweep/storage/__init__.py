"""Where a study lives: Optuna storage URLs, opening and creating with one-line errors, locks,
journal repair."""

from bench.sweep.storage.backends import create_or_load_study, open_storage
from bench.sweep.storage.journal import repair_journal
from bench.sweep.storage.urls import is_database, redact, resolve_storage, storage_errors

__all__ = [
    "create_or_load_study",
    "is_database",
    "open_storage",
    "redact",
    "repair_journal",
    "resolve_storage",
    "storage_errors",
]
