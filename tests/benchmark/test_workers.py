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


def test_an_interrupt_comes_back_from_a_study_runners_process_as_itself():
    import pickle
    import signal

    from bench.signals import Interrupted

    back = pickle.loads(pickle.dumps(Interrupted(signal.SIGTERM)))
    assert isinstance(back, Interrupted) and back.signum == signal.SIGTERM


def test_a_failed_study_stops_the_others_at_once(small_data, tmp_path, monkeypatch):
    # a study that cannot run (an unknown architecture) ends tune_all with its own error
    # at once: the pool is shut, the runners stopped, no study waits for the others' end
    splits = fold_splits(small_data, ["u1"], seeds=0)
    stores = (str(tmp_path / "journal.log"), f"sqlite:///{tmp_path}/m.db")
    budget = nested.Budget(trials=50)
    with pytest.raises(Exception, match="nope"):
        nested.tune_all(small_data, splits, ["nope", "mf"], 0, budget, stores, 2)
    name = nested.study_name(splits[0].dataset, "u1", "mf", 0, budget)
    study = nested._existing(name, stores[0])
    finished = [] if study is None else [t for t in study.trials if t.state.is_finished()]
    assert len(finished) < budget.trials  # stopped, not run to its end
