"""Report pieces a person looks at: the HTML page MLflow renders, the Pareto plot, the
sentences and closing lines of a run."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bench.benchmark.report as report_module
import bench.cli.benchmark as benchmark_cli
from bench.benchmark.configs import budget_words
from bench.benchmark.html import to_html
from bench.benchmark.job import summary_table
from bench.benchmark.predictors import PopularityBaseline, evaluate
from bench.benchmark.report import _pareto
from bench.benchmark.results import FoldResult, Outcome
from bench.benchmark.spec import Budget
from bench.benchmark.stats import find_regressions, wilcoxon_floor
from bench.tracking.tracker import Tracker


def test_html_report_embeds_figures_and_renders_tables_lists_and_spans(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    fig.savefig(tmp_path / "a.png")
    plt.close(fig)
    markdown = (
        "# Title\n\nSome **bold** and `code` <tag>.\n\n## Results\n\n| model | mae |\n"
        "| --- | --- |\n| mf | 0.7 |\n\n- first\n- second\n\n![a figure](a.png)\n"
        "![gone](missing.png)\n"
    )
    page = to_html(markdown, tmp_path, "t")
    flat = re.sub(r">\s+<", "><", page)
    assert "<h1>Title</h1>" in flat and "<h2>Results</h2>" in flat
    assert "<strong>bold</strong>" in page and "<code>code</code>" in page
    assert "&lt;tag&gt;" in page  # raw HTML in the text is escaped
    assert (
        "<table><thead><tr><th>model</th><th>mae</th></tr></thead>"
        "<tbody><tr><td>mf</td><td>0.7</td></tr></tbody></table>"
    ) in flat
    assert "<ul><li>first</li><li>second</li></ul>" in flat
    assert page.count('<img alt="a figure" src="data:image/png;base64,iVBOR') == 1
    assert "![gone](missing.png)" in page  # a missing figure stays visible as text


def _one_fold_outcome(regressions=()) -> Outcome:
    """A one-fold run of one learnt model (MSE loss) and the popularity ranker."""
    results = pd.DataFrame(
        [
            {"model": "mf", "fold": "u1", "mae": 0.75, "rmse": 0.95},
            {"model": "popularity", "fold": "u1", "mae": float("nan"), "rmse": float("nan")},
        ]
    )
    folds = [
        FoldResult("mf", "u1", {"mae": 0.75}, history={"train_loss": [1.2, 0.9, 0.8]}),
        FoldResult("popularity", "u1", {"mae": float("nan")}),
    ]
    configs = {"mf": {"u1": SimpleNamespace(loss="mse", epochs=3)}}
    return Outcome(
        results, pd.DataFrame(results), ["(none)"], list(regressions), folds, configs, "test"
    )


def test_a_one_fold_report_says_the_tests_need_two_folds_and_names_the_loss(tmp_path, monkeypatch):
    titles = []
    original = report_module.plt.close

    def close(fig):
        titles.extend(ax.get_title() for ax in fig.axes)
        original(fig)

    monkeypatch.setattr(report_module.plt, "close", close)
    monkeypatch.setattr(report_module, "_metric_bars", lambda results, path: None)
    report_module.write_benchmark_report(tmp_path, _one_fold_outcome(), None, {})
    text = (tmp_path / "report.md").read_text()
    assert "With one fold there is no paired test: it needs at least 2 folds" in text
    assert "Wilcoxon p-value" not in text
    assert "Train loss (MSE) on u1" in titles, titles


def test_the_wilcoxon_sentence_gives_the_runs_own_fold_count_and_floor():
    for folds in (2, 3, 5, 6):
        exact = stats.wilcoxon(np.arange(1.0, folds + 1)).pvalue  # every difference one sign
        assert wilcoxon_floor(folds) == pytest.approx(exact)
    assert report_module.wilcoxon_note(3) == (
        "With 3 folds the smallest two-sided Wilcoxon p-value is 0.25: read it with the t-test."
    )


def test_a_one_fold_regression_says_why_it_has_no_interval_instead_of_nan():
    new = pd.DataFrame([{"model": "mf", "fold": "u1", "mae": 0.80}])
    old = pd.DataFrame([{"model": "mf", "fold": "u1", "mae": 0.75}])
    (regression,) = find_regressions(new, old, 0.005, metrics=("mae",))
    message = regression.message()
    assert "nan" not in message
    assert message == (
        "mf regressed on mae: 0.7500 -> 0.8000 (worse by 0.0500; one fold: no interval or "
        "test, which need at least 2 folds or seeds)"
    )
    assert "nan" not in regression.comparison.sentence()


def test_the_closing_lines_name_the_promoted_run_and_the_html_report(tmp_path):
    outcome = _one_fold_outcome()
    outcome.run, outcome.promoted = "benchmark-20260101-000000", True
    lines = benchmark_cli.closing_lines(outcome, tmp_path / "r").splitlines()
    assert lines[1] == (
        "promoted: benchmark run benchmark-20260101-000000 is now the reference that later "
        "runs of the same identity are gated against (MLflow tag bench.reference=true)"
    )
    assert lines[2].startswith(f"report: {tmp_path / 'r' / 'report.html'} (")
    outcome.promoted = False
    assert "promoted" not in benchmark_cli.closing_lines(outcome, tmp_path / "r")


def test_a_budget_without_a_timeout_says_so():
    assert budget_words(Budget(trials=3, timeout=None)) == "3 trials, no timeout"
    assert budget_words(Budget(trials=20, timeout=120.0)) == "20 trials, 120 s"


def test_the_popularity_ranker_has_no_mae_or_rmse(small_split):
    fold = evaluate("popularity", PopularityBaseline(), small_split, 0)
    assert np.isnan(fold.metrics["mae"]) and np.isnan(fold.metrics["rmse"])
    assert fold.metrics["ndcg_at_10"] >= 0
    row = summary_table(pd.DataFrame([{"model": "popularity", "fold": "u1", **fold.metrics}]), None)
    assert row.loc[0, "mae"] == "n/a" and row.loc[0, "rmse 95% CI"] == "n/a"


def test_pareto_draws_every_trial_and_says_how_many_sit_in_the_band(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = tracker.experiment("mf-seed")
    for i, value in enumerate([0.72, 0.74, 0.80, 3.1, 0.95]):
        run = tracker.start_run(experiment, f"trial-{i}", tags={"trial_state": "COMPLETE"})
        tracker.log(run, {"fit_seconds": 1.0 + i, "val_mae": value})
    caption = _pareto(tracker.client, {"mf": "mf-seed", "nn": "nn-seed"}, tmp_path / "p.png")
    assert caption.startswith("All 5 completed sweep trials; the 2 with a validation MAE above")
    assert Path(tmp_path / "p.png").stat().st_size > 0
    assert _pareto(tracker.client, {"nn": "nn-seed"}, tmp_path / "q.png") is None
