"""An invocation stand-in whose one worker sleeps through a long "trial", for kill -9 tests:
`python -m tests.support.orphans METHOD OUT [stubborn]` prints the worker's pid, then waits
for it.

The worker installs the sweep workers' signal handling, writes "ready" to OUT, and then
the name of the signal that ended its sleep. It imports neither TensorFlow nor MLflow, so
it starts in well under a second.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from pathlib import Path

from bench import signals

SLEEP_S = 60
STUBBORN_KILL_S = 1.0  # bench.signals.ORPHAN_KILL_S, shortened


def sleep_in_worker(out: str, stubborn: bool) -> None:
    """A worker's "trial": a long sleep that only a signal ends early (a stubborn one
    sleeps on after SIGTERM, as a worker stuck in native code would)."""
    signals.ORPHAN_KILL_S = STUBBORN_KILL_S
    signals.install_in_worker()
    Path(out).write_text("ready")
    try:
        time.sleep(SLEEP_S)
    except KeyboardInterrupt as exc:
        Path(out).write_text(str(exc))
        if stubborn:
            time.sleep(SLEEP_S)
        raise SystemExit(signals.exit_code(exc)) from None


def main(method: str, out: str, stubborn: str = "") -> None:
    """Start the worker (forked by a fork server, or spawned), say its pid, wait for it."""
    context = multiprocessing.get_context(method)
    worker = context.Process(target=sleep_in_worker, args=(out, bool(stubborn)))
    worker.start()
    print(worker.pid, flush=True)
    worker.join()


if __name__ == "__main__":
    main(*sys.argv[1:])
