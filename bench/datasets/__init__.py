"""The data-set registry: every data set the harness can load, by name.

Adding a data set is one module under `bench/datasets/` that builds a `Dataset` entry,
and one line in `DATASETS` below. A name `csv:PATH?...` is any ratings file on disk
(`bench.datasets.csvfile`).
"""

from __future__ import annotations

from bench.datasets.base import DEFAULT_SPLIT, Dataset
from bench.datasets.csvfile import PREFIX as CSV_PREFIX
from bench.datasets.csvfile import csv_dataset
from bench.datasets.ml1m import ML1M
from bench.datasets.ml20m import ML20M
from bench.datasets.ml25m import ML25M
from bench.datasets.ml100k import ML100K
from bench.errors import DataError

DATASETS: dict[str, Dataset] = {
    dataset.name: dataset
    for dataset in (
        ML100K,
        ML1M,
        ML20M,
        ML25M,
    )
}
DEFAULT = ML100K.name

__all__ = ["DATASETS", "DEFAULT", "DEFAULT_SPLIT", "Dataset", "get_dataset"]


def get_dataset(name: str) -> Dataset:
    """The registered data set `name`, or the file of a `csv:PATH?...` spec; an unknown name
    lists the known ones."""
    if name.startswith(CSV_PREFIX):
        return csv_dataset(name)
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(
            f"unknown data set {name!r}; known: {', '.join(DATASETS)}, or {CSV_PREFIX}PATH"
        ) from None
