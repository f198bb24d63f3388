"""A benchmark's independent pieces (its studies, its folds' fits) run several at a time.

Each piece is one call of a module-level function, run in a spawn process of its own (a
fresh interpreter: no fork of TensorFlow) that dies with the benchmark. A piece does not
depend on which process runs it or on what ran there before (seeded training, its own
sampler stream), so the results are those of running the pieces one after another. A failed
piece or an interrupt stops the others at once; a process that died is one error line.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from bench.errors import BenchError
from bench.signals import die_with_parent

Piece = tuple[Callable[..., Any], tuple]  # a module-level function and its arguments


def run_all(pieces: Mapping[Hashable, Piece], workers: int, what: str) -> dict[Hashable, Any]:
    """Every piece's `function(*args)`, by its key: here, one after another (`workers` <= 1),
    or `workers` at a time in the given order, each in a process of its own; `what` names
    what a piece was doing in the error line of a process that died."""
    if workers <= 1:
        return {key: function(*args) for key, (function, args) in pieces.items()}
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=die_with_parent)
    try:
        futures = {key: pool.submit(function, *args) for key, (function, args) in pieces.items()}
        done = {key: _result(key, future, what) for key, future in futures.items()}
    except BaseException:  # a failed piece, or a signal: the others stop now, not at their end
        _stop(pool)
        raise
    pool.shutdown()
    return done


def _result(key: Hashable, future, what: str) -> Any:
    """A piece's result; one error line if its process died (killed, out of memory)."""
    try:
        return future.result()
    except BrokenProcessPool as exc:
        label = " ".join(key) if isinstance(key, tuple) else str(key)
        raise BenchError(
            f"{label}: the process {what} died ({exc}); rerun the command: finished "
            "studies are reused and a study left short is topped up"
        ) from exc


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the pieces not begun and SIGTERM the running ones (their own workers follow:
    their parent's death signal), without waiting for them."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # the executor's
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
