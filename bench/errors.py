"""The one exception type that the command line turns into a one-line message, and the
errors it recognises (a full disk) wherever they come from."""

import errno


class BenchError(Exception):
    """A problem the user can fix: bad input, missing data, a bad flag.

    The message says what was wrong, where, and what to do about it.
    """


class DataError(BenchError):
    """MovieLens data missing, corrupt or malformed."""


DISK_FULL_TEXT = ("database or disk is full", "No space left on device", "Disk quota exceeded")


def disk_full(exc: BaseException | None) -> bool:
    """Whether the error, or one it came from, is a full disk (ENOSPC, EDQUOT, SQLite's
    "database or disk is full")."""
    return _full_disk_error(exc) is not None


def _full_disk_error(exc: BaseException | None) -> BaseException | None:
    """The error along exc's chain (itself, its causes and contexts) that is a full disk."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        if any(text in str(exc) for text in DISK_FULL_TEXT):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class StoreFull(BaseException):  # noqa: N818 - it stops a run, as KeyboardInterrupt does
    """A store's disk is full. Not an `Exception`, so that Optuna's `catch=(Exception,)`
    does not turn it into one failed trial after another: it ends the worker and the
    invocation with one line; the trial in flight stays RUNNING until the next start (or
    `bench study repair`) fails it, which says so."""


REPORTED = 2  # the exit status of a process that printed its own `error:` line


class Reported(BenchError):
    """An error another process (a sweep worker) has already printed as its `error:` line."""


def one_line(exc: BaseException) -> str:
    """The message of an error as one line (a full disk says what to do about it)."""
    if isinstance(exc, StoreFull):  # already said as one line
        return str(exc)
    full = _full_disk_error(exc)
    if full is not None:  # the full disk's own words, not those of what it broke on the way
        return DISK_FULL_MESSAGE.format(_first_line(full)[:200])
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return " ".join(lines) if isinstance(exc, BenchError) else lines[0]


def _first_line(exc: BaseException) -> str:
    """The first line of an error's message, or its type's name."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


DISK_FULL_MESSAGE = (
    "the disk of a store is full ({}); free space (or move the stores: --storage, "
    "--tracking-uri), then rerun the command: it fails what was left running and resumes"
)
