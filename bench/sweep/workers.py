"""Run a study: its share of trials in this process or in worker processes, watched to the end."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from multiprocessing.synchronize import Event

import optuna
import tensorflow as tf

import bench.sweep.samplers as samplers
from bench import signals
from bench.archs import get_arch
from bench.data import Split
from bench.errors import REPORTED, BenchError, StoreFull, disk_full, one_line
from bench.sweep.invocations import Presence
from bench.sweep.objective import Objective
from bench.sweep.pool import Pool, WorkerJob
from bench.sweep.progress import Progress, say
from bench.sweep.reconcile import Reconciler, after_trial_pass
from bench.sweep.settings import SweepControl, SweepSettings
from bench.sweep.shared import (
    budget_callbacks,
    budget_left,
)
from bench.sweep.storage.backends import open_storage
from bench.sweep.study import (
    FINISHED_STATES,
    Prepared,
    finish_parent,
    load,
    load_split,
    prepare,
)
from bench.tracking.tracker import (
    Tracker,
)


def run_worker(prepared: Prepared, split: Split, job: WorkerJob, stop: Event | None = None) -> None:
    """Load the study and run the job's trials in this process (until the study-wide
    budget is spent or `stop` is set), with the stale-trial pass after each trial."""
    if job.threads:
        tf.config.threading.set_intra_op_parallelism_threads(job.threads)
        tf.config.threading.set_inter_op_parallelism_threads(job.threads)
    settings, control = prepared.settings, prepared.control
    max_epochs = settings.max_epochs or get_arch(settings.arch).max_epochs
    interval, grace = control.heartbeat(prepared.storage_url)
    study = optuna.load_study(
        study_name=settings.name,
        storage=open_storage(
            prepared.storage_url, interval, grace, prepared.control.outage_tolerance
        ),
        sampler=samplers.make_sampler(
            settings.seed,
            (
                samplers.stream_of(settings.split),
                samplers.stream_of(settings.arch),
                *prepared.stream,
                job.worker,
                job.generation,
            ),
            settings.sampler,
        ),
        pruner=samplers.make_pruner(settings.pruner, max_epochs),
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    signals.quiet_optuna_interrupts()
    if not budget_left(study, control.study_trials):
        return
    reconciler = Reconciler(study, Tracker(prepared.tracking_uri), prepared.experiment_id)
    callbacks = [
        _stop_if_orphaned,  # before the next trial: the invocation may have been killed
        *budget_callbacks(control.study_trials),
        after_trial_pass(reconciler, stop),
    ]
    study.optimize(
        Objective(prepared, split),
        n_trials=job.n_trials,
        timeout=job.timeout,
        catch=(Exception,),
        callbacks=callbacks,
    )


def _stop_if_orphaned(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """An Optuna callback: a worker whose invocation is gone stops as on SIGTERM."""
    signals.stop_if_orphaned()


def _worker_process(prepared: Prepared, split: Split, job: WorkerJob, stop: Event) -> None:
    """Entry point of a worker process: an interrupt ends it quietly once its trial is
    marked, with exit status 130 (SIGINT) or 143 (SIGTERM)."""
    if job.environment is not None:
        os.environ.clear()
        os.environ.update(job.environment)
    try:
        signals.install_in_worker()
        if stop.is_set():  # the parent was interrupted while this process started
            raise signals.Interrupted(signal.SIGTERM)
        run_worker(prepared, split, job, stop)
    except KeyboardInterrupt as exc:
        raise SystemExit(signals.exit_code(exc)) from None
    except (Exception, StoreFull) as exc:  # one line (a full disk, a database gone for good)
        if not isinstance(exc, (BenchError, StoreFull)) and not disk_full(exc):
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
        raise SystemExit(REPORTED) from None


def _share(n_trials: int, workers: int) -> list[int]:
    """Split n_trials over workers so that exactly n_trials run in all."""
    return [n_trials // workers + (i < n_trials % workers) for i in range(workers)]


def _watch(prepared: Prepared, deadline: float | None) -> Progress:
    """This invocation's progress (a bar, or one line per trial when not on a terminal)."""
    settings = prepared.settings
    return Progress(
        lambda: load(prepared),
        settings.name,
        settings.n_trials,
        prepared.control.study_trials,
        deadline,
    )


def run_study(
    settings: SweepSettings, split: Split | None = None, control: SweepControl | None = None
) -> optuna.Study:
    """Create or join the study and run this invocation's trials with settings.workers
    processes.

    The split is loaded once here (from settings unless given) and handed to the workers.
    """
    split = split if split is not None else load_split(settings)
    prepared = prepare(settings, split, control)
    started = time.monotonic()
    progress = _watch(prepared, started + settings.timeout if settings.timeout else None)
    progress.pids.add(os.getpid())
    status = "KILLED"
    try:
        with progress, Presence(load(prepared)):
            recycle = (
                settings.trials_per_process and settings.n_trials > settings.trials_per_process
            )
            if settings.workers == 1 and not recycle:
                run_worker(prepared, split, WorkerJob(0, 0, settings.n_trials, settings.timeout))
            else:
                _run_processes(prepared, split, progress.pids)
        status = "FINISHED"
    finally:
        finish_parent(prepared, status, mine=frozenset(progress.pids))
    study = load(prepared)
    _say_why_short(prepared, study, progress.mine, time.monotonic() - started)
    return study


def _say_why_short(prepared: Prepared, study: optuna.Study, done: int, elapsed: float) -> None:
    """One line when the timeout or the study-wide budget ended this invocation early (a
    timeout of a study a rerun does not resume: said by its caller)."""
    settings, study_trials = prepared.settings, prepared.control.study_trials
    if done >= settings.n_trials:
        return
    if not budget_left(study, study_trials):
        say(f"{settings.name}: the study holds its {study_trials} trials (--study-trials)")
    elif settings.timeout and elapsed >= settings.timeout and settings.resumable:
        say(
            f"{settings.name}: the {settings.timeout:g} s timeout ended this run after "
            f"{done} of its {settings.n_trials} trials; rerun the command to add more"
        )


class _StudyHooks:
    """What the worker pool asks of the study (bench.sweep.pool.PoolHooks)."""

    def __init__(self, prepared: Prepared):
        self.prepared = prepared
        self.study = load(prepared)
        self.tracker = Tracker(prepared.tracking_uri)

    def fail_owned(self, pid: int) -> list[int]:
        reconciler = Reconciler(self.study, self.tracker, self.prepared.experiment_id)
        repairs = reconciler.run(mine=frozenset({pid}))
        return sorted(r.number for r in repairs)

    def done_by(self, pid: int) -> int:
        host = socket.gethostname()
        finished = self.study.get_trials(deepcopy=False, states=FINISHED_STATES)
        return sum(t.user_attrs.get("pid") == pid and t.user_attrs.get("host") == host
                   for t in finished)  # fmt: skip

    def budget_left(self) -> bool:
        return budget_left(self.study, self.prepared.control.study_trials)


def _run_processes(prepared: Prepared, split: Split, pids: set[int] | None = None) -> None:
    """settings.workers slots, each running its share of trials in a sequence of worker
    processes of at most settings.trials_per_process trials: TensorFlow keeps native memory
    (compiled functions, XLA executables) for each trial's model until its process exits.
    A dead worker is replaced; an interrupt is forwarded to the workers (bench.sweep.pool)."""
    settings = prepared.settings
    pool = Pool(
        _worker_process,
        (prepared, split),
        _StudyHooks(prepared),
        _share(settings.n_trials, settings.workers),
        settings.trials_per_process or settings.n_trials,
        time.monotonic() + settings.timeout if settings.timeout else None,
        pids,
    )
    pool.run()
