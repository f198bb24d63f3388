"""Native memory per compiled trial: RSS over 40 MF trials of distinct k in one process.

    python benchmarks/native_memory.py MODE     (MODE: none, clear, trim or graph)

none: as a sweep runs them; clear: after each trial drop the runner cache, Keras' session
and TensorFlow's kernel cache; trim: glibc `malloc_trim` after each trial; graph: no XLA.
Prints the RSS growth per trial from trial 10 to 40. Not part of the test suite.
"""

from __future__ import annotations

import quiet  # noqa: F401 - first: before TensorFlow loads

# isort: split
import ctypes
import gc
import os
import sys
from dataclasses import replace

import keras
from tensorflow.python.eager import context
from train_speed import rss_mb

from bench.archs.mf import MFConfig
from bench.data import load_dataset, make_split
from bench.training.compiled import RUNNERS
from bench.training.options import TrainOptions
from bench.training.train import train


def after_trial(mode: str) -> None:
    if mode == "trim":
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    if mode == "clear":
        RUNNERS.clear()
        gc.collect()
        context.context().clear_kernel_cache()
        keras.backend.clear_session()


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "none"
    data = load_dataset("ml-100k", os.environ.get("BENCH_DATA_DIR"))
    split = make_split(data, "seed", seed=0, valid_fraction=0.1)
    options = TrainOptions(jit_compile=mode != "graph")
    rss = []
    for i in range(40):
        train(replace(MFConfig(k=2 + i), batch_size=1024, epochs=2), split, options)
        after_trial(mode)
        rss.append(rss_mb())
    growth = (rss[-1] - rss[9]) / 30
    print(
        f"{mode}: RSS after 10 trials {rss[9]:.0f} MB, after 40 {rss[-1]:.0f} MB, "
        f"growth {growth:.2f} MB/trial"
    )


if __name__ == "__main__":
    main()
