"""The benchmark report: Markdown tables, figures and the HTML page of one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from mlflow.tracking import MlflowClient

from bench.benchmark.configs import ALL_FOLDS, config_fields
from bench.benchmark.html import to_html
from bench.benchmark.results import FoldResult, Outcome
from bench.benchmark.stats import wilcoxon_floor
from bench.metrics import PLOTTED


def markdown_table(frame: pd.DataFrame) -> str:
    def cell(value) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |"]
    lines.append("|" + " --- |" * len(frame.columns))
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines)


def _metric_bars(results: pd.DataFrame, path: Path) -> None:
    metrics = list(PLOTTED)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.5), layout="constrained")
    grouped = results.groupby("model", sort=False)
    for ax, metric in zip(axes, metrics, strict=True):
        means, stds = grouped[metric].mean(), grouped[metric].std(ddof=1)
        ax.bar(means.index, means.to_numpy(), yerr=stds.fillna(0).to_numpy(), capsize=4)
        ax.set(title=f"{metric} (mean ± std over folds)")
        ax.tick_params(axis="x", rotation=30)
        ax.set_ylim(bottom=0)  # bar lengths compare only from zero
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _loss_of(folds: dict[str, Any], fold: str) -> str:
    """The training loss's name (MSE, MAE) of a model's config on `fold` (or on every fold)."""
    config = folds.get(fold, folds.get(ALL_FOLDS))
    return str(getattr(config, "loss", None) or "loss").upper()


def _loss_curves(folds, configs: dict[str, Any], path: Path) -> None:
    """Train-loss curves on the first fold, one panel per loss (MSE and MAE never share)."""
    first_fold = folds[0].fold
    learnt = [f for f in folds if f.fold == first_fold and f.history]
    by_loss: dict[str, list[FoldResult]] = {}
    for fold in learnt:
        if fold.model not in configs:
            continue  # a trial-0 row: its arch's curve is the one shown
        by_loss.setdefault(_loss_of(configs[fold.model], fold.fold), []).append(fold)
    panels = max(1, len(by_loss))
    fig, axes = plt.subplots(
        1, panels, figsize=(6 * panels, 4), layout="constrained", squeeze=False
    )
    for ax, (loss, group) in zip(axes[0], by_loss.items(), strict=False):
        for fold in group:
            curve = fold.history["train_loss"]
            ax.plot(range(1, len(curve) + 1), curve, label=fold.model)
        ax.set(yscale="log", xlabel="Epoch", ylabel=f"train loss ({loss}, log scale)")
        plain = FuncFormatter(lambda y, _: f"{y:.3g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"Train loss ({loss}) on {first_fold}")
        ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _embedding_histograms(folds, path: Path) -> None:
    learnt = [f for f in folds if f.embeddings and f.fold == folds[0].fold]
    fig, axes = plt.subplots(
        1,
        max(1, len(learnt)),
        figsize=(4 * max(1, len(learnt)), 3.2),
        layout="constrained",
        squeeze=False,
    )
    for ax, fold in zip(axes[0], learnt, strict=False):
        for name, table in fold.embeddings.items():
            ax.hist(table.ravel(), bins=60, alpha=0.6, label=f"{name} ({table.shape[1]} dims)")
        ax.set(title=f"{fold.model} embedding values", xlabel="value")
        ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)


PARETO_BAND = 0.15  # validation MAE shown in detail above the best trial's


def _trial_points(client: MlflowClient, study: str) -> list[tuple[float, float]]:
    """(fit seconds, validation MAE) of every completed trial of `study`."""
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id], "tags.trial_state = 'COMPLETE'", max_results=5000
    )
    return sorted(
        (r.data.metrics["fit_seconds"], r.data.metrics["val_mae"])
        for r in runs
        if "fit_seconds" in r.data.metrics and "val_mae" in r.data.metrics
    )


def _seconds_axis(ax: plt.Axes, seconds: list[float]) -> None:
    """Log scale with plain labels at 1-2-5 steps where the times span a decade or more."""
    if max(seconds) < 10 * min(seconds):
        ax.set_xlabel("fit seconds")
        return
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("fit seconds (log scale)")


def _pareto(client: MlflowClient, studies: dict[str, str], path: Path) -> str | None:
    """Validation MAE against fit seconds over all completed trials of each arch's study,
    with each Pareto front. Every trial is drawn: those worse than the best by more than
    PARETO_BAND sit in a shaded band at the top (diverged trials would otherwise flatten the
    interesting part). Returns the figure's caption (None: no trials)."""
    points = {arch: _trial_points(client, study) for arch, study in studies.items()}
    points = {arch: p for arch, p in points.items() if p}
    if not points:
        return None
    low = min(v for p in points.values() for _, v in p)
    top = low + PARETO_BAND
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    clipped = 0
    for arch, arch_points in points.items():
        seconds = np.array([s for s, _ in arch_points])
        values = np.array([v for _, v in arch_points])
        over = values > top
        clipped += int(over.sum())
        line = ax.scatter(seconds[~over], values[~over], s=14, alpha=0.6, label=f"{arch} trials")
        color = line.get_facecolor()[0]
        ax.scatter(seconds[over], np.full(over.sum(), top + 0.01), s=22, marker="^", color=color)
        front, best = [], float("inf")
        for s, v in arch_points:
            if v < best:
                front.append((s, min(v, top + 0.01)))
                best = v
        ax.step(*zip(*front, strict=True), where="post", color=color)
    if clipped:
        ax.axhspan(top, top + 0.02, color="0.85", zorder=0)
        ax.text(0.01, top + 0.018, f"{clipped} trial(s) with validation MAE > {top:.3f}, drawn "
                f"here (^)", transform=ax.get_yaxis_transform(), va="top", fontsize=8)  # fmt: skip
    ax.set_ylim(low - 0.01, top + 0.02)
    _seconds_axis(ax, [s for p in points.values() for s, _ in p])
    ax.set_ylabel("validation MAE (last epoch)")
    ax.set_title("Accuracy against training time (Pareto front per architecture)")
    ax.legend(loc="best")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    n_points = sum(len(p) for p in points.values())
    return (
        f"All {n_points} completed sweep trials; the {clipped} with a validation MAE above "
        f"{top:.3f} (the best + {PARETO_BAND}) are drawn as ^ in the shaded band at the top."
    )


def _figures(folder: Path, outcome: Outcome, client: MlflowClient, studies: dict) -> str:
    """Draw the PNG figures into `folder`; returns the report's Figures section."""
    _metric_bars(outcome.results, folder / "metrics.png")
    _loss_curves(outcome.folds, outcome.configs, folder / "loss_curves.png")
    _embedding_histograms(outcome.folds, folder / "embeddings.png")
    pareto_caption = _pareto(client, studies, folder / "pareto.png")
    pareto = (
        f"![pareto](pareto.png)\n\n{pareto_caption}"
        if pareto_caption
        else "(No sweep study in this store: no Pareto plot.)"
    )
    return f"""## Figures

Metrics: mean ± std over folds, bars from 0. Train loss: the first fold, one panel per loss.

![metrics](metrics.png)
![loss curves](loss_curves.png)
![embeddings](embeddings.png)

{pareto}
"""


def wilcoxon_note(folds: int) -> str:
    """What the Wilcoxon p-values of the comparisons can reach with this run's folds."""
    if folds < 2:
        return "With one fold there is no paired test: it needs at least 2 folds or seeds."
    return (
        f"With {folds} folds the smallest two-sided Wilcoxon p-value is "
        f"{wilcoxon_floor(folds):.3g}: read it with the t-test."
    )


def _config_rows(outcome: Outcome) -> pd.DataFrame:
    """One row per architecture and fold: the config, and the trial that chose it."""
    rows = []
    for arch, folds in outcome.configs.items():
        for fold, config in folds.items():
            origin = outcome.provenance.get(arch, {}).get(fold, {})
            chosen = (
                f"{origin['study']} #{origin['trial']} ({origin['trials']} trials, "
                f"val {origin['value']:.4f})"
                if "study" in origin
                else origin.get("origin", "-")
            )
            rows.append({"arch": arch, "fold": fold, "chosen by": chosen, **config_fields(config)})
    return pd.DataFrame(rows, dtype=object).fillna("-")


def _cut_short_note(outcome: Outcome) -> str:
    """The rows whose config a study's timeout chose before its trial count ran out."""
    lines = [
        origin["cut_short"]
        for folds in outcome.provenance.values()
        for origin in folds.values()
        if origin.get("cut_short")
    ]
    if not lines:
        return ""
    said = "\n".join(f"- {line}" for line in lines)
    title = "**Machine-dependent rows** (a timeout, not the trial count, ended the study):"
    return f"\n{title}\n\n{said}\n"


def _tuning_section(outcome: Outcome) -> str:
    """The "did tuning help?" table, when nested tuning scored its trial 0 too."""
    if outcome.tuning is None or outcome.tuning.empty:
        return ""
    return f"""## Did tuning help?

Each architecture's tuned config against its study's trial 0 (the published settings, with
early stopping), both refitted on each fold's training part. "Test difference" is tuned minus
trial 0 (negative: tuning helped), mean over folds with the corrected 95 % CI.

{markdown_table(outcome.tuning)}

"""


def write_benchmark_report(
    folder: Path, outcome: Outcome, client: MlflowClient, studies: dict[str, str]
) -> Path:
    """report.md with the tables and sentences, the PNG figures beside it, and report.html:
    the same page with the figures embedded (MLflow's artifact viewer renders HTML)."""
    results = outcome.results
    figures = _figures(folder, outcome, client, studies)
    gate = (
        "\n".join(f"- **{r.message()}**" for r in outcome.regressions)
        if outcome.regressions
        else f"No metric regressed beyond noise and the minimum difference (against the "
        f"{outcome.against})."
        if outcome.compared
        else "No earlier benchmark run of the same identity: nothing was compared."
    )
    config_rows = _config_rows(outcome)
    fallback = ""
    if "n_fallback" in results:
        per_fold = results.groupby("fold", sort=False)["n_fallback"].max()
        fallback = "Test ratings with an id that has no training rating (predicted by the "
        fallback += "fallback: global mean plus the known side's bias): "
        fallback += ", ".join(f"{fold} {int(n)}" for fold, n in per_fold.items()) + "."
    text = f"""# Benchmark report

Configs from {outcome.source}; folds {", ".join(results["fold"].unique())}.
Mean ± sample std over folds; 95 % CIs of the mean use the Nadeau-Bengio corrected
standard error (the folds' training sets overlap) and are clipped to each metric's bounds.
Comparisons: corrected resampled t-test, Holm-adjusted over all comparisons of this report.
Ranking metrics: relevant = a test rating in the top quarter of the rating scale (>= 4 on
1..5); each user's unseen items are ranked; ties broken by a seeded permutation.
{fallback}

## Results

{markdown_table(outcome.summary)}
{_cut_short_note(outcome)}

## Paired comparisons (per fold)

{chr(10).join(f"- {line}" for line in outcome.sentences)}

{wilcoxon_note(results["fold"].nunique())}

{_tuning_section(outcome)}## Regression gate

{gate}

## Configs

{markdown_table(config_rows)}

{figures}"""
    path = folder / "report.md"
    path.write_text(text)
    (folder / "report.html").write_text(to_html(text, folder, "Benchmark report"))
    return path
