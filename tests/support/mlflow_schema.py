"""A fresh MLflow SQLite store in milliseconds instead of seconds, in the test process only.

MLflow builds a new SQLite store's schema by running every Alembic migration, a few seconds
of CPU each time, and most in-process tests open a store of their own. Here the first new
SQLite store of the session is built that way, and a copy of its schema (before any row of
the store's own) is kept; every later empty SQLite database receives that copy through
SQLite's backup API, into the file the store already opened (its path, owner and mode as
they were). The schema, the Alembic revision and MLflow's log lines are the same; the store
then goes on as usual (its default experiment, `_verify_schema`). A database that is not
empty (an older schema to upgrade), or not SQLite, takes MLflow's own path. Subprocesses
(`bench` commands, the fault and race tests) never see this: they build their stores as
users' do.
"""

from __future__ import annotations

import sqlite3
import threading

import sqlalchemy
from mlflow.store.db import utils as db_utils
from mlflow.store.model_registry import sqlalchemy_store as registry_store

_ORIGINAL = getattr(db_utils, "_initialize_tables", None)  # private: a later MLflow may not
_LOCK = threading.Lock()
_TEMPLATE: dict[str, sqlite3.Connection] = {}  # "schema": an in-memory copy of a new store


def _copy_into(engine: sqlalchemy.engine.Engine, template: sqlite3.Connection) -> None:
    """The template's pages into the engine's database, its journal mode (WAL) kept."""
    raw = engine.raw_connection()
    try:
        target = raw.driver_connection
        (mode,) = target.execute("PRAGMA journal_mode").fetchone()
        template.backup(target)
        if str(mode).lower() == "wal":
            target.execute("PRAGMA journal_mode=WAL")
    finally:
        raw.close()


def _initialize_tables(engine: sqlalchemy.engine.Engine) -> None:
    if engine.dialect.name != "sqlite" or not db_utils._is_empty_database(engine):
        return _ORIGINAL(engine)
    with _LOCK:
        template = _TEMPLATE.get("schema")
        if template is None:
            _ORIGINAL(engine)
            copy = sqlite3.connect(":memory:", check_same_thread=False)
            raw = engine.raw_connection()
            try:
                raw.driver_connection.backup(copy)
            finally:
                raw.close()
            _TEMPLATE["schema"] = copy
            return None
        db_utils._logger.info("Creating initial MLflow database tables...")
        db_utils._logger.info("Updating database tables")
        _copy_into(engine, template)
    return None


def install() -> None:
    """Use the copy for this process's new SQLite stores (tracking and model registry);
    nothing where this MLflow lacks the private functions it replaces (its own path)."""
    wanted = (hasattr(db_utils, "_is_empty_database"), hasattr(db_utils, "_logger"))
    if _ORIGINAL is None or not all(wanted) or not hasattr(registry_store, "_initialize_tables"):
        return
    db_utils._initialize_tables = _initialize_tables
    registry_store._initialize_tables = _initialize_tables
