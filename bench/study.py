"""Optuna studies over one architecture, every trial a nested MLflow run.

The parent process creates the Optuna study, the MLflow experiment and the study's parent
run before any worker starts (concurrent creation races on schema set-up); workers only
load them. Trials minimise the validation metric; test metrics are computed and logged to
MLflow for every finished trial but never stored in Optuna, so the sampler and the pruner
cannot see them.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import mlflow
import optuna
from mlflow.tracking import MlflowClient

from bench.config import SweepSettings, TrainOptions, config_params
from bench.data import Split, load_movielens, make_split
from bench.errors import BenchError
from bench.spaces import MAX_EPOCHS, post_params, suggest_config
from bench.tracking import (
    curves_to_metrics,
    environment_tags,
    log_batch,
    log_training,
    resolve_tracking_uri,
    setup,
)
from bench.train import train

FINISHED_STATES = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)
JOURNAL_NAME = "optuna-journal.log"


def default_storage(tracking_uri: str) -> str:
    """The journal file beside the MLflow SQLite file (or in the working directory)."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / JOURNAL_NAME)
    return JOURNAL_NAME


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """A database URL gives an RDB storage; anything else is a journal file path.

    Optuna advises a journal file, not SQLite, for several processes on one machine.
    """
    if "://" in url:
        return optuna.storages.RDBStorage(url)
    lock = optuna.storages.journal.JournalFileOpenLock(url)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url, lock))


def make_sampler(seed: int, stream: tuple[int, ...]) -> optuna.samplers.BaseSampler:
    """TPE seeded per sampler stream (invocation, worker, process generation), so no two
    samplers draw the same sequence: a resumed study, a second worker or a recycled worker
    process with the first one's seed would repeat its random start-up trials."""
    return optuna.samplers.TPESampler(seed=hash((seed, *stream)) % 2**32)


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=5, max_resource=max_epochs)
    return optuna.pruners.NopPruner()


@dataclass(frozen=True)
class Prepared:
    """What workers need to join a study that the parent already created."""

    settings: SweepSettings
    storage_url: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    trials_before: int


def _enable_sqlite_wal(tracking_uri: str) -> None:
    """WAL lets MLflow writers in several processes wait for each other instead of failing."""
    if tracking_uri.startswith("sqlite:///"):
        with sqlite3.connect(tracking_uri.removeprefix("sqlite:///"), timeout=30) as db:
            db.execute("PRAGMA journal_mode=WAL")


def prepare(settings: SweepSettings, split: Split) -> Prepared:
    """Create or resume the study, its MLflow experiment and parent run (parent process only)."""
    tracking_uri = resolve_tracking_uri(settings.tracking_uri)
    storage_url = settings.storage or default_storage(tracking_uri)
    experiment_id = setup(settings.name, tracking_uri)
    _enable_sqlite_wal(tracking_uri)
    study = optuna.create_study(
        study_name=settings.name,
        storage=make_storage(storage_url),
        direction="minimize",
        load_if_exists=True,
    )
    identity = {
        "arch": settings.arch,
        "split": settings.split,
        "metric": settings.metric,
        "seed": settings.seed,
        "valid_fraction": settings.valid_fraction,
    }
    stored = {key: study.user_attrs.get(key) for key in identity}
    if study.user_attrs and stored != identity:
        raise BenchError(
            f"study {settings.name!r} in {storage_url} was created with {stored}, not "
            f"{identity}; pass another --study-name or the original settings"
        )
    for key, value in identity.items():
        study.set_user_attr(key, value)
    if not study.trials:
        study.enqueue_trial(
            post_params(settings.arch, settings.max_epochs), user_attrs={"baseline": "post"}
        )

    client = MlflowClient()
    parent_run_id = study.user_attrs.get("mlflow_parent_run_id")
    if parent_run_id is None:
        run = client.create_run(
            experiment_id, run_name=f"study-{settings.name}", tags={"study": settings.name}
        )
        parent_run_id = run.info.run_id
        study.set_user_attr("mlflow_parent_run_id", parent_run_id)
        params = {
            "sampler": "TPESampler",
            "pruner": settings.pruner,
            "metric": f"val_{settings.metric}",
            "search_space": f"bench.spaces ({settings.arch})",
            **split.provenance,
        }
        for key, value in params.items():
            client.log_param(parent_run_id, key, value)
        for key, value in {"arch": settings.arch, **environment_tags()}.items():
            client.set_tag(parent_run_id, key, value)
    else:
        client.update_run(parent_run_id, status="RUNNING")
    trials_before = len(study.get_trials(deepcopy=False, states=FINISHED_STATES))
    return Prepared(
        settings, storage_url, tracking_uri, experiment_id, parent_run_id, trials_before
    )


class Objective:
    """Train one sampled config; report the validation metric per epoch for pruning."""

    def __init__(self, prepared: Prepared, split: Split):
        self.prepared = prepared
        self.split = split
        self.metric = f"val_{prepared.settings.metric}"
        self.options = TrainOptions(seed=prepared.settings.seed)

    def __call__(self, trial: optuna.Trial) -> float:
        import keras

        keras.backend.clear_session(free_memory=False)  # gc.collect() would cost ~0.25 s
        settings = self.prepared.settings
        config = suggest_config(trial, settings.arch, settings.max_epochs)
        curves: dict[str, list[float]] = defaultdict(list)

        def report(epoch: int, logs: dict[str, float]) -> None:
            for name, value in logs.items():
                curves[name].append(value)
            trial.report(logs[self.metric], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        run = mlflow.start_run(
            experiment_id=self.prepared.experiment_id,
            run_name=f"trial-{trial.number:04d}",
            parent_run_id=self.prepared.parent_run_id,
            tags={"trial_number": str(trial.number), "study": self.prepared.settings.name},
        )
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        try:
            mlflow.log_params({f"optuna.{k}": v for k, v in trial.params.items()})
            result = train(config, self.split, self.options, on_epoch_end=report)
            log_training(result, self.split, self.options, figure=False)
        except optuna.TrialPruned:
            self._end(run.info.run_id, config, curves, "PRUNED", "FINISHED")
            raise
        except KeyboardInterrupt:
            self._end(run.info.run_id, config, curves, "FAIL", "KILLED", "interrupted")
            raise
        except Exception as exc:
            self._end(
                run.info.run_id, config, curves, "FAIL", "FAILED", f"{type(exc).__name__}: {exc}"
            )
            raise
        mlflow.set_tag("trial_state", "COMPLETE")
        mlflow.end_run("FINISHED")
        return result.history[self.metric][-1]

    def _end(self, run_id: str, config, curves, state: str, status: str, error: str = "") -> None:
        tags = {"trial_state": state, "arch": config.arch, **({"error": error} if error else {})}
        log_batch(run_id, curves_to_metrics(dict(curves)), config_params(config), tags)
        mlflow.end_run(status)


@dataclass(frozen=True)
class WorkerJob:
    """One worker process's share: `n_trials` trials, stopping at `timeout` seconds."""

    worker: int
    generation: int
    n_trials: int
    timeout: float | None
    threads: int | None = None


def run_worker(prepared: Prepared, split: Split, job: WorkerJob) -> None:
    """Load the study and run the job's trials in this process."""
    if job.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(job.threads)
        tf.config.threading.set_inter_op_parallelism_threads(job.threads)
    settings = prepared.settings
    mlflow.set_tracking_uri(prepared.tracking_uri)
    study = optuna.load_study(
        study_name=settings.name,
        storage=make_storage(prepared.storage_url),
        sampler=make_sampler(settings.seed, (prepared.trials_before, job.worker, job.generation)),
        pruner=make_pruner(settings.pruner, settings.max_epochs or MAX_EPOCHS[settings.arch]),
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(
        Objective(prepared, split), n_trials=job.n_trials, timeout=job.timeout, catch=(Exception,)
    )


def _worker_process(prepared: Prepared, split: Split, job: WorkerJob) -> None:
    """Entry point of a worker process: Ctrl-C ends it quietly once its trial is marked."""
    try:
        run_worker(prepared, split, job)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def load_split(settings: SweepSettings) -> Split:
    data = load_movielens(settings.data_dir)
    return make_split(
        data, settings.split, seed=settings.seed, valid_fraction=settings.valid_fraction
    )


def _share(n_trials: int, workers: int) -> list[int]:
    """Split n_trials over workers so that exactly n_trials run in all."""
    return [n_trials // workers + (i < n_trials % workers) for i in range(workers)]


def _watch(prepared: Prepared, total: int, already: int, stop: threading.Event) -> None:
    """A progress bar fed by polling the study: trials done, best value, time left."""
    from tqdm import tqdm

    settings = prepared.settings
    study = optuna.load_study(study_name=settings.name, storage=make_storage(prepared.storage_url))
    deadline = time.monotonic() + settings.timeout if settings.timeout else None
    with tqdm(total=total, desc=settings.name, unit="trial") as bar:
        while True:
            finished = study.get_trials(deepcopy=False, states=FINISHED_STATES)
            bar.n = min(total, len(finished) - already)
            complete = [t.value for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
            postfix = {"best": f"{min(complete):.4f}" if complete else "-"}
            if deadline is not None:
                postfix["left"] = f"{max(0.0, deadline - time.monotonic()):.0f}s"
            bar.set_postfix(postfix)
            if stop.wait(1.0):
                bar.refresh()
                return


def run_study(settings: SweepSettings, split: Split | None = None) -> optuna.Study:
    """Create or resume the study and run it with settings.workers processes.

    The split is loaded once here (from settings unless given) and handed to the workers.
    """
    split = split if split is not None else load_split(settings)
    prepared = prepare(settings, split)
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(prepared, settings.n_trials, prepared.trials_before, stop)
    )
    watcher.start()
    status = "KILLED"
    try:
        recycle = settings.trials_per_process and settings.n_trials > settings.trials_per_process
        if settings.workers == 1 and not recycle:
            run_worker(prepared, split, WorkerJob(0, 0, settings.n_trials, settings.timeout))
        else:
            _run_processes(prepared, split)
        status = "FINISHED"
    finally:
        stop.set()
        watcher.join()
        finish_parent(prepared, status)
    return optuna.load_study(study_name=settings.name, storage=make_storage(prepared.storage_url))


def _run_processes(prepared: Prepared, split: Split) -> None:
    """settings.workers slots, each running its share of trials in a sequence of worker
    processes of at most settings.trials_per_process trials: TensorFlow keeps native memory
    (compiled functions, XLA executables) for each trial's model until its process exits."""
    settings = prepared.settings
    threads = max(1, (os.cpu_count() or 1) // settings.workers)
    per_process = settings.trials_per_process or settings.n_trials
    deadline = time.monotonic() + settings.timeout if settings.timeout else None
    remaining = _share(settings.n_trials, settings.workers)
    generations = [0] * settings.workers
    running: dict[int, multiprocessing.Process] = {}
    context = multiprocessing.get_context("spawn")
    try:
        while True:
            for worker, process in list(running.items()):
                if not process.is_alive():
                    process.join()
                    del running[worker]
                    _check_exit(process.exitcode)
            time_left = None if deadline is None else deadline - time.monotonic()
            for worker in range(settings.workers):
                if worker in running or remaining[worker] == 0 or (time_left or 1) <= 0:
                    continue
                job = WorkerJob(
                    worker,
                    generations[worker],
                    min(per_process, remaining[worker]),
                    time_left,
                    threads,
                )
                remaining[worker] -= job.n_trials
                generations[worker] += 1
                running[worker] = context.Process(
                    target=_worker_process, args=(prepared, split, job)
                )
                running[worker].start()
            if not running:
                return
            time.sleep(0.2)
    except KeyboardInterrupt:
        for process in running.values():  # they got the same SIGINT; let them mark trials
            process.join(timeout=30)
        raise


def _check_exit(code: int | None) -> None:
    if code == 130:
        raise KeyboardInterrupt
    if code != 0:
        raise BenchError(f"a worker process exited with code {code}; see its output above")


def finish_parent(prepared: Prepared, status: str) -> None:
    """Record the best trial and Optuna's plots on the parent run, then close it."""
    from bench.report import log_study_summary

    client = MlflowClient(prepared.tracking_uri)
    study = optuna.load_study(
        study_name=prepared.settings.name, storage=make_storage(prepared.storage_url)
    )
    try:
        log_study_summary(client, prepared.parent_run_id, study)
    finally:
        client.set_terminated(prepared.parent_run_id, status=status)
