"""`bench benchmark --workers N`: (fold, architecture) studies run N at a time, each in a
process of its own, and choose exactly what one at a time chooses."""

from __future__ import annotations

import pytest

from bench.benchmark import nested_tuning as nested
from bench.benchmark.job import fold_splits
from bench.cli import benchmark as benchmark_cli
from bench.errors import BenchError


def test_two_studies_at_a_time_choose_what_one_at_a_time_chooses(small_data, tmp_path):
    splits = fold_splits(small_data, ["u1"], seeds=0)
    budget = nested.Budget(trials=3, max_epochs=2)
    chosen = {}
    for workers in (1, 2):
        stores = (str(tmp_path / f"journal{workers}.log"), f"sqlite:///{tmp_path}/m{workers}.db")
        chosen[workers] = nested.tune_all(small_data, splits, ["mf", "nnmf"], 0, budget, stores,
                                          workers)  # fmt: skip
    assert set(chosen[1]) == set(chosen[2]) == {("u1", "mf"), ("u1", "nnmf")}
    for key, one in chosen[1].items():
        two = chosen[2][key]
        assert two.config == one.config and two.trial0 == one.trial0
        for field in ("study", "trial", "value", "trials"):
            assert two.provenance[field] == one.provenance[field], (key, field)


def test_workers_below_one_is_one_error_line():
    with pytest.raises(BenchError, match="--workers 0"):
        benchmark_cli.parse_args(["--workers", "0"])
