"""Shared fixtures: small generated MovieLens-format data, and the real data when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.data import RatingData, locate, make_split, read_folder
from bench.datasets import DATASETS, get_dataset
from bench.errors import DataError
from tests.support import mlflow_schema
from tests.support.services import mlflow_server, pg_url  # noqa: F401 - fixtures
from tests.support.sweep_entry import SYNTHETIC
from tests.support.synthetic import synthetic_ratings, write_folder

mlflow_schema.install()  # this process's new MLflow SQLite stores: a copy of the first's schema


@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "small", synthetic_ratings())


@pytest.fixture
def small_data(small_folder: Path) -> RatingData:
    return read_folder(small_folder)


@pytest.fixture
def small_split(small_data: RatingData):
    return make_split(small_data, "seed", seed=0, valid_fraction=0.1)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The verified MovieLens-100k folder; CI must have it, a laptop may skip."""
    try:
        folder = locate(
            get_dataset("ml-100k"),
            os.environ.get("BENCH_DATA_DIR") or None,
            url="http://127.0.0.1:9/none",
        )
        return folder.resolve()  # absolute: subprocesses may run in another folder
    except DataError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the real data: {exc}")
        pytest.skip(f"real MovieLens-100k not available: {exc}")


@pytest.fixture
def synthetic_dataset(monkeypatch):
    """The tests-only `synthetic` data set in the registry for one test, taken out after."""
    monkeypatch.setitem(DATASETS, SYNTHETIC.name, SYNTHETIC)
    return SYNTHETIC
