"""Per-rating L2 (SVD's regularisation) against none, on u1's tuning split: the measurement
behind the `row_l2` search dimension (docs/benchmark.md, protocol 3).

    BENCH_DATA_DIR=../shared/data/ml-100k python benchmarks/row_l2.py [FOLD]   (default u1)

Trains MF configs with plain Keras `fit`, the L2 as Keras' activity regulariser on the
embedding vectors (strength x the batch mean of each vector's squared norm, as
`bench.archs.layers.RowL2`), early stopping with patience 5 on validation RMSE, and prints
each config's best validation RMSE. Only the fold's training part is read (its tuning split).
"""

from __future__ import annotations

import quiet  # noqa: F401 - first: before TensorFlow loads

# isort: split
import sys
import time

import keras

import bench.archs.layers as layers
from bench.archs.mf import MFConfig
from bench.benchmark.nested_tuning import Budget, tuning_split
from bench.data import load_dataset, make_split
from bench.training.options import TrainOptions
from bench.training.train import train

CONFIGS = [  # (row L2, k, learning rate, batch size)
    (0.0, 128, 0.001, 512),
    (0.02, 128, 0.002, 256),
    (0.05, 128, 0.002, 256),
    (0.1, 128, 0.002, 256),
    (0.05, 64, 0.003, 128),
    (0.2, 128, 0.002, 256),
    (0.4, 128, 0.003, 256),
    (0.2, 32, 0.003, 256),
    (0.3, 128, 0.005, 1024),
]


def activity_l2(rows, dim, name, l2=0.0, non_negative=False):
    """An embedding table whose looked-up vectors carry the L2 (the config's `l2`)."""
    regulariser = keras.regularizers.L2(l2) if l2 > 0 else None
    return keras.layers.Embedding(rows, dim, name=name, activity_regularizer=regulariser)


def main() -> None:
    layers.embedding = activity_l2
    data = load_dataset("ml-100k")
    fold = make_split(data, sys.argv[1] if len(sys.argv) > 1 else "u1", valid_fraction=0.0)
    split = tuning_split(data, fold, 0, Budget())
    options = TrainOptions(engine="fit", patience=5, monitor="val_rmse")
    for strength, k, rate, batch in CONFIGS:
        config = MFConfig(k=k, use_bias=True, l2=strength, learning_rate=rate,
                          batch_size=batch, epochs=60)  # fmt: skip
        start = time.time()
        result = train(config, split, options)
        print(
            f"row L2 {strength} k={k} lr={rate} batch {batch}: best val RMSE "
            f"{min(result.history['val_rmse']):.4f} at epoch {result.best_epoch} "
            f"({time.time() - start:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
