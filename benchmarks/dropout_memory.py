"""Peak memory and seconds of one NN epoch with its dropout noise drawn whole (one draw, as
before `NOISE_BYTES`) and in spans of at most `NOISE_BYTES`, side by side, each in a fresh
process (peak RSS is per process), on generated ratings of a MovieLens release's shape.

    python benchmarks/dropout_memory.py [--shape ml-1m] [--ratings N] [--dim 128] [--batch 32]

The NN's embeddings are `--dim` wide (the search space's upper end is 128), so an epoch's
noise is ratings x dim x 2 layers x 4 bytes when drawn whole. Both modes train the same
model; the spans give the same numbers (tests/training/test_train.py), so the printed
train losses must agree. Not part of the test suite.
"""

from __future__ import annotations

import quiet  # noqa: F401 - first: before TensorFlow loads

# isort: split
import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace

import pandas as pd
from scale import SHAPES, synthetic_split

from bench.archs.nn import NNConfig
from bench.training import noise
from bench.training.train import train

WHOLE = 2**62  # a noise budget no epoch reaches: one draw per epoch


def one_epoch(shape: str, ratings: int, dim: int, batch: int, budget: int) -> dict:
    """Train one epoch in this process; its seconds, train loss and the peak RSS."""
    noise.NOISE_BYTES = budget
    split = synthetic_split(SHAPES[shape], ratings)
    config = replace(NNConfig(), user_dim=dim, item_dim=dim, batch_size=batch, epochs=1)
    start = time.perf_counter()
    result = train(config, split)
    return {
        "seconds": time.perf_counter() - start,
        "train_loss": result.history["train_loss"][0],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="ml-1m", choices=sorted(SHAPES))
    parser.add_argument("--ratings", type=int, default=None, help="default: the shape's")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    ratings = args.ratings or SHAPES[args.shape].ratings
    if args.child is not None:
        print(json.dumps(one_epoch(args.shape, ratings, args.dim, args.batch, args.child)))
        return
    rows = []
    for mode, budget in (("one draw per epoch", WHOLE), ("spans", noise.NOISE_BYTES)):
        command = [sys.executable, __file__, *sys.argv[1:], "--child", str(budget)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        rows.append({"noise": mode, **json.loads(out.splitlines()[-1])})
    print(f"NN, dims {args.dim}, batch {args.batch}, {ratings:,} ratings ({args.shape} shape)")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
