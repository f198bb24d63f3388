"""Waiting for a lock among processes: `flock` on a file, or any try-acquire, with a deadline."""

from __future__ import annotations

import fcntl
import random
import time
from collections.abc import Callable


def try_flock(handle) -> bool:
    """Take an exclusive flock on an open file without blocking; whether it was free."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def wait_for(acquire: Callable[[], bool], wait_s: float, timeout: Callable[[], Exception]) -> None:
    """Call `acquire` until it succeeds (jittered polls); raise `timeout()` after `wait_s`."""
    deadline = time.monotonic() + wait_s
    while not acquire():
        if time.monotonic() > deadline:
            raise timeout()
        time.sleep(0.05 + random.random() * 0.1)
