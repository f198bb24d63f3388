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
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import keras
import optuna
import tensorflow as tf
from tqdm import tqdm

from bench.archs import get_arch
from bench.config import SweepSettings, TrainOptions
from bench.data import Split, load_dataset, make_split
from bench.describe import PRUNERS, study_description, trial_description, trial_running
from bench.errors import BenchError
from bench.report import log_study_summary
from bench.serving import RATING_MODEL, RATING_MODEL_TAG, Fallback, log_rating_model
from bench.storage import (
    create_or_load_study,
    fail_stale_trials,
    is_database,
    open_storage,
    redact,
    resolve_storage,
    sqlite_wal,
    trial_owner_attrs,
)
from bench.tracking import (
    EMBEDDING_PNG,
    Tracker,
    curves_to_metrics,
    embedding_figure,
    environment_tags,
    loss_named,
    resolve_tracking_uri,
    split_inputs,
)
from bench.train import TrainResult, train

FINISHED_STATES = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)


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


def _identity(settings: SweepSettings) -> dict:
    """The settings every invocation joining a study must share with it."""
    return {
        "arch": settings.arch,
        "dataset": settings.dataset,
        "split": settings.split,
        "metric": settings.metric,
        "seed": settings.seed,
        "valid_fraction": settings.valid_fraction,
    }


def prepare(settings: SweepSettings, split: Split) -> Prepared:
    """Create or join the study, its MLflow experiment and parent run.

    The one-off set-up (settings, trial 0, parent run) runs exactly once, under the
    storage's creation lock, however many invocations start at the same moment.
    """
    tracking_uri = resolve_tracking_uri(settings.tracking_uri)
    storage_url = resolve_storage(settings.storage, tracking_uri)
    tracker = Tracker(tracking_uri)
    experiment_id = tracker.experiment(settings.name)
    sqlite_wal(tracking_uri)
    identity = _identity(settings)

    def initialise(study: optuna.Study) -> None:
        if "mlflow_parent_run_id" in study.user_attrs:
            return  # a study made before set-up was locked: already set up
        for key, value in identity.items():
            study.set_user_attr(key, value)
        study.enqueue_trial(
            get_arch(settings.arch).default_params(settings.max_epochs),
            user_attrs={"baseline": "post"},
        )
        parent = _create_parent_run(tracker, experiment_id, settings, split)
        study.set_user_attr("mlflow_parent_run_id", parent)

    study, _ = create_or_load_study(storage_url, settings.name, initialise=initialise)
    stored = {
        key: study.user_attrs.get(key, "ml-100k" if key == "dataset" else None) for key in identity
    }  # studies made before data sets were registered: ml-100k
    if stored != identity:
        raise BenchError(
            f"study {settings.name!r} in {redact(storage_url)} was created with {stored}, not "
            f"{identity}; pass another --study-name or the original settings"
        )
    if not is_database(storage_url):
        _fail_stale(tracker, study)
    parent_run_id = study.user_attrs["mlflow_parent_run_id"]
    tracker.client.update_run(parent_run_id, status="RUNNING")
    trials_before = len(study.get_trials(deepcopy=False, states=FINISHED_STATES))
    return Prepared(
        settings, storage_url, tracking_uri, experiment_id, parent_run_id, trials_before
    )


def _fail_stale(tracker: Tracker, study: optuna.Study) -> None:
    """Trials left RUNNING by dead processes on this host become FAIL in both stores (the
    journal file has no heartbeats)."""
    for number in fail_stale_trials(study):
        run_id = study.trials[number].user_attrs.get("mlflow_run_id")
        if run_id:
            host, pid = (study.trials[number].user_attrs.get(k) for k in ("host", "pid"))
            tags = {"trial_state": "FAIL", "error": f"process {pid} on {host} died"}
            tracker.log(run_id, tags=tags)
            tracker.end(run_id, "FAILED")


def _create_parent_run(
    tracker: Tracker, experiment_id: str, settings: SweepSettings, split: Split
) -> str:
    run_id = tracker.start_run(
        experiment_id,
        f"study-{settings.name}",
        tags={"study": settings.name},
        description=study_description(settings, get_arch(settings.arch), split.provenance),
    )
    params = {
        "sampler": "TPESampler",
        "pruner": settings.pruner,
        "metric": f"val_{settings.metric}",
        "search_space": f"bench.archs.{settings.arch}",
        **split.provenance,
    }
    tracker.log(run_id, params=params, tags={"arch": settings.arch, **environment_tags()})
    tracker.client.log_inputs(run_id, datasets=split_inputs(split))
    return run_id


class Objective:
    """Train one sampled config; report the validation metric per epoch for pruning.

    A trial run gets the sampled values as params (under their own names), the whole config
    as `config.json`, the split as dataset inputs and, when it ends, a description and a
    name that shows a pruned or failed trial. A completed trial that is the study's best so
    far also logs its model, as the pyfunc `rating_model` that the study's end registers, and
    a histogram of its embedding values: the model that earned the score, not a retrained
    one (a second training would cost up to minutes and could differ).
    """

    STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}
    NAME_SUFFIX = {"PRUNED": " (pruned)", "FAIL": " (failed)"}  # in the runs table

    def __init__(self, prepared: Prepared, split: Split):
        self.prepared = prepared
        self.split = split
        self.metric = f"val_{prepared.settings.metric}"
        self.options = TrainOptions(seed=prepared.settings.seed)
        self.tracker = Tracker(prepared.tracking_uri)
        self.arch = get_arch(prepared.settings.arch)
        self.inputs = split_inputs(split)  # once per process, not per trial

    def __call__(self, trial: optuna.Trial) -> float:
        keras.backend.clear_session(free_memory=False)  # gc.collect() would cost ~0.25 s
        settings = self.prepared.settings
        config = self.arch.suggest(trial, settings.max_epochs or self.arch.max_epochs)
        curves: dict[str, list[float]] = defaultdict(list)

        def report(epoch: int, logs: dict[str, float]) -> None:
            for name, value in logs.items():
                curves[name].append(value)
            trial.report(logs[self.metric], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        run_id = self.tracker.start_run(
            self.prepared.experiment_id,
            f"trial-{trial.number:04d}",
            parent=self.prepared.parent_run_id,
            tags={"trial_number": str(trial.number), "study": settings.name},
            description=trial_running(trial.number, settings.name),
        )
        trial.set_user_attr("mlflow_run_id", run_id)
        for key, value in trial_owner_attrs().items():
            trial.set_user_attr(key, value)
        try:
            self.tracker.log_config(
                run_id, config, self.split, self.options, trial.params, self.inputs
            )
            result = train(config, self.split, self.options, on_epoch_end=report)
            value = result.history[self.metric][-1]
            self.tracker.log_training(
                run_id, result, self.split, self.options, figure=False, config_logged=True
            )
            if self.best_so_far(trial, value):
                self._log_model(run_id, result, trial.number)
        except optuna.TrialPruned:
            self._end(run_id, trial.number, config, curves, "PRUNED")
            raise
        except KeyboardInterrupt:
            self._end(run_id, trial.number, config, curves, "FAIL", "interrupted", "KILLED")
            raise
        except Exception as exc:
            self._end(run_id, trial.number, config, curves, "FAIL", f"{type(exc).__name__}: {exc}")
            raise
        self._finish(run_id, trial.number, config, result.history[self.metric], "COMPLETE")
        return value

    def _log_model(self, run_id: str, result: TrainResult, number: int) -> None:
        """The best-so-far trial's model (pyfunc, raw ids) and its embedding histogram."""
        split = self.split
        title = f"Embedding values of trial {number} ({self.prepared.settings.name})"
        self.tracker.log_figure(run_id, embedding_figure(result.embeddings, title), EMBEDDING_PNG)
        if split.user_ids is None or split.item_ids is None:
            return  # a split built without its id maps: no servable model
        fallback = Fallback.from_ratings(split.train, split.n_users, split.n_items)
        uri = log_rating_model(
            self.tracker.client, run_id, result.model, split.user_ids, split.item_ids, fallback,
            rating_scale=(split.scale.low, split.scale.high), name=RATING_MODEL,
        )  # fmt: skip
        self.tracker.log(run_id, tags={RATING_MODEL_TAG: uri})

    def _end(
        self, run_id: str, number: int, config, curves, state: str, error: str = "", status=None
    ) -> None:
        """A pruned or failed trial: its curves so far, its state, and an end."""
        tags = {"arch": config.arch, **({"error": error} if error else {})}
        metrics = curves_to_metrics(loss_named(dict(curves), config.loss))
        self.tracker.log(run_id, metrics, tags=tags)
        pruner = PRUNERS[self.prepared.settings.pruner]
        detail = error or pruner
        values = list(curves.get(self.metric, []))
        self._finish(run_id, number, config, values, state, detail, status or self.STATUS[state])

    def _finish(
        self,
        run_id: str,
        number: int,
        config,
        values: list[float],
        state: str,
        detail: str = "",
        status: str = "FINISHED",
    ) -> None:
        """State tag, a name showing a pruned or failed trial, the description; end the run."""
        settings = self.prepared.settings
        suffix = self.NAME_SUFFIX.get(state, "")
        note = trial_description(
            number, settings.name, state, self.metric, values, config.epochs, detail
        )
        tags = {
            "trial_state": state,
            "mlflow.runName": f"trial-{number:04d}{suffix}",
            "mlflow.note.content": note,
        }
        self.tracker.log(run_id, tags=tags)
        self.tracker.end(run_id, status)

    @staticmethod
    def best_so_far(trial: optuna.Trial, value: float) -> bool:
        """Whether `value` beats every completed trial of the study (this one is not told)."""
        try:
            best = trial.study.best_value
        except ValueError:  # no completed trial yet
            return True
        if trial.study.direction == optuna.study.StudyDirection.MAXIMIZE:
            return value > best
        return value < best


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
        tf.config.threading.set_intra_op_parallelism_threads(job.threads)
        tf.config.threading.set_inter_op_parallelism_threads(job.threads)
    settings = prepared.settings
    max_epochs = settings.max_epochs or get_arch(settings.arch).max_epochs
    study = optuna.load_study(
        study_name=settings.name,
        storage=open_storage(prepared.storage_url),
        sampler=make_sampler(settings.seed, (prepared.trials_before, job.worker, job.generation)),
        pruner=make_pruner(settings.pruner, max_epochs),
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
    data = load_dataset(settings.dataset, settings.data_dir)
    return make_split(
        data, settings.split, seed=settings.seed, valid_fraction=settings.valid_fraction
    )


def _share(n_trials: int, workers: int) -> list[int]:
    """Split n_trials over workers so that exactly n_trials run in all."""
    return [n_trials // workers + (i < n_trials % workers) for i in range(workers)]


def _watch(prepared: Prepared, total: int, already: int, stop: threading.Event) -> None:
    """A progress bar fed by polling the study: trials done, best value, time left."""
    settings = prepared.settings
    study = optuna.load_study(study_name=settings.name, storage=open_storage(prepared.storage_url))
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
    return optuna.load_study(study_name=settings.name, storage=open_storage(prepared.storage_url))


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
    tracker = Tracker(prepared.tracking_uri)
    study = optuna.load_study(
        study_name=prepared.settings.name, storage=open_storage(prepared.storage_url)
    )
    try:
        log_study_summary(tracker, prepared.parent_run_id, study)
    finally:
        tracker.end(prepared.parent_run_id, status)
