"""The worker processes of one sweep invocation.

`workers` slots each run their share of the invocation's trials in a sequence of
processes of at most `per_process` trials (TensorFlow keeps native memory for every
trial's compiled model until its process exits). A process that dies (kill -9, the OOM
killer) is reported in one line with its exit code; its running trial is failed in both
stores, and a new process takes the rest of its share while the study's budget and the
timeout allow. A process that exits 130 or 143 was interrupted: the invocation stops.

Workers are forked by a fork server that imported the harness once (`worker_context`), so
neither a first trial nor a recycled worker pays the imports of TensorFlow, Keras, MLflow
and Optuna; each is handed the parent's environment as it starts. A worker watches its
invocation, not its OS parent (the fork server, which lives on while a worker does): when
the invocation dies, even by kill -9, each worker gets SIGTERM within a moment, fails its
trial in flight and starts no other (bench.signals).

On SIGINT/SIGTERM the parent forwards the signal to every worker (they may not have had
it: `kill PID` reaches only the parent), tells workers still starting up to stop, waits
up to STOP_WAIT_S for them to mark their trials, and kills what is left.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Protocol

from bench import signals
from bench.errors import REPORTED, BenchError, Reported
from bench.sweep.progress import say

START_ENV = "BENCH_WORKER_START"  # how worker processes start: forkserver (default) or spawn
PRELOAD = ["bench.sweep.workers"]  # what the fork server imports once for every worker
STOP_WAIT_S = 60.0  # bound on the wait for interrupted workers
POLL_S = 0.2
INTERRUPTED = (128 + signal.SIGINT, 128 + signal.SIGTERM)


@dataclass(frozen=True)
class WorkerJob:
    """One worker process's share: `n_trials` trials, stopping at `timeout` seconds."""

    worker: int
    generation: int
    n_trials: int
    timeout: float | None
    threads: int | None = None
    # the parent's environment as the worker starts (it may hold credentials: never shown)
    environment: dict[str, str] | None = field(default=None, repr=False)


def worker_context() -> multiprocessing.context.BaseContext:
    """Where worker processes come from: by default a fork server of this invocation that
    imported the harness once (TensorFlow, Keras, MLflow, Optuna: seconds of CPU), so
    neither a worker's first trial nor a recycled worker pays the imports again;
    `BENCH_WORKER_START=spawn` starts each one afresh, as before."""
    method = os.environ.get(START_ENV) or "forkserver"
    if method not in ("forkserver", "spawn"):
        raise BenchError(f"${START_ENV}={method}: use forkserver or spawn")
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(PRELOAD)
    return context


class PoolHooks(Protocol):
    """What the pool asks of the study."""

    def fail_owned(self, pid: int) -> list[int]:
        """Fail the running trials of a dead process in both stores; their numbers."""

    def done_by(self, pid: int) -> int:
        """How many trials the process finished (or had failed for it)."""

    def budget_left(self) -> bool:
        """Whether the study-wide budget allows another trial."""


@dataclass
class Slot:
    worker: int
    remaining: int  # trials of this slot's share not yet handed to a process
    generation: int = 0
    process: BaseProcess | None = None
    job: WorkerJob | None = None


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"exit code {code} ({signal.Signals(-code).name})"
    return f"exit code {code}"


class Pool:
    """Runs `target(*args, job, stop_event)` in worker processes; see the module doc."""

    def __init__(
        self,
        target: Callable,
        args: tuple,
        hooks: PoolHooks,
        shares: list[int],
        per_process: int,
        deadline: float | None,
        pids: set[int] | None = None,
    ):
        self.context = worker_context()
        self.stop_event = self.context.Event()
        self.target, self.args, self.hooks = target, args, hooks
        self.slots = [Slot(worker, share) for worker, share in enumerate(shares)]
        self.per_process = per_process
        self.deadline = deadline
        self.threads = max(1, (os.cpu_count() or 1) // len(shares))
        self.pids = pids if pids is not None else set()  # every worker process's id
        self.exhausted = False

    def run(self) -> None:
        try:
            while self._step():
                time.sleep(POLL_S)
        except KeyboardInterrupt as exc:
            self.stop(getattr(exc, "signum", signal.SIGINT))
            raise
        except Reported:  # a worker's error (a full disk, say) ends the others too
            self.stop(signal.SIGTERM)
            raise

    def _step(self) -> bool:
        """Reap ended processes, start new ones; whether any still runs."""
        for slot in self.slots:
            if slot.process is not None and not slot.process.is_alive():
                self._ended(slot)
        time_left = None if self.deadline is None else self.deadline - time.monotonic()
        for slot in self.slots:
            in_time = time_left is None or time_left > 0
            if slot.process is None and slot.remaining > 0 and in_time:
                if not self.exhausted and not self.hooks.budget_left():
                    self.exhausted = True
                if not self.exhausted:
                    self._start(slot, time_left)
        return any(slot.process is not None for slot in self.slots)

    def _start(self, slot: Slot, time_left: float | None) -> None:
        job = WorkerJob(
            slot.worker,
            slot.generation,
            min(self.per_process, slot.remaining),
            time_left,
            self.threads,
            dict(os.environ),  # a fork server started earlier has the environment of then
        )
        process = self.context.Process(target=self.target, args=(*self.args, job, self.stop_event))
        with signals.ignored():  # until the worker installs its handlers (a signal in
            process.start()  # these few milliseconds is lost; the group's others stop it)
        self.pids.add(process.pid)
        slot.remaining -= job.n_trials
        slot.generation += 1
        slot.process, slot.job = process, job

    def _ended(self, slot: Slot) -> None:
        process, job = slot.process, slot.job
        process.join()
        slot.process = None
        code = process.exitcode
        if code == 0:
            return
        if code in INTERRUPTED:
            raise signals.Interrupted(code - 128)
        if code == REPORTED:  # it printed its error line: stop, and say no more
            raise Reported(f"worker {slot.worker} (pid {process.pid}) stopped on an error")
        failed = self.hooks.fail_owned(process.pid)
        done = self.hooks.done_by(process.pid)
        where = f"worker {slot.worker} (pid {process.pid}) died with {describe_exit(code)}"
        if done == 0:
            raise BenchError(f"{where} before it finished a trial; see its output above")
        slot.remaining += job.n_trials - done
        marked = f"trial {', '.join(map(str, failed))} marked FAIL in both stores; "
        more = slot.remaining > 0 and not self.exhausted
        then = "a new worker takes its place" if more else "its share is done"
        say(f"{where}; {marked if failed else ''}{then}")

    def stop(self, signum: int) -> None:
        """Forward the signal, wait (bounded) for the workers, kill what is left."""
        self.stop_event.set()
        alive = [s.process for s in self.slots if s.process is not None and s.process.is_alive()]
        for process in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signum)
        deadline = time.monotonic() + STOP_WAIT_S
        for process in alive:
            process.join(max(0.1, deadline - time.monotonic()))
        for process in alive:
            if process.is_alive():
                process.kill()
                process.join(5)
