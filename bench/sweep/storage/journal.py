"""Repair of an Optuna journal file whose last record a killed writer left torn."""

from __future__ import annotations

import json
import os

from optuna.storages.journal import JournalFileOpenLock

from bench.errors import BenchError


def repair_journal(path: str | os.PathLike) -> int:
    """Drop a torn last record (no trailing newline) from a journal file; the bytes removed.

    A record cut mid-write was never acknowledged to anyone, so dropping it loses nothing
    complete; left in place, the next record would be appended to it and the whole line
    would become unreadable. Runs under Optuna's own journal lock. A damaged record before
    the last one is a BenchError naming its line.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return 0
    lock = JournalFileOpenLock(path)
    lock.acquire()
    try:
        return _drop_torn_tail(path)
    finally:
        lock.release()


def _drop_torn_tail(path: str) -> int:
    complete = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                break
            _check_record(path, number, line)
            complete += len(line)
    torn = os.path.getsize(path) - complete
    if torn:
        os.truncate(path, complete)
    return torn


def _check_record(path: str, number: int, line: bytes) -> None:
    try:
        record = json.loads(line)
    except ValueError as exc:
        record = exc
    if not isinstance(record, dict):
        raise BenchError(
            f"Optuna journal {path} line {number} is not a journal record; the file is "
            "damaged: restore it from a backup, or move it away to start the study afresh"
        )
