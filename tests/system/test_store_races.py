"""Commands started together on one fresh MLflow store: MLflow makes a new database's tables
on first use, and two processes that did so at once both failed and broke the store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy
from mlflow.tracking import MlflowClient

from tests.support.synthetic import synthetic_ratings, write_folder

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 300


def start_together(folder: Path, runs: list[list[str]]) -> list[subprocess.Popen]:
    """`bench` commands (tests.support.at_once) let through one gate, once all have loaded
    their libraries: they open their stores at one instant."""
    processes = []
    for i, flags in enumerate(runs):
        with (folder / f"{i}.err").open("w") as err:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.support.at_once", str(folder), str(i), *flags],
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                )
            )
    deadline = time.monotonic() + WAIT_S
    while not all((folder / f"{i}.ready").exists() for i in range(len(runs))):
        dead = [p.args for p in processes if p.poll() is not None]
        assert not dead and time.monotonic() < deadline, f"not at the gate: {dead}"
        time.sleep(0.1)
    (folder / "go").touch()
    return processes


def exit_codes(processes: list[subprocess.Popen]) -> list[int]:
    """Each process's exit status, waited for at most WAIT_S in all."""
    deadline = time.monotonic() + WAIT_S
    try:
        return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)


def left_over_tables(url: str) -> list[str]:
    """Tables an interrupted MLflow migration leaves behind (Alembic's `_alembic_tmp_*`)."""
    engine = sqlalchemy.create_engine(url)
    try:
        return [t for t in sqlalchemy.inspect(engine).get_table_names() if "alembic_tmp" in t]
    finally:
        engine.dispose()


@pytest.fixture
def tracking_uri(request, tmp_path) -> str:
    """A fresh MLflow store: a SQLite file, or a PostgreSQL database (.ci/services.sh)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mlflow.db'}"
    return request.getfixturevalue("pg_url")


@pytest.mark.parametrize("tracking_uri", ["sqlite", "postgresql"], indirect=True)
def test_two_benchmarks_started_together_on_a_fresh_store_both_succeed(tracking_uri, tmp_path):
    storage = str(tmp_path / "optuna-journal.log")  # MLflow's and Optuna's Alembic tables clash
    data = write_folder(tmp_path / "data", synthetic_ratings())
    flags = [
        *("benchmark", "--archs", "mf", "--folds", "u1", "--tune-trials", "1"),
        *("--tune-timeout", "0", "--max-epochs", "1", "--dataset", "synthetic"),
        *("--data-dir", str(data), "--tracking-uri", tracking_uri, "--storage", storage),
    ]
    runs = [[*flags, "--report-dir", str(tmp_path / f"reports-{n}")] for n in "AB"]
    codes = exit_codes(start_together(tmp_path, runs))
    errors = [(tmp_path / f"{i}.err").read_text()[-2000:] for i in range(2)]
    assert codes == [0, 0], errors
    assert left_over_tables(tracking_uri) == []
    client = MlflowClient(tracking_uri)  # the store stays usable: both runs are in it
    experiment = client.get_experiment_by_name("benchmark")
    runs = client.search_runs([experiment.experiment_id], "attributes.run_name LIKE 'benchmark-%'")
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
