"""Training-speed benchmark: prints its figures as tables; not part of the test suite.

    python benchmarks/train_speed.py [--epochs 100] [--sections post_mf]

post_mf: the post's MF (k=3, batch 32) with a plain Keras `fit` and with the project's
compiled path, on the same batches from the same initial weights, measured in one run.
"""

from __future__ import annotations

import argparse
import platform
from dataclasses import replace

import numpy as np
import pandas as pd

from bench.config import MFConfig, TrainOptions
from bench.data import load_movielens, make_split
from bench.train import train


def post_mf(split, epochs: int) -> pd.DataFrame:
    config = replace(MFConfig(), epochs=epochs)
    runs = {
        "plain fit": train(config, split, TrainOptions(engine="fit")),
        "compiled, no XLA": train(config, split, TrainOptions(jit_compile=False)),
        "compiled + XLA (default)": train(config, split, TrainOptions(jit_compile=True)),
    }
    reference = np.array(runs["plain fit"].history["train_loss"])
    rows = []
    for name, result in runs.items():
        loss = np.array(result.history["train_loss"])
        rows.append(
            {
                "path": name,
                "s/epoch": result.fit_seconds / epochs,
                "total s": result.fit_seconds,
                "speed-up": runs["plain fit"].fit_seconds / result.fit_seconds,
                "max |loss diff|": float(np.max(np.abs(loss - reference))),
                "max rel diff": float(np.max(np.abs(loss - reference) / reference)),
                "test MAE rounded": result.test["test_mae_rounded"],
            }
        )
    return pd.DataFrame(rows)


SECTIONS = {"post_mf": post_mf}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    split = make_split(load_movielens(args.data_dir), "seed", seed=0, valid_fraction=0.0)
    print(f"machine: {platform.machine()}, {__import__('os').cpu_count()} CPUs")
    for name in args.sections.split(","):
        print(f"\n## {name}")
        print(
            SECTIONS[name](split, args.epochs).to_string(index=False, float_format="{:.4g}".format)
        )


if __name__ == "__main__":
    main()
