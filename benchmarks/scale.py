"""The `scale` section of train_speed.py: what an MF epoch costs at the shapes of the
MovieLens releases, with dense Keras Adam and with row-sparse updates (bench.training.lazy_adam).

Ratings are generated (never downloaded) with the users, items and ratings counts of each
release; item and user popularity follow a Zipf-like law, as real ratings do. Each run
trains MF at batch 1024 for 2 epochs and reports the second (steady) epoch. A run whose
generated data would exceed `--scale-ratings-cap` trains on that many ratings, drawn over
the full table shape (a step's cost depends on the batch and the table, not on how many
steps follow), and its seconds per epoch are scaled to the release's ratings count.
"""

from __future__ import annotations

import quiet  # noqa: F401 - first: before TensorFlow loads

# isort: split
import resource
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.archs.mf import MFConfig
from bench.data import Split
from bench.metrics import RatingScale
from bench.training.options import TrainOptions
from bench.training.train import train


@dataclass(frozen=True)
class Shape:
    name: str
    users: int
    items: int
    ratings: int


SHAPES = {
    s.name: s
    for s in (
        Shape("ml-100k", 943, 1_682, 100_000),
        Shape("ml-1m", 6_040, 3_706, 1_000_209),
        Shape("ml-10m", 69_878, 10_677, 10_000_054),
        Shape("ml-25m", 162_541, 59_047, 25_000_095),
    )
}


def _zipf_codes(rng: np.random.Generator, n: int, size: int, exponent: float = 0.8):
    """`size` codes in [0, n) with popularity ~ rank^-exponent, in a shuffled id order."""
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    cumulative = np.cumsum(weights / weights.sum())
    ranks = np.searchsorted(cumulative, rng.random(size), side="right").clip(0, n - 1)
    return rng.permutation(n)[ranks].astype("int32")


def synthetic_split(shape: Shape, n_ratings: int, seed: int = 0) -> Split:
    """A training part of `n_ratings` generated ratings over the shape's users and items."""
    rng = np.random.default_rng(seed)
    train = pd.DataFrame(
        {
            "user": _zipf_codes(rng, shape.users, n_ratings),
            "item": _zipf_codes(rng, shape.items, n_ratings),
            "rating": rng.integers(1, 6, n_ratings).astype("float32"),
        }
    )
    empty = train.iloc[:0]
    return Split(
        name="synthetic", dataset=f"synthetic-{shape.name}", scale=RatingScale(1, 5, 1),
        seed=seed, valid_fraction=0.0, train=train, valid=empty, test=empty,
        n_users=shape.users, n_items=shape.items, data_sha256="generated",
    )  # fmt: skip


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def scale(data, args) -> pd.DataFrame:
    """Seconds per epoch and ratings/s of MF (k=32, 128; batch 1024) per release shape."""
    rows = []
    for name in args.scale_shapes.split(","):
        shape = SHAPES[name]
        n = min(shape.ratings, args.scale_ratings_cap or shape.ratings)
        start = time.perf_counter()
        split = synthetic_split(shape, n)
        generated = time.perf_counter() - start
        for k in map(int, args.scale_ks.split(",")):
            for sparse in (u == "sparse" for u in args.scale_updates.split(",")):
                config = MFConfig(k=k, batch_size=1024, epochs=2)
                result = train(config, split, TrainOptions(sparse_updates=sparse))
                epoch = result.epoch_seconds[-1]
                rows.append(
                    {
                        "shape": name,
                        "users x items": f"{shape.users} x {shape.items}",
                        "ratings trained": n,
                        "k": k,
                        "updates": "sparse" if sparse else "dense",
                        "s/epoch": epoch * shape.ratings / n,
                        "ratings/s": n / epoch,
                        "first epoch s": result.epoch_seconds[0],
                        "generate s": generated,
                        "peak RSS GB": _peak_rss_gb(),
                    }
                )
                print(rows[-1], flush=True)
    return pd.DataFrame(rows)
