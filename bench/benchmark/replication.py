"""Replicate the reference post: its three models, its settings, its kind of split.

The post trains on a random 80 % of the ratings and scores the other 20 %, with no
validation part; so does this study (the split is seeded here, the post's was not).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from bench.archs import ARCHS
from bench.benchmark.spec import QUICK_EPOCHS, ReplicationSpec
from bench.data import load_dataset, make_split
from bench.tracking.tracker import Tracker
from bench.training.options import TrainOptions
from bench.training.train import TrainResult, train

EXPERIMENT = "seed-replication"


def replicate(args: ReplicationSpec) -> dict[str, TrainResult]:
    """Train each registered architecture with its published settings, tracked in MLflow."""
    data = load_dataset(args.dataset, args.data_dir)
    split = make_split(data, "seed", seed=args.seed, valid_fraction=0.0)
    options = TrainOptions(seed=args.seed, engine=args.engine)
    tracker = Tracker(args.tracking_uri)
    experiment_id = tracker.experiment(EXPERIMENT)
    results = {}
    for name, arch in ARCHS.items():
        config = arch.config()
        if args.quick:
            config = replace(config, epochs=QUICK_EPOCHS)
        print(f"training {name}: {config.epochs} epochs, batch size {config.batch_size} ...")
        run_id = tracker.start_run(experiment_id, f"{name}-post-settings")
        results[name] = train(config, split, options)
        tracker.log_training(run_id, results[name], split, options, params={"quick": args.quick})
        tracker.end(run_id)
    return results


def report(results: dict[str, TrainResult]) -> str:
    rows = []
    for arch, result in results.items():
        published = ARCHS[arch].reference
        rows.append(
            {
                "model": arch,
                "epochs": result.config.epochs,
                "params": result.n_params,
                "published params": published.params,
                "MAE rounded": result.test["test_mae_rounded"],
                "published MAE rounded": published.test_mae_rounded,
                "MAE raw": result.test["test_mae"],
                "published MAE raw": published.test_mae,
                "RMSE raw": result.test["test_rmse"],
                "fit s": result.fit_seconds,
            }
        )
    table = pd.DataFrame(rows)
    published = [row["published params"] for row in rows]  # ints, or None: not published
    table["published params"] = [p if p is not None else "-" for p in published]
    lines = [table.to_string(index=False, float_format="{:.4f}".format, na_rep="-")]
    for arch in ("mf", "nnmf"):
        if arch in results:
            for name, table in results[arch].embedding_tables.items():
                lines += [
                    "",
                    f"{arch} {name} embedding:",
                    table.to_string(float_format="{:.4f}".format),
                ]
    return "\n".join(lines)
