"""Report pieces a person looks at: the HTML page MLflow renders, the Pareto plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from bench.benchmark.html import to_html
from bench.benchmark.report import _pareto
from bench.tracking.tracker import Tracker


def test_html_report_embeds_figures_and_renders_tables_lists_and_spans(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    fig.savefig(tmp_path / "a.png")
    plt.close(fig)
    markdown = (
        "# Title\n\nSome **bold** and `code` <tag>.\n\n| model | mae |\n| --- | --- |\n"
        "| mf | 0.7 |\n\n- first\n- second\n\n![a figure](a.png)\n![gone](missing.png)\n"
    )
    page = to_html(markdown, tmp_path, "t")
    assert "<h1>Title</h1>" in page and "<strong>bold</strong>" in page
    assert "<code>code</code>" in page and "&lt;tag&gt;" in page
    assert "<tr><th>model</th><th>mae</th></tr><tr><td>mf</td><td>0.7</td></tr>" in page
    assert "<ul><li>first</li><li>second</li></ul>" in page
    assert page.count('<img alt="a figure" src="data:image/png;base64,iVBOR') == 1
    assert "![gone](missing.png)" in page  # a missing figure stays visible as text


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
