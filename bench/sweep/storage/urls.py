"""Storage URLs: which one to use, their passwords redacted, their errors in one line."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from optuna.exceptions import (
    StorageInternalError,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from bench.errors import BenchError
from bench.sweep.storage.names import STORAGE_ENV, is_database, resolve_storage  # noqa: F401

CONNECT_TIMEOUT_S = 5


POSTGRES_INSTALL = "pip install 'recsys-sweep-bench[postgres]'"


POSTGRES_FORM = "postgresql+psycopg://user@host:5432/db"


URL_FORMS = f"{POSTGRES_FORM}, sqlite:///path/to/optuna.db, or a journal file path"


PASSWORD_PATTERN = re.compile(r"(://[^:/@]*:)([^@]*)@")  # for URLs SQLAlchemy can't parse
PASSWORD_IN_TEXT = re.compile(r"(://[^:/@\s]*:)([^@/\s]*)@")  # user:password@ in any text


def redact_text(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***."""
    return PASSWORD_IN_TEXT.sub(r"\1***@", text)


def redact(url: str) -> str:
    """The storage URL with any password replaced by ***, safe for messages and logs."""
    if not is_database(url):
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return redact_text(PASSWORD_PATTERN.sub(r"\1***@", url))


def engine_kwargs(url: str) -> dict:
    """SQLAlchemy engine options: fail fast on an unreachable PostgreSQL server, and test
    pooled connections before use (a server restart or idle timeout drops them)."""
    kwargs: dict = {"pool_pre_ping": True}
    if _backend(url) == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    return kwargs


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
