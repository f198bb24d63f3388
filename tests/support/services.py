"""Fixtures for the PostgreSQL and MLflow servers that .ci/services.sh starts.

Without the servers' variables a test that needs them is skipped, except under CI, where
it fails: CI must run the tests through .ci/services.sh.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

PG_ENV = "BENCH_TEST_PG_URL"
MLFLOW_ENV = "BENCH_TEST_MLFLOW_SERVER"


def required_env(name: str) -> str:
    value = os.environ.get(name)
    if value:
        return value
    message = f"${name} is unset: run the tests through .ci/services.sh"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def admin_connection(base_url: str) -> psycopg.Connection:
    """An autocommit connection to the server's `postgres` database."""
    url = make_url(base_url)
    return psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
    )


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The SQLAlchemy URL of a fresh, empty database, dropped after the test."""
    base = required_env(PG_ENV)
    name = f"bench_test_{uuid.uuid4().hex[:12]}"
    with admin_connection(base) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin_connection(base) as connection:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            connection.execute(drop.format(sql.Identifier(name)))


@pytest.fixture
def mlflow_server() -> str:
    """The URL of the MLflow tracking server (its backend is the `mlflow` database)."""
    return required_env(MLFLOW_ENV)
