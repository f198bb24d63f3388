"""`bench study repair`: fail, in both stores, the trials that stopped processes left running.

    bench study repair --storage URL --tracking-uri URI [--study NAME] [--grace-period S]

For each study (all in the storage unless --study), the trials RUNNING in Optuna whose
process on this machine is dead, and on a database storage those of any machine whose
heartbeat is older than the grace period, become FAIL in Optuna and FAILED in MLflow
with an `error` tag; RUNNING MLflow trial runs of failed trials are closed the same way.
A parent run left RUNNING by a killed invocation is closed (KILLED, with the study's
summary) once no trial of the study runs. Prints one line per thing it did.
"""

from __future__ import annotations

import argparse

from bench.cli.common import add_storage_flag, add_tracking_flag, command_parser
from bench.errors import BenchError
from bench.sweep.settings import DEFAULT_GRACE_S


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = command_parser(
        "study",
        __doc__,
        "bench study repair --storage optuna-journal.log --tracking-uri sqlite:///mlflow.db",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    repair = commands.add_parser("repair", help="fail trials that stopped processes left running")
    add_storage_flag(repair)
    add_tracking_flag(repair)
    repair.add_argument("--study", help="one study (default: every study in the storage)")
    repair.add_argument(
        "--grace-period",
        type=int,
        default=DEFAULT_GRACE_S,
        help="on a database: fail trials whose last heartbeat is older than this many seconds "
        "(default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.grace_period < 1:
        raise BenchError("--grace-period must be at least 1 second")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import optuna

    from bench.sweep.reconcile import repair_study
    from bench.sweep.storage.backends import open_storage
    from bench.sweep.storage.urls import is_database, resolve_storage, storage_errors
    from bench.tracking.tracker import Tracker, resolve_tracking_uri

    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    url = resolve_storage(args.storage, tracking_uri)
    heartbeat = (1, args.grace_period) if is_database(url) else (None, None)
    storage = open_storage(url, *heartbeat)
    with storage_errors(url):
        names = [args.study] if args.study else optuna.get_all_study_names(storage)
    tracker = Tracker(tracking_uri)
    for name in names:
        for line in repair_study(storage, url, tracker, name):
            print(line)
    return 0
