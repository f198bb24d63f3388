"""The tuner benchmark and the "did tuning help?" table: what each study sees, what is
reported, and the arithmetic of the table."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from bench.benchmark import tuners
from bench.benchmark.tuner_job import EXPERIMENT, run_tuners
from bench.benchmark.tuner_report import ranking
from bench.benchmark.tuning_gain import trial0_name, tuning_table
from bench.data import make_split


def _pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["user"], frame["item"], strict=True))


def test_the_tuner_benchmark_never_reads_a_test_part(small_data, tmp_path, monkeypatch):
    seen = []
    real_train = tuners.train

    def spy(config, split, options=None, on_epoch_end=None):
        seen.append(split)
        return real_train(config, split, options, on_epoch_end)

    monkeypatch.setattr(tuners, "train", spy)
    spec = tuners.TunerSpec(
        folds=("u1", "u2"),
        samplers=("random", "tpe-small"),
        pruners=("none",),
        seeds=2,
        trials=2,
        max_epochs=2,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        report_dir=tmp_path / "report",
    )
    runs = run_tuners(spec, small_data)
    assert len(runs) == 2 * 2 * 2 and len(seen) == 2 + len(runs) * 2  # warm-ups and trials
    for split in seen:
        fold = make_split(small_data, split.name, valid_fraction=0.0)
        assert len(split.test) == 0
        assert len(split.train) + len(split.valid) == len(fold.train)
        assert not (_pairs(split.train) | _pairs(split.valid)) & _pairs(fold.test)
    assert {s.name for s in seen} == {"u1", "u2"}
    client = MlflowClient(spec.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    children = client.search_runs([experiment.experiment_id], "tags.mlflow.parentRunId != ''")
    assert len(children) == len(runs)
    assert {"report.md", "report.html", "anytime.png", "runs.csv"} <= {
        p.name for p in spec.report_dir.iterdir()
    }
    table = ranking(runs)
    assert set(table["sampler"]) == {"random", "tpe-small"} and (table["studies"] == 4).all()


def _results(rows: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"model": m, "fold": f"u{i + 1}", "rmse": v}
            for m, vs in rows.items()
            for i, v in enumerate(vs)
        ]  # fmt: skip
    )


def test_the_tuning_table_counts_folds_and_signs_the_difference():
    results = _results({"mf": [0.90, 0.92, 0.91], trial0_name("mf"): [0.95, 0.92, 0.96]})
    provenance = {
        "mf": {
            "u1": {"value": 0.89, "trial": 7, "trial0_value": 0.94},
            "u2": {"value": 0.93, "trial": 0, "trial0_value": 0.93, "start": "post"},
            "u3": {"value": 0.90, "trial": 1, "trial0_value": 0.95, "start": "svd-defaults"},
        }
    }
    row = tuning_table(results, provenance, "rmse", 0.25).iloc[0]
    assert row["folds"] == 3 and row["trial 0 chosen"] == 1 and row["tuned better on val"] == 2
    assert row["a prior chosen"] == 1
    assert row["val rmse tuned"] == pytest.approx((0.89 + 0.93 + 0.90) / 3)
    assert row["test rmse trial 0"] == pytest.approx((0.95 + 0.92 + 0.96) / 3)
    assert row["test difference (95 % CI)"].startswith("-0.0333 [")


def test_no_trial0_rows_means_no_tuning_table():
    results = _results({"mf": [0.9, 0.9]})
    provenance = {"mf": {"u1": {"value": 0.9, "trial": 0}, "u2": {"value": 0.9, "trial": 0}}}
    assert tuning_table(results, provenance, "rmse", None).empty
