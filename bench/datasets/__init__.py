"""The data-set registry: every data set the harness can load, by name.

Adding a data set is one module under `bench/datasets/` that builds a `Dataset` entry,
and one line in `DATASETS` below.
"""

from __future__ import annotations

from bench.datasets.base import DEFAULT_SPLIT, Dataset
from bench.datasets.ml100k import ML100K
from bench.errors import DataError

DATASETS: dict[str, Dataset] = {dataset.name: dataset for dataset in (ML100K,)}
DEFAULT = ML100K.name

__all__ = ["DATASETS", "DEFAULT", "DEFAULT_SPLIT", "Dataset", "get_dataset"]


def get_dataset(name: str) -> Dataset:
    """The registered data set `name`; an unknown name lists the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}") from None
