"""SIGINT and SIGTERM: both stop a run the way Ctrl-C does, once, and quietly.

The first SIGINT or SIGTERM raises `Interrupted` (a KeyboardInterrupt) in the main thread,
so the trial in flight is marked FAIL in both stores and every run is closed on the way
out; later signals are ignored, so that clean-up is not itself interrupted. The command
line turns `Interrupted` into one line and exit status 128 + the signal's number (130 for
SIGINT, 143 for SIGTERM).

A signal can land inside a finaliser (a `__del__` or weakref callback, such as SQLAlchemy's
clean-up), where Python prints the exception as "Exception ignored" and drops it. The
`sys.unraisablehook` installed with the handlers catches that case and sends the signal
again, so it is raised where the main flow can see it.

Sweep worker processes start with both signals ignored (a signal during their
TensorFlow import would print a traceback), then install the same handlers, and stop
with SIGTERM when their invocation dies (kill -9 included): at once if it is gone already,
before each trial, and within a moment during one. A forked worker's OS parent is the fork
server, which outlives the invocation while any worker holds its pipe, so the parent-death
signal alone is not enough: a thread waits on the invocation's sentinel (a pipe that only
the invocation holds open, so a reused pid cannot fool it) and sends SIGTERM to the worker,
then SIGKILL if it still runs ORPHAN_KILL_S later.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
RESEND_S = 0.05  # a signal a finaliser dropped is sent again after this long
ORPHAN_KILL_S = 60.0  # an orphaned worker still alive this long after its SIGTERM: SIGKILL


class Interrupted(KeyboardInterrupt):
    """Raised by the first SIGINT or SIGTERM."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    def __reduce__(self):  # sent back from a study runner's process as itself
        return (Interrupted, (self.signum,))


class _State:
    received: int | None = None  # the first signal, once one came
    deferring: bool = False  # inside `deferred()`: raise on leaving it
    pending: bool = False  # received while deferring, not yet raised


def _handler(signum: int, frame) -> None:
    if _State.received is not None:
        return
    _State.received = signum
    if _State.deferring:
        _State.pending = True
        return
    raise Interrupted(signum)


def _unraisable(unraisable) -> None:
    """An `Interrupted` dropped by a finaliser: re-arm and re-send the signal, so that the
    handler raises it again once the finaliser has returned (sent from a timer thread a
    moment later: sent at once, the handler would run inside this hook). Anything else:
    Python's hook."""
    if isinstance(unraisable.exc_value, Interrupted):
        _State.received = None
        resend = threading.Timer(RESEND_S, os.kill, (os.getpid(), unraisable.exc_value.signum))
        resend.daemon = True
        resend.start()
        return
    sys.__unraisablehook__(unraisable)


def received() -> int | None:
    """The first SIGINT/SIGTERM this process got, if any."""
    return _State.received


def exit_code(exc: KeyboardInterrupt) -> int:
    return 128 + getattr(exc, "signum", signal.SIGINT)


def describe(exc: KeyboardInterrupt) -> str:
    """The one line the command prints on an interrupt."""
    name = signal.Signals(getattr(exc, "signum", signal.SIGINT)).name
    return f"interrupted ({name}): runs in flight are marked failed; rerun the command to resume"


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Install the handlers for the duration (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    previous_hook, sys.unraisablehook = sys.unraisablehook, _unraisable
    _State.received, _State.pending = None, False
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = previous_hook
        _State.received, _State.pending = None, False


@contextlib.contextmanager
def ignored() -> Iterator[None]:
    """Both signals ignored for the duration: processes started meanwhile inherit that."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A first signal during the block (closing the parent run) is raised after it."""
    _State.deferring = True
    try:
        yield
    finally:
        _State.deferring = False
    if _State.pending:
        _State.pending = False
        raise Interrupted(_State.received)


class _QuietAfterInterrupt(logging.Filter):
    """Drop Optuna's failed-trial warnings (with their TensorFlow traceback) once the
    process was interrupted: the command says so in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _State.received is None and not _is_interrupt(record.exc_info)


def _is_interrupt(exc_info) -> bool:
    return bool(exc_info) and isinstance(exc_info[1], KeyboardInterrupt)


QUIET = _QuietAfterInterrupt()


def quiet_optuna_interrupts() -> None:
    logger = logging.getLogger("optuna.study._optimize")
    if QUIET not in logger.filters:
        logger.addFilter(QUIET)


def die_with_parent() -> None:
    """In a child process (a benchmark's study runner): SIGTERM when its parent dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def install_in_worker() -> None:
    """A sweep worker process: handlers on, and SIGTERM when the invocation dies."""
    for signum in SIGNALS:
        signal.signal(signum, _handler)
    sys.unraisablehook = _unraisable
    _State.received = None
    quiet_optuna_interrupts()
    die_with_parent()  # the OS parent: the invocation when spawned
    parent = multiprocessing.parent_process()  # the invocation (a fork server forked us)
    if parent is not None:
        watch = threading.Thread(target=_term_when_gone, args=(parent,), daemon=True)
        watch.start()
    stop_if_orphaned()  # it died before the watch began


def _term_when_gone(parent: multiprocessing.process.BaseProcess) -> None:
    """The watch thread: SIGTERM to this process as soon as the invocation has exited."""
    parent.join()  # waits on its sentinel, which closes when the invocation exits
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(ORPHAN_KILL_S)  # as the invocation's own stop waits (pool.STOP_WAIT_S)
    os.kill(os.getpid(), signal.SIGKILL)  # a later run's stale-trial pass fails its trial


def stop_if_orphaned() -> None:
    """In a worker: raise `Interrupted` (SIGTERM) now if its invocation is gone."""
    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():
        _handler(signal.SIGTERM, None)
