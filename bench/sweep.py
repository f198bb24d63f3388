"""Tune each registered architecture with Optuna on a validation split, tracked in MLflow.

Rerunning the same command continues the same study (the post's settings are trial 0,
enqueued once). The timeout applies to each architecture.
"""

from __future__ import annotations

import argparse

import pandas as pd

from bench.archs import ARCHS, get_arch
from bench.config import SweepSettings
from bench.datasets import DEFAULT, get_dataset
from bench.errors import BenchError
from bench.metrics import TUNABLE
from bench.report import summarise
from bench.study import run_study
from bench.tracking import Tracker

DEFAULTS = SweepSettings(arch="mf")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=[*ARCHS, "all"], default="all")
    parser.add_argument("--dataset", default=DEFAULT, help="registered data set (bench data list)")
    parser.add_argument(
        "--trials", type=int, default=DEFAULTS.n_trials, help="trials per architecture"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULTS.timeout,
        help="seconds per architecture (0: no limit)",
    )
    parser.add_argument(
        "--split", default=DEFAULTS.split, help="seed, or one of the data set's folds"
    )
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--valid-fraction", type=float, default=DEFAULTS.valid_fraction)
    parser.add_argument("--metric", choices=TUNABLE, default=DEFAULTS.metric)
    parser.add_argument(
        "--pruner", choices=["none", "median", "hyperband"], default=DEFAULTS.pruner
    )
    parser.add_argument("--workers", type=int, default=DEFAULTS.workers)
    parser.add_argument("--max-epochs", type=int, help="cap on sampled epochs (smoke runs)")
    parser.add_argument(
        "--storage",
        help="Optuna journal file or database URL "
        "(default: optuna-journal.log beside the MLflow SQLite file)",
    )
    parser.add_argument("--tracking-uri", help="MLflow store (default: sqlite:///mlflow.db)")
    parser.add_argument("--study-name", help="default ARCH-SPLIT; with --arch all, NAME-ARCH")
    parser.add_argument("--data-dir", help="MovieLens-100k folder (default: $BENCH_DATA_DIR)")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.workers < 1:
        raise BenchError("--trials and --workers must be at least 1")
    splits = get_dataset(args.dataset).splits
    if args.split not in splits:
        raise BenchError(f"--split {args.split}: {args.dataset} has {', '.join(splits)}")
    return args


def settings_for(args: argparse.Namespace, arch: str) -> SweepSettings:
    name = args.study_name
    if name and args.arch == "all":
        name = f"{name}-{arch}"
    return SweepSettings(
        arch=arch,
        dataset=args.dataset,
        n_trials=args.trials,
        timeout=args.timeout or None,
        split=args.split,
        seed=args.seed,
        valid_fraction=args.valid_fraction,
        metric=args.metric,
        pruner=args.pruner,
        workers=args.workers,
        max_epochs=args.max_epochs,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        study_name=name,
        data_dir=args.data_dir,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    archs = list(ARCHS) if args.arch == "all" else [args.arch]
    client = Tracker(args.tracking_uri).client
    metric = args.metric.upper()
    rows = []
    for arch in archs:
        settings = settings_for(args, arch)
        study = run_study(settings)
        s = summarise(client, study)
        rows.append(
            {
                "arch": arch,
                "study": settings.name,
                "complete/pruned/failed": f"{s.get('n_complete', 0)}/{s.get('n_pruned', 0)}"
                f"/{s.get('n_fail', 0)}",
                "best trial": s.get("best_trial"),
                f"val {metric}": s.get("best_val"),
                "test MAE": s.get("best_test_mae"),
                "test RMSE": s.get("best_test_rmse"),
                "test MAE rnd": s.get("best_test_mae_rounded"),
                f"post-settings val {metric}": s.get("post_val"),
                "post-settings test MAE rnd": s.get("post_test_mae_rounded"),
                "published MAE rnd": get_arch(arch).reference.test_mae_rounded,
            }
        )
    table = pd.DataFrame(rows)
    print(f"\nbest trial per architecture, selected on validation {metric} (test never used):")
    print(table.to_string(index=False, float_format="{:.4f}".format, na_rep="-"))
    return 0
