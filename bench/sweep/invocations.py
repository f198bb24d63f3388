"""Which invocations of a study are alive, so that nobody closes a live study's parent run.

Each invocation records itself in the study's user attrs (`invocation HOST PID`: when it
was last seen, and whether it ended). A thread refreshes the record while the invocation
runs. An invocation on this machine is alive while its process is; one on another
machine while its record is younger than `GRACE_S`. The last invocation to end, or
`bench study repair`, closes the parent run only when no other invocation is alive: one
that is starting up or between trials has no RUNNING trial to show for itself.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable

import optuna

from bench.sweep.stale_trials import pid_alive

PREFIX = "invocation "
REFRESH_S = 20.0
GRACE_S = 6 * REFRESH_S


def marker_key(host: str | None = None, pid: int | None = None) -> str:
    return f"{PREFIX}{host or socket.gethostname()} {pid or os.getpid()}"


def arrive(study: optuna.Study) -> None:
    """Record this invocation as alive, now."""
    study.set_user_attr(marker_key(), {"seen": time.time(), "ended": False})


def leave(study: optuna.Study) -> None:
    """Record that this invocation has ended."""
    study.set_user_attr(marker_key(), {"seen": time.time(), "ended": True})


def live_others(
    study: optuna.Study, is_alive: Callable[[int], bool] = pid_alive, now: float | None = None
) -> list[str]:
    """The other invocations of the study that are alive, as `HOST PID`."""
    now = time.time() if now is None else now
    host, mine = socket.gethostname(), marker_key()
    live = []
    for key, value in study.user_attrs.items():
        if not key.startswith(PREFIX) or key == mine or value.get("ended"):
            continue
        their_host, pid = key.removeprefix(PREFIX).rsplit(" ", 1)
        alive = is_alive(int(pid)) if their_host == host else now - value["seen"] < GRACE_S
        if alive:
            live.append(key.removeprefix(PREFIX))
    return live


class Presence:
    """Refreshes this invocation's record every REFRESH_S while in its `with` block (a
    store that is briefly away costs a refresh, not the invocation)."""

    def __init__(self, study: optuna.Study, refresh_s: float = REFRESH_S):
        self.study, self.refresh_s = study, refresh_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="bench-presence", daemon=True)

    def __enter__(self) -> Presence:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=self.refresh_s + 5)

    def _loop(self) -> None:
        while not self.stop.wait(self.refresh_s):
            with contextlib.suppress(Exception):  # the next refresh tries again
                arrive(self.study)
