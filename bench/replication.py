"""Replicate the reference post: its three models, its settings, its kind of split.

The post trains on a random 80 % of the ratings and scores the other 20 %, with no
validation part; so does this study (the split is seeded here, the post's was not).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import mlflow
import pandas as pd

from bench.config import CONFIGS, TrainOptions
from bench.data import load_movielens, make_split
from bench.tracking import log_training, setup
from bench.train import TrainResult, train

EXPERIMENT = "seed-replication"
QUICK_EPOCHS = 2
# The post's published figures (MAE on the 20 % test part; parameter counts).
POST = {
    "mf": {"params": 7881, "test_mae_rounded": 0.6915, "test_mae": None},
    "nnmf": {"params": 7881, "test_mae_rounded": None, "test_mae": None},
    "nn": {"params": 25675, "test_mae_rounded": 0.6957, "test_mae": 0.7088},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EPOCHS} epochs per model")
    parser.add_argument("--seed", type=int, default=0, help="split, init and batch-order seed")
    parser.add_argument("--data-dir", help="MovieLens-100k folder (default: $BENCH_DATA_DIR)")
    parser.add_argument("--tracking-uri", help="MLflow store (default: sqlite:///mlflow.db)")
    parser.add_argument("--engine", choices=["compiled", "fit"], default="compiled")


def replicate(args: argparse.Namespace) -> dict[str, TrainResult]:
    data = load_movielens(args.data_dir)
    split = make_split(data, "seed", seed=args.seed, valid_fraction=0.0)
    options = TrainOptions(seed=args.seed, engine=args.engine)
    setup(EXPERIMENT, args.tracking_uri)
    results = {}
    for arch, config_type in CONFIGS.items():
        config = config_type()
        if args.quick:
            config = replace(config, epochs=QUICK_EPOCHS)
        print(f"training {arch}: {config.epochs} epochs, batch size {config.batch_size} ...")
        with mlflow.start_run(run_name=f"{arch}-post-settings"):
            results[arch] = train(config, split, options)
            log_training(results[arch], split, options, params={"quick": args.quick})
    return results


def report(results: dict[str, TrainResult]) -> str:
    rows = []
    for arch, result in results.items():
        post = POST[arch]
        rows.append(
            {
                "model": arch,
                "epochs": result.config.epochs,
                "params": result.n_params,
                "post params": post["params"],
                "MAE rounded": result.test["test_mae_rounded"],
                "post MAE rounded": post["test_mae_rounded"],
                "MAE raw": result.test["test_mae"],
                "post MAE raw": post["test_mae"],
                "RMSE raw": result.test["test_rmse"],
                "fit s": result.fit_seconds,
            }
        )
    lines = [pd.DataFrame(rows).to_string(index=False, float_format="{:.4f}".format, na_rep="-")]
    for arch in ("mf", "nnmf"):
        if arch in results:
            for name, table in results[arch].embedding_tables.items():
                lines += [
                    "",
                    f"{arch} {name} embedding:",
                    table.to_string(float_format="{:.4f}".format),
                ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    print(report(replicate(args)))
    return 0
