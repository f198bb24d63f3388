"""Train / validation / test splits, each one object that carries its provenance.

The validation part is always carved from the training part; the test part is never seen
by training or by any selection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from bench.data.fetch import sha256_of
from bench.data.ratings import RatingData
from bench.errors import DataError
from bench.metrics import RatingScale

COLUMNS = ["user", "item", "rating"]


@dataclass(frozen=True)
class Split:
    name: str
    dataset: str
    scale: RatingScale
    seed: int
    valid_fraction: float
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    n_users: int
    n_items: int
    data_sha256: str
    files_sha256: dict[str, str] = field(default_factory=dict)
    # the raw ids, position = code (what a served model maps raw ids with); None: unknown
    user_ids: np.ndarray | None = field(default=None, repr=False, compare=False)
    item_ids: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def provenance(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.name,
            "split_seed": self.seed,
            "valid_fraction": self.valid_fraction,
            "n_train": len(self.train),
            "n_valid": len(self.valid),
            "n_test": len(self.test),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "data_sha256": self.data_sha256,
            **{f"sha256_{name}": digest for name, digest in self.files_sha256.items()},
        }


def make_split(
    data: RatingData,
    name: str = "seed",
    *,
    seed: int = 0,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> Split:
    """Build split `name`: "seed" (random, like the post) or one of the data set's folds."""
    dataset = data.dataset
    if name not in dataset.splits:
        raise DataError(
            f"unknown split {name!r} for {dataset.name}; choose one of {', '.join(dataset.splits)}"
        )
    if not 0.0 <= valid_fraction < 1.0:
        raise DataError(f"valid fraction {valid_fraction} must be in [0, 1)")
    files: dict[str, str] = {}
    if name == "seed":
        train, test = train_test_split(
            data.ratings[COLUMNS], test_size=test_fraction, random_state=seed
        )
    else:
        pair = dataset.folds[name]
        train, test = (data.read_split_file(file)[COLUMNS] for file in pair)
        files = {file: sha256_of(data.root / file) for file in pair}
    if valid_fraction > 0:
        train, valid = train_test_split(train, test_size=valid_fraction, random_state=seed)
    else:
        valid = train.iloc[:0]
    return Split(
        name=name,
        dataset=dataset.name,
        scale=dataset.scale,
        seed=seed,
        valid_fraction=valid_fraction,
        train=train.reset_index(drop=True),
        valid=valid.reset_index(drop=True),
        test=test.reset_index(drop=True),
        n_users=data.n_users,
        n_items=data.n_items,
        data_sha256=data.checksum,
        files_sha256=files,
        user_ids=data.users.ids,
        item_ids=data.items.ids,
    )
