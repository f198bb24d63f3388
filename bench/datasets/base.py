"""What a data set declares: where it comes from, how its files parse, how it is split.

A data set is one module under `bench/datasets/` that builds a `Dataset` entry; the
machinery that locates, downloads, verifies, encodes and splits (`bench.data`) reads
nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.metrics import RatingScale

DEFAULT_SPLIT = "seed"  # a seeded random 80/20 split, the reference post's protocol


@dataclass(frozen=True)
class Dataset:
    """A ratings data set.

    `read_ratings(path)` returns columns user_id, item_id (positive ints), rating (on
    `scale`) and timestamp; `read_items(folder)` (optional) an item table indexed by
    item_id with at least a `title` column. `folds` maps a canonical split name to its
    (training file, test file) pair inside the folder.
    """

    name: str
    description: str
    folder: str  # folder name inside the archive and in the cache; absolute: a local file's
    ratings_file: str
    read_ratings: Callable[[Path], pd.DataFrame]
    read_items: Callable[[Path], pd.DataFrame | None] | None = None
    scale: RatingScale = field(default_factory=RatingScale)
    url: str | None = None
    archive_size: int | None = None
    archive_sha256: str | None = None
    files_sha256: Mapping[str, str] = field(default_factory=dict)
    folds: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    benchmark_folds: tuple[str, ...] = ()  # the folds the benchmark job uses by default
    n_ratings: int | None = None
    short_name: str | None = None  # for names that allow no '/' or ':' (None: `name`)

    @property
    def label(self) -> str:
        """The data set in study, experiment and model names: its registered name, or for a
        file `csv-STEM-DIGEST` (MLflow model names allow no '/' or ':')."""
        return self.short_name or self.name

    @property
    def splits(self) -> tuple[str, ...]:
        return (DEFAULT_SPLIT, *self.folds)
