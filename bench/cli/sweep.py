"""Tune each registered architecture with Optuna on a validation split, tracked in MLflow.

Rerunning the same command continues the same study (the post's settings are trial 0,
enqueued once), and the same command on several machines with one database storage runs
one study together. The timeout applies to each architecture.
"""

from __future__ import annotations

import argparse
import os

import bench.sweep.samplers as samplers
from bench.archs import ARCHS, get_arch
from bench.cli.common import (
    add_data_flags,
    add_seed_flag,
    add_storage_flag,
    add_tracking_flag,
    add_tuning_flags,
    check_splits,
    command_parser,
)
from bench.datasets import get_dataset
from bench.errors import BenchError
from bench.metrics import TUNABLE
from bench.sweep.settings import (
    DEFAULT_GRACE_S,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_TOLERANCE_S,
    SweepControl,
    SweepSettings,
)
from bench.sweep.storage.names import JOURNAL_NAME, STORAGE_ENV, is_database
from bench.training.tasks import TASKS, task_metric

DEFAULTS = SweepSettings(arch="mf")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = command_parser(
        "sweep",
        __doc__,
        "bench sweep --arch mf --trials 8 --max-epochs 10   # a first look: 27 s on 2 idle cores",
        "bench sweep --arch all   # the default sweep: every architecture, 240 s each",
        "bench sweep --arch mf --study-name mf-shared --study-trials 200 "
        "--storage postgresql+psycopg://sweeper@db-host/optuna   # on several machines",
    )
    tune = parser.add_argument_group("what to tune")
    tune.add_argument(
        "--arch",
        choices=[*ARCHS, "all"],
        default="all",
        help="the architecture to tune, one study each (default %(default)s: every one)",
    )
    tune.add_argument(
        "--trials",
        type=int,
        help=f"this invocation's trials per architecture (default {DEFAULTS.n_trials}; "
        "with --study-trials alone: until the study holds that many)",
    )
    tune.add_argument(
        "--timeout",
        type=float,
        default=DEFAULTS.timeout,
        help="seconds per architecture (default %(default)g; 0: no limit)",
    )
    tune.add_argument(
        "--split",
        default=DEFAULTS.split,
        help="seed (a seeded random split), or one of the data set's folds (default %(default)s)",
    )
    add_seed_flag(tune, "sampler, split, init and batch-order seed")
    tune.add_argument(
        "--valid-fraction",
        type=float,
        default=DEFAULTS.valid_fraction,
        help="share of the training part held out for validation (default %(default)s)",
    )
    tune.add_argument(
        "--task",
        choices=list(TASKS),
        default=DEFAULTS.task,
        help="what the models learn: "
        + "; ".join(f"{t.name}: {t.description}" for t in TASKS.values())
        + " (default %(default)s)",
    )
    tune.add_argument(
        "--metric",
        choices=TUNABLE,
        help="validation metric the trials select on, in its own direction (default: the "
        "task's: " + ", ".join(f"{t.metric} for {t.name}" for t in TASKS.values()) + ")",
    )
    search = parser.add_argument_group("how to search")
    add_tuning_flags(
        search,
        (list(samplers.SAMPLERS), list(samplers.PRUNERS)),
        (DEFAULTS.sampler, DEFAULTS.pruner, DEFAULTS.patience),
    )
    search.add_argument(
        "--workers",
        type=int,
        default=DEFAULTS.workers,
        help="worker processes on the study, each with cores / N threads (default %(default)s)",
    )
    tune.add_argument(
        "--max-epochs", type=int, help="cap on a trial's epochs (default: the space's own)"
    )
    search.add_argument(
        "--sparse-updates",
        action="store_true",
        help="row-sparse Adam on embedding tables: a step costs its batch, not the tables "
        "(for large data sets; see README's Performance)",
    )
    stores = parser.add_argument_group("where the results go")
    add_storage_flag(stores)
    add_tracking_flag(stores)
    stores.add_argument(
        "--study-name",
        help="default ARCH-SPLIT and a part per identity setting off its default "
        "(mf-seed, mf-seed-e10 with --max-epochs 10); with --arch all, NAME-ARCH",
    )
    stores.add_argument(
        "--experiment",
        help="one MLflow experiment for the studies, so that several architectures compare "
        "in one table (default: an experiment per study, named after it)",
    )
    add_data_flags(parser.add_argument_group("data"))
    add_fleet_flags(
        parser.add_argument_group("one study on several machines (docs/several-machines.md)")
    )
    args = parser.parse_args(argv)
    validate(args)
    return args


def add_fleet_flags(parser: argparse._ActionsContainer) -> None:
    """The flags for one study run by several invocations (README: several machines)."""
    parser.add_argument(
        "--study-trials",
        type=int,
        help="stop once the study holds N started trials, counting every invocation's "
        "(complete, pruned, failed and running ones)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=int,
        help=f"seconds between a running trial's heartbeats on a database storage "
        f"(default {DEFAULT_HEARTBEAT_S}; not on a journal file)",
    )
    parser.add_argument(
        "--grace-period",
        type=int,
        default=DEFAULT_GRACE_S,
        help="seconds without a heartbeat after which a trial is failed (default %(default)s)",
    )
    parser.add_argument(
        "--outage-tolerance",
        type=float,
        default=DEFAULT_TOLERANCE_S,
        help="seconds a database storage may be unreachable before the invocation stops "
        "with an error; meanwhile every call waits for it (default %(default)g)",
    )


def validate(args: argparse.Namespace) -> None:
    """Refuse values that cannot work, in one line, before anything starts."""
    checks = [
        (args.trials is None or args.trials >= 1, "--trials must be at least 1"),
        (args.study_trials is None or args.study_trials >= 1, "--study-trials must be >= 1"),
        (args.workers >= 1, "--workers must be at least 1"),
        (args.max_epochs is None or args.max_epochs >= 1, "--max-epochs must be at least 1"),
        (args.timeout >= 0, "--timeout must be positive seconds, or 0 for no limit"),
        (0 < args.valid_fraction < 1, "--valid-fraction must lie strictly between 0 and 1"),
        (args.grace_period >= 1, "--grace-period must be at least 1 second"),
        (args.outage_tolerance >= 0, "--outage-tolerance must be 0 or more seconds"),
        (args.patience >= 0, "--patience must be 0 (off) or a number of epochs"),
    ]
    for ok, message in checks:
        if not ok:
            raise BenchError(message)
    check_splits(args.dataset, [args.split], "--split")
    args.metric = task_metric(args.task, args.metric)
    if args.task == "ranking" and args.sparse_updates:
        raise BenchError("--sparse-updates: ranking trains with dense updates; drop the flag")
    samplers.require("sampler", args.sampler)
    _validate_heartbeat(args)


def _validate_heartbeat(args: argparse.Namespace) -> None:
    """--heartbeat-interval only on a database storage, below --grace-period; decided
    without loading Optuna or MLflow."""
    storage = args.storage or os.environ.get(STORAGE_ENV)
    interval = args.heartbeat_interval
    if not is_database(storage or ""):
        if interval is not None:
            journal = storage or f"{JOURNAL_NAME} beside the MLflow SQLite file (the default)"
            raise BenchError(
                f"--heartbeat-interval needs a database storage, not the journal file "
                f"{journal}; pass --storage or ${STORAGE_ENV} with a database URL, or drop it"
            )
        return
    interval = DEFAULT_HEARTBEAT_S if interval is None else interval
    if interval < 1 or args.grace_period <= interval:
        raise BenchError(
            f"--heartbeat-interval ({interval} s) must be at least 1 second and below "
            f"--grace-period ({args.grace_period} s)"
        )


def settings_for(args: argparse.Namespace, arch: str) -> SweepSettings:
    name = args.study_name
    if name and args.arch == "all":
        name = f"{name}-{arch}"
    return SweepSettings(
        arch=arch,
        dataset=args.dataset,
        n_trials=args.trials or args.study_trials or DEFAULTS.n_trials,
        timeout=args.timeout or None,
        split=args.split,
        seed=args.seed,
        valid_fraction=args.valid_fraction,
        metric=args.metric,
        task=args.task,
        pruner=args.pruner,
        sampler=args.sampler,
        patience=args.patience or None,
        workers=args.workers,
        max_epochs=args.max_epochs,
        sparse_updates=args.sparse_updates,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        study_name=name,
        experiment=args.experiment,
        data_dir=args.data_dir,
    )


def control_for(args: argparse.Namespace) -> SweepControl:
    return SweepControl(
        study_trials=args.study_trials,
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
        outage_tolerance=args.outage_tolerance,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # before the libraries load: `--help` and bad flags are instant
    from bench.sweep.study import check_writes
    from bench.sweep.summary import summarise
    from bench.sweep.workers import run_study
    from bench.tracking.tracker import Tracker, resolve_tracking_uri

    archs = list(ARCHS) if args.arch == "all" else [args.arch]
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    check_writes([settings_for(args, arch) for arch in archs])  # before any study starts
    client = Tracker(tracking_uri).client
    metric = args.metric.upper()
    rows = []
    for arch in archs:
        settings = settings_for(args, arch)
        study = run_study(settings, control=control_for(args))
        rows.append(summary_row(arch, settings, summarise(client, study), metric))
    import pandas as pd

    table = pd.DataFrame(rows)
    print(f"\nbest trial per architecture, selected on validation {metric} (test never used):")
    print(table.to_string(index=False, float_format="{:.4f}".format, na_rep="-"))
    studies = {row["arch"]: row["study"] for row in rows}
    print(where_the_results_are(tracking_uri, studies, args.dataset, args.experiment, args.task))
    return 0


def summary_row(arch: str, settings: SweepSettings, s: dict, metric: str) -> dict:
    """A study's line of the closing table: its trials, its best trial's validation and
    test figures (the task's), and the post's settings (trial 0) beside them."""
    counts = f"{s.get('n_complete', 0)}/{s.get('n_pruned', 0)}/{s.get('n_fail', 0)}"
    row = {"arch": arch, "study": settings.name, "complete/pruned/failed": counts,
           "best trial": s.get("best_trial"), f"val {metric}": s.get("best_val")}  # fmt: skip
    if settings.task == "ranking":
        row.update({"test NDCG@10": s.get("best_test_ndcg_at_10"),
                    "test recall@10": s.get("best_test_recall_at_10"),
                    f"post-settings val {metric}": s.get("post_val"),
                    "post-settings test NDCG@10": s.get("post_test_ndcg_at_10")})  # fmt: skip
        return row
    row.update({"test MAE": s.get("best_test_mae"), "test RMSE": s.get("best_test_rmse"),
                "test MAE rnd": s.get("best_test_mae_rounded"),
                f"post-settings val {metric}": s.get("post_val"),
                "post-settings test MAE rnd": s.get("post_test_mae_rounded"),
                "published MAE rnd": get_arch(arch).reference.test_mae_rounded})  # fmt: skip
    return row


def where_the_results_are(
    tracking_uri: str,
    studies: dict[str, str],
    dataset: str,
    experiment: str | None = None,
    task: str = "rating",
) -> str:
    """The closing lines: how to open the runs in MLflow (the shared experiment, or one per
    study), and the champions' model URIs."""
    from bench.tracking.serving import registered_name

    label = get_dataset(dataset).label
    remote = tracking_uri.startswith(("http://", "https://"))
    ui = f"open {tracking_uri}" if remote else f"mlflow ui --backend-store-uri {tracking_uri}"
    models = ", ".join(f"models:/{registered_name(arch, label, task)}@champion" for arch in studies)
    names = [experiment] if experiment else list(studies.values())
    experiments = f"experiment{'s' if len(names) > 1 else ''} {', '.join(names)}"
    return f"\nruns: {ui}  ({experiments})\nchampions: {models}"
