"""Optuna studies over one architecture, every trial a nested MLflow run.

The parent process creates the Optuna study, the MLflow experiment and the study's parent
run before any worker starts (concurrent creation races on schema set-up); workers only
load them. Several invocations (machines) may run one study at once: the set-up runs
once under the storage's lock, a joiner must bring the study's settings, and the parent
run is closed by the invocation that ends last (see `bench.sweep.shared`, `bench.sweep.reconcile`).
Trials minimise the validation metric; test metrics are computed and logged to MLflow for
every finished trial but never stored in Optuna, so the sampler and the pruner cannot see
them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import optuna

from bench import signals
from bench.archs import get_arch
from bench.data import Split, load_dataset, make_split
from bench.datasets import get_dataset
from bench.errors import BenchError
from bench.sweep.descriptions import experiment_description, study_description
from bench.sweep.invocations import arrive, leave, live_others
from bench.sweep.progress import say
from bench.sweep.reconcile import Reconciler
from bench.sweep.settings import REGISTERS_ATTR, SweepControl, SweepSettings
from bench.sweep.shared import (
    drop_unrunnable_retries,
    invocation_stream,
    space_version,
)
from bench.sweep.storage.backends import create_or_load_study, open_storage
from bench.sweep.storage.urls import redact, resolve_storage
from bench.sweep.summary import log_study_summary
from bench.tracking.environment import environment_tags
from bench.tracking.permissions import require_writes
from bench.tracking.serving import registered_name
from bench.tracking.tracker import (
    Tracker,
    resolve_tracking_uri,
    split_inputs,
)
from bench.training.tasks import get_task

SETUP_ATTR = "bench.setup"  # study user attr and parent-run tag: one set-up of the study
FINISHED_STATES = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)


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
    stream: tuple = (0,)  # this invocation's sampler stream (bench.sweep.shared)


# what a study made before a setting was stored is taken to have used
MISSING_IDENTITY = {  # what a study made before the key existed was run with
    "dataset": "ml-100k",
    "sampler": "tpe",
    "patience": None,
    "pruner": "median",
    "max_epochs": None,
    "sparse_updates": False,
    "experiment": None,
    "task": "rating",  # a study made before tasks: a rating one
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
        "sampler": settings.sampler,
        "patience": settings.patience,
        "pruner": settings.pruner,
        "max_epochs": settings.max_epochs,
        "sparse_updates": settings.sparse_updates,
        "experiment": settings.experiment,
        "task": settings.task,
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
    check_writes([settings])  # `bench sweep` checked all its studies; this: other callers
    tracker = Tracker(tracking_uri)
    experiment_id = tracker.experiment(settings.experiment_name, experiment_description(settings))
    identity = _identity(settings)

    def initialise(study: optuna.Study) -> None:
        """Each step once, also when a set-up that stopped half-way (a full disk) is rerun."""
        if "mlflow_parent_run_id" in study.user_attrs:
            return  # a study made before set-up was locked: already set up
        for key, value in identity.items():
            study.set_user_attr(key, value)
        study.set_user_attr(REGISTERS_ATTR, settings.register_champion)  # for `study repair`
        setup = _setup_id(study)
        queued = {t.user_attrs.get("baseline") for t in study.get_trials(deepcopy=False)}
        task = get_task(settings.task).defaults  # the task's own parameters, untuned
        for label, params in get_arch(settings.arch).start_params(settings.max_epochs).items():
            if label not in queued:  # trial 0: the published settings; then the priors
                study.enqueue_trial({**params, **task}, user_attrs={"baseline": label})
        parent = _find_parent_run(tracker, experiment_id, setup) or _create_parent_run(
            tracker, experiment_id, settings, split, setup
        )
        study.set_user_attr("mlflow_parent_run_id", parent)

    interval, grace = control.heartbeat(storage_url)
    study, created = create_or_load_study(
        storage_url,
        settings.name,
        settings.direction,
        heartbeat_interval=interval,
        grace_period=grace,
        initialise=initialise,
    )
    _check_identity(study, identity, storage_url)
    arrive(study)  # before anything: from now on no one closes the parent run under us
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


def check_writes(studies: list[SweepSettings]) -> None:
    """Refuse, before any study is created or trained, sweeps whose MLflow user may not
    write their experiments and champions' registered models (`bench.tracking.permissions`)."""
    uri = resolve_tracking_uri(studies[0].tracking_uri)
    experiments = sorted({settings.experiment_name for settings in studies})
    models = sorted({champion_name(s) for s in studies if s.register_champion})
    require_writes(uri, experiments, models)


def champion_name(settings: SweepSettings) -> str:
    """The registered model a study's best trial is registered in."""
    return registered_name(settings.arch, get_dataset(settings.dataset).label, settings.task)


def _setup_id(study: optuna.Study) -> str:
    """The study's set-up id (made once), which tags its parent run."""
    if SETUP_ATTR not in study.user_attrs:
        study.set_user_attr(SETUP_ATTR, uuid.uuid4().hex)
    return study.user_attrs[SETUP_ATTR]


def _find_parent_run(tracker: Tracker, experiment_id: str, setup: str) -> str | None:
    """The parent run an earlier, unfinished set-up of this study created, if any."""
    found = tracker.client.search_runs(
        [experiment_id], f"tags.`{SETUP_ATTR}` = '{setup}'", max_results=1
    )
    return found[0].info.run_id if found else None


def _create_parent_run(
    tracker: Tracker, experiment_id: str, settings: SweepSettings, split: Split, setup: str
) -> str:
    run_id = tracker.start_run(
        experiment_id,
        f"study-{settings.name}",
        tags={"study": settings.name, SETUP_ATTR: setup},
        description=study_description(settings, get_arch(settings.arch), split.provenance),
    )
    params = {
        "sampler": settings.sampler,
        "pruner": settings.pruner,
        "patience": settings.patience or "off",
        "metric": f"val_{settings.metric}",
        "task": settings.task,
        "search_space": f"bench.archs.{settings.arch}",
        **split.provenance,
    }
    tracker.log(run_id, params=params, tags={"arch": settings.arch, **environment_tags()})
    tracker.client.log_inputs(run_id, datasets=split_inputs(split))
    return run_id


def load(prepared: Prepared) -> optuna.Study:
    """The study, through a storage with this invocation's heartbeat settings."""
    interval, grace = prepared.control.heartbeat(prepared.storage_url)
    return optuna.load_study(
        study_name=prepared.settings.name,
        storage=open_storage(
            prepared.storage_url, interval, grace, prepared.control.outage_tolerance
        ),
    )


def load_split(settings: SweepSettings) -> Split:
    data = load_dataset(settings.dataset, settings.data_dir)
    return make_split(
        data, settings.split, seed=settings.seed, valid_fraction=settings.valid_fraction
    )


def finish_parent(prepared: Prepared, status: str, mine: frozenset[int] = frozenset()) -> None:
    """Fail what this invocation's processes (`mine`, all ended) left running, record the
    best trial and Optuna's plots on the parent run, and close it unless another
    invocation is alive or its trial still runs (that invocation closes it when it ends)."""
    name = prepared.settings.name
    tracker = Tracker(prepared.tracking_uri)
    study = load(prepared)
    with signals.deferred():
        leave(study)
        for repair in Reconciler(study, tracker, prepared.experiment_id).run(mine, full=True):
            say(repair.line(name))
        if dropped := drop_unrunnable_retries(study, prepared.control.study_trials):
            numbers = ", ".join(map(str, dropped))
            say(f"{name}: queued trial {numbers} marked FAIL: the study's budget is spent")
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        others = live_others(study)
        try:
            register = prepared.settings.register_champion and not running
            log_study_summary(tracker, prepared.parent_run_id, study, register=register)
        finally:
            if running or others:
                say(
                    f"{name}: {len(running)} trial(s) of other runs still running, "
                    f"{len(others)} other invocation(s) alive; the parent run stays RUNNING "
                    "until the last of them ends"
                )
            else:
                tracker.end(prepared.parent_run_id, status)
