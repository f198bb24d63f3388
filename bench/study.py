"""Optuna studies over one architecture, every trial a nested MLflow run.

The parent process creates the Optuna study, the MLflow experiment and the study's parent
run before any worker starts (concurrent creation races on schema set-up); workers only
load them. Several invocations (machines) may run one study at once: the set-up runs
once under the storage's lock, a joiner must bring the study's settings, and the parent
run is closed by the invocation that ends last (see `bench.fleet`, `bench.stale`).
Trials minimise the validation metric; test metrics are computed and logged to MLflow for
every finished trial but never stored in Optuna, so the sampler and the pruner cannot see
them.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections import defaultdict
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event

import keras
import optuna
import tensorflow as tf

from bench import signals
from bench.archs import get_arch
from bench.config import SweepSettings, TrainOptions
from bench.data import Split, load_dataset, make_split
from bench.describe import (
    PRUNERS,
    study_description,
    trial_description,
    trial_run_name,
    trial_running,
)
from bench.errors import BenchError
from bench.fleet import (
    SweepControl,
    budget_callbacks,
    budget_left,
    invocation_stream,
    sampler_seed,
    space_version,
)
from bench.pool import Pool, WorkerJob
from bench.progress import Progress, say
from bench.report import log_study_summary
from bench.serving import RATING_MODEL, RATING_MODEL_TAG, Fallback, log_rating_model
from bench.stale import Reconciler, after_trial_pass
from bench.storage import (
    create_or_load_study,
    open_storage,
    redact,
    resolve_storage,
    sqlite_wal,
    tracking_setup_lock,
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


def make_sampler(seed: int, stream: tuple) -> optuna.samplers.BaseSampler:
    """TPE seeded per sampler stream (invocation, worker, process generation), so no two
    samplers draw the same sequence: a joining invocation, a second worker or a recycled
    worker process with the first one's seed would repeat its random start-up trials."""
    return optuna.samplers.TPESampler(seed=sampler_seed(seed, stream))


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
    created: bool = False  # this invocation created the study (plain sampler stream)
    control: SweepControl = field(default_factory=SweepControl)
    stream: tuple = (0,)  # this invocation's sampler stream (bench.fleet)


# what a study made before a setting was stored is taken to have used
MISSING_IDENTITY = {
    "dataset": "ml-100k",
    "pruner": "median",
    "max_epochs": None,
    "sparse_updates": False,
}


def _identity(settings: SweepSettings) -> dict:
    """The settings every invocation joining a study must share with it."""
    return {
        "arch": settings.arch,
        "dataset": settings.dataset,
        "split": settings.split,
        "metric": settings.metric,
        "seed": settings.seed,
        "valid_fraction": settings.valid_fraction,
        "pruner": settings.pruner,
        "max_epochs": settings.max_epochs,
        "sparse_updates": settings.sparse_updates,
        "space_version": space_version(get_arch(settings.arch)),
    }


def _check_identity(study: optuna.Study, identity: dict, storage_url: str) -> None:
    """Refuse, in one line naming what differs, to join a study made with other settings."""
    missing = {**MISSING_IDENTITY, "space_version": identity["space_version"]}
    stored = {key: study.user_attrs.get(key, missing.get(key)) for key in identity}
    differ = [key for key in identity if stored[key] != identity[key]]
    if differ:
        theirs = ", ".join(f"{key}={stored[key]!r}" for key in differ)
        ours = ", ".join(f"{key}={identity[key]!r}" for key in differ)
        raise BenchError(
            f"study {study.study_name!r} in {redact(storage_url)} was created with {theirs}, "
            f"not {ours}; pass another --study-name or the study's own settings"
        )


def prepare(settings: SweepSettings, split: Split, control: SweepControl | None = None) -> Prepared:
    """Create or join the study, its MLflow experiment and parent run.

    The one-off set-up (settings, trial 0, parent run) runs exactly once, under the
    storage's creation lock, however many invocations start at the same moment. Trials
    left running by dead processes are failed in both stores first.
    """
    control = control or SweepControl()
    tracking_uri = resolve_tracking_uri(settings.tracking_uri)
    storage_url = resolve_storage(settings.storage, tracking_uri)
    with tracking_setup_lock(tracking_uri):  # MLflow creates its tables on first use
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

    interval, grace = control.heartbeat(storage_url)
    study, created = create_or_load_study(
        storage_url,
        settings.name,
        heartbeat_interval=interval,
        grace_period=grace,
        initialise=initialise,
    )
    _check_identity(study, identity, storage_url)
    joined = len(study.get_trials(deepcopy=False))
    say(  # no storage address: even redacted, it names the database user
        f"{settings.name}: created the study"
        if created
        else f"{settings.name}: joined the study ({joined} trials so far)"
    )
    for repair in Reconciler(study, tracker, experiment_id).run(full=True):
        say(repair.line(settings.name))
    parent_run_id = study.user_attrs["mlflow_parent_run_id"]
    tracker.client.update_run(parent_run_id, status="RUNNING")
    trials_before = len(study.get_trials(deepcopy=False, states=FINISHED_STATES))
    return Prepared(
        settings, storage_url, tracking_uri, experiment_id, parent_run_id, trials_before,
        created, control, invocation_stream(created),
    )  # fmt: skip


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

    def __init__(self, prepared: Prepared, split: Split):
        self.prepared = prepared
        self.split = split
        self.metric = f"val_{prepared.settings.metric}"
        settings = prepared.settings
        self.options = TrainOptions(seed=settings.seed, sparse_updates=settings.sparse_updates)
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
            trial_run_name(trial.number),
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
        note = trial_description(
            number, settings.name, state, self.metric, values, config.epochs, detail
        )
        tags = {
            "trial_state": state,
            "mlflow.runName": trial_run_name(number, state),
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


def load(prepared: Prepared) -> optuna.Study:
    """The study, through a storage with this invocation's heartbeat settings."""
    interval, grace = prepared.control.heartbeat(prepared.storage_url)
    return optuna.load_study(
        study_name=prepared.settings.name,
        storage=open_storage(prepared.storage_url, interval, grace),
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
        storage=open_storage(prepared.storage_url, interval, grace),
        sampler=make_sampler(settings.seed, (*prepared.stream, job.worker, job.generation)),
        pruner=make_pruner(settings.pruner, max_epochs),
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    signals.quiet_optuna_interrupts()
    if not budget_left(study, control.study_trials):
        return
    reconciler = Reconciler(study, Tracker(prepared.tracking_uri), prepared.experiment_id)
    callbacks = [*budget_callbacks(control.study_trials), after_trial_pass(reconciler, stop)]
    study.optimize(
        Objective(prepared, split),
        n_trials=job.n_trials,
        timeout=job.timeout,
        catch=(Exception,),
        callbacks=callbacks,
    )


def _worker_process(prepared: Prepared, split: Split, job: WorkerJob, stop: Event) -> None:
    """Entry point of a worker process: an interrupt ends it quietly once its trial is
    marked, with exit status 130 (SIGINT) or 143 (SIGTERM)."""
    try:
        signals.install_in_worker()
        if stop.is_set():  # the parent was interrupted while this process started
            raise signals.Interrupted(signal.SIGTERM)
        run_worker(prepared, split, job, stop)
    except KeyboardInterrupt as exc:
        raise SystemExit(signals.exit_code(exc)) from None


def load_split(settings: SweepSettings) -> Split:
    data = load_dataset(settings.dataset, settings.data_dir)
    return make_split(
        data, settings.split, seed=settings.seed, valid_fraction=settings.valid_fraction
    )


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
        with progress:
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
    """One line when the timeout or the study-wide budget ended this invocation early."""
    settings, study_trials = prepared.settings, prepared.control.study_trials
    if done >= settings.n_trials:
        return
    if not budget_left(study, study_trials):
        say(f"{settings.name}: the study holds its {study_trials} trials (--study-trials)")
    elif settings.timeout and elapsed >= settings.timeout:
        say(
            f"{settings.name}: the {settings.timeout:g} s timeout ended this run after "
            f"{done} of its {settings.n_trials} trials; rerun the command to add more"
        )


class _StudyHooks:
    """What the worker pool asks of the study (bench.pool.PoolHooks)."""

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
    A dead worker is replaced; an interrupt is forwarded to the workers (bench.pool)."""
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


def finish_parent(prepared: Prepared, status: str, mine: frozenset[int] = frozenset()) -> None:
    """Fail what this invocation's processes (`mine`, all ended) left running, record the
    best trial and Optuna's plots on the parent run, and close it unless a trial of
    another invocation still runs (that invocation closes it when it ends)."""
    name = prepared.settings.name
    tracker = Tracker(prepared.tracking_uri)
    study = load(prepared)
    with signals.deferred():
        for repair in Reconciler(study, tracker, prepared.experiment_id).run(mine, full=True):
            say(repair.line(name))
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        try:
            register = prepared.settings.register_champion and not running
            log_study_summary(tracker, prepared.parent_run_id, study, register=register)
        finally:
            if running:
                say(
                    f"{name}: {len(running)} trial(s) of other runs still running; the parent "
                    "run stays RUNNING until the last of them ends"
                )
            else:
                tracker.end(prepared.parent_run_id, status)
