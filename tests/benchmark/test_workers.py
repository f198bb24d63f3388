"""`bench benchmark --workers N`: (fold, architecture) studies run N at a time, each in a
process of its own, and choose exactly what one at a time chooses."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.benchmark import nested_tuning as nested
from bench.benchmark.job import fold_splits
from bench.cli import benchmark as benchmark_cli
from bench.errors import BenchError


def test_two_at_a_time_run_what_one_at_a_time_runs(small_data, tmp_path):
    # the (fold, architecture) studies, the peers' studies and the folds' fits, each in a
    # process of its own: the same studies, trials chosen, configs and fold results
    runs = {}
    for workers in (1, 2):
        folder = tmp_path / f"w{workers}"
        args = benchmark_cli.parse_args(
            ["--archs", "mf,nnmf", "--folds", "u1,u2", "--tune-trials", "3", "--max-epochs", "2",
             "--peers", "svd,ease", "--workers", str(workers),
             "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}",
             "--storage", str(folder / "journal.log"), "--report-dir", str(folder / "report")]
        )  # fmt: skip
        assert benchmark_cli.run(args, small_data) == 0
        results = pd.read_csv(folder / "report" / "results.csv")
        tuned = json.loads((folder / "report" / "tuned_configs.json").read_text())
        runs[workers] = results.sort_values(["model", "fold"]).reset_index(drop=True), tuned
    (one, tuned_one), (two, tuned_two) = runs[1], runs[2]
    assert set(one["model"]) >= {"mf", "nnmf", "svd", "ease", "mf@trial0", "popularity"}
    metrics = ["mae", "rmse", "ndcg_at_10", "recall_at_10"]
    pd.testing.assert_frame_equal(
        one[["model", "fold", *metrics]], two[["model", "fold", *metrics]]
    )
    for arch in ("mf", "nnmf"):
        for fold in ("u1", "u2"):
            a, b = tuned_one[arch][fold], tuned_two[arch][fold]
            assert a["config"] == b["config"]
            for field in ("study", "trial", "value", "trials"):
                assert a["provenance"][field] == b["provenance"][field], (arch, fold, field)


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
