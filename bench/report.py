"""Reports: study summaries (best trial, Optuna plots) and the benchmark report."""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial

from bench.describe import champion_description, study_result, with_result
from bench.htmlreport import to_html
from bench.metrics import PLOTTED
from bench.serving import CHAMPION, RATING_MODEL_TAG, register_champion, registered_name
from bench.stats import Paired, Regression
from bench.tracking import EMBEDDING_PNG, Tracker, as_metrics

COMPLETE = optuna.trial.TrialState.COMPLETE
NOTE = "mlflow.note.content"  # a run's description


@dataclass
class FoldResult:
    """One model (a learnt config or a baseline) fitted and scored on one fold."""

    model: str
    fold: str
    metrics: dict[str, float]
    history: dict[str, list[float]] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    keras_model: keras.Model | None = None
    model_uri: str | None = None  # the logged pyfunc `rating_model`, if any


@dataclass
class Outcome:
    """Everything the report shows of one benchmark run."""

    results: pd.DataFrame  # one row per model and fold
    summary: pd.DataFrame  # one row per model: mean ± std and CIs
    sentences: list[str]  # paired comparisons in words
    regressions: list[Regression]
    folds: list[FoldResult]
    configs: dict[str, Any]
    source: str
    comparisons: list[Paired] = field(default_factory=list)
    provenance: dict[str, dict[str, dict]] = field(default_factory=dict)
    compared: bool = False  # whether a comparable earlier run was there to gate against


TEST_KEYS = ("test_mae", "test_rmse", "test_mae_rounded")


def _run_metrics(client: MlflowClient, trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    run_id = trial.user_attrs.get("mlflow_run_id")
    return dict(client.get_run(run_id).data.metrics) if run_id else {}


def summarise(client: MlflowClient, study: optuna.Study) -> dict[str, float | int | None]:
    """Best trial (by validation) and the post-settings trial, with their test figures."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == COMPLETE]
    counts = {state.name.lower(): 0 for state in optuna.trial.TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] += 1
    summary: dict[str, float | int | None] = {f"n_{k}": v for k, v in counts.items() if v}
    if not complete:
        return summary
    best = min(complete, key=lambda t: t.value)
    best_metrics = _run_metrics(client, best)
    summary.update(best_trial=best.number, best_val=best.value)
    summary.update({f"best_{k}": best_metrics.get(k) for k in TEST_KEYS})
    baseline = next((t for t in complete if t.user_attrs.get("baseline") == "post"), None)
    if baseline is not None:
        base_metrics = _run_metrics(client, baseline)
        summary.update(post_val=baseline.value)
        summary.update({f"post_{k}": base_metrics.get(k) for k in TEST_KEYS})
    return summary


MIN_TRIALS_FOR_IMPORTANCE = 10  # fANOVA importances of fewer trials are mostly noise
MAX_PARALLEL_PARAMS = 8  # a parallel-coordinate plot with more axes is unreadable
PLOT_SIZE = (10, 5.5)


def log_study_summary(
    tracker: Tracker, run_id: str, study: optuna.Study, register: bool = True
) -> None:
    """On the parent run: the best trial's metrics and params (as tags), the trial table,
    plots, the best trial's embedding histogram, its model registered as champion (when
    `register`: by the invocation that closes the parent run), and the description's
    result part."""
    client = tracker.client
    metric = _name_the_metric(study)
    summary = summarise(client, study)
    n_finished = sum(v for k, v in summary.items() if k.startswith("n_") and isinstance(v, int))
    values = {k: v for k, v in summary.items() if v is not None}
    tracker.log(run_id, as_metrics(values, step=n_finished))
    champion = None
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == COMPLETE]
    if complete:
        best = study.best_trial
        tags = {f"best.{name}": str(value) for name, value in best.params.items()}
        tracker.log(run_id, tags=tags)
        table = study.trials_dataframe(attrs=("number", "value", "state", "params", "duration"))
        client.log_text(run_id, table.to_csv(index=False), "trials.csv")
        log_study_plots(tracker, run_id, study, metric)
        _copy_best_embeddings(client, run_id, best)
        if register:
            champion = register_best(client, study, best, metric)
    note = client.get_run(run_id).data.tags.get(NOTE, "")
    result = study_result(summary, metric, champion)
    tracker.log(run_id, tags={NOTE: with_result(note, result)})


def _name_the_metric(study: optuna.Study) -> str:
    """The objective's name (`val_mae`), set on the study for Optuna's plots and tables."""
    metric = f"val_{study.user_attrs.get('metric', 'mae')}"
    if study.metric_names is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental in Optuna
            study.set_metric_names([metric])
    return metric


def _copy_best_embeddings(client: MlflowClient, run_id: str, best: FrozenTrial) -> None:
    """The best trial's embedding histogram (logged with its model), onto the parent run."""
    trial_run = best.user_attrs.get("mlflow_run_id")
    if not trial_run or EMBEDDING_PNG not in {a.path for a in client.list_artifacts(trial_run)}:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(client.download_artifacts(trial_run, EMBEDDING_PNG, tmp))
        target = path.with_name("best_trial_embeddings.png")
        path.rename(target)
        client.log_artifact(run_id, str(target), "plots")


def register_best(
    client: MlflowClient, study: optuna.Study, best: FrozenTrial, metric: str
) -> str | None:
    """Register the best trial's logged model as `recsys-ARCH-DATASET`, alias `champion`;
    returns a sentence naming it (None: the trial logged no model)."""
    trial_run = best.user_attrs.get("mlflow_run_id")
    uri = client.get_run(trial_run).data.tags.get(RATING_MODEL_TAG) if trial_run else None
    arch = study.user_attrs.get("arch")
    if not uri or not arch:
        return None
    name = registered_name(arch, study.user_attrs.get("dataset", "ml-100k"))
    description = champion_description(study.study_name, best.number, metric, best.value)
    version = register_champion(client, uri, name, description)
    for key, value in {"source": "sweep", "study": study.study_name, "trial": best.number}.items():
        client.set_model_version_tag(name, version, key, str(value))
    return (
        f"`{name}` version {version}, alias `{CHAMPION}`: "
        f'`mlflow.pyfunc.load_model("models:/{name}@{CHAMPION}")` predicts from raw ids'
    )


def log_study_plots(tracker: Tracker, run_id: str, study: optuna.Study, metric: str) -> None:
    """Optimisation history; parameter importances and the parallel coordinates of the most
    important parameters (from MIN_TRIALS_FOR_IMPORTANCE completed trials on; a text file
    says why otherwise)."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == COMPLETE]
    importances = {}
    if len(complete) >= MIN_TRIALS_FOR_IMPORTANCE:
        try:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except (ValueError, RuntimeError, ZeroDivisionError):
            importances = {}  # e.g. no parameter varied
    with warnings.catch_warnings(), plt.rc_context():  # Optuna's plots switch to ggplot style
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        history = optuna.visualization.matplotlib.plot_optimization_history(
            study, target_name=metric
        )
        _log_optuna_figure(tracker, run_id, history, "plots/optimization_history.png")
        if importances:
            figure = _importance_figure(importances, metric)
            tracker.log_figure(run_id, figure, "plots/param_importances.png")
        else:
            tracker.client.log_text(
                run_id,
                f"No parameter importances: they need at least {MIN_TRIALS_FOR_IMPORTANCE} "
                f"completed trials with varied parameters; this study has {len(complete)} "
                f"completed.\n",
                "plots/param_importances.txt",
            )
        _parallel_coordinates(tracker, run_id, study, metric, importances, len(complete))


def _parallel_coordinates(
    tracker: Tracker, run_id: str, study: optuna.Study, metric: str, importances, n_complete
) -> None:
    params = sorted({name for t in study.get_trials(deepcopy=False) for name in t.params})
    if importances:
        params = list(importances)[:MAX_PARALLEL_PARAMS]
    if n_complete < 2 or len(params) > MAX_PARALLEL_PARAMS:
        tracker.client.log_text(
            run_id,
            f"No parallel-coordinate plot: the study has {len(params)} parameters and "
            f"{n_complete} completed trials; it is drawn for the {MAX_PARALLEL_PARAMS} most "
            f"important parameters once {MIN_TRIALS_FOR_IMPORTANCE} trials have completed.\n",
            "plots/parallel_coordinate.txt",
        )
        return
    axes = optuna.visualization.matplotlib.plot_parallel_coordinate(
        study, params=params, target_name=metric
    )
    _log_optuna_figure(tracker, run_id, axes, "plots/parallel_coordinate.png", rotate=True)


def _log_optuna_figure(
    tracker: Tracker, run_id: str, axes, path: str, rotate: bool = False
) -> None:
    """An Optuna matplotlib plot, enlarged and laid out so that its labels do not overlap
    (`rotate`: slant the x labels, for parameter names)."""
    figure = getattr(axes, "figure", None) or axes.flat[0].figure
    figure.set_size_inches(*PLOT_SIZE)
    for ax in figure.axes if rotate else []:
        for label in ax.get_xticklabels():
            label.set_rotation(20)
            label.set_horizontalalignment("right")
    figure.tight_layout()
    tracker.log_figure(run_id, figure, path)


def _importance_figure(importances: dict[str, float], metric: str) -> plt.Figure:
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=PLOT_SIZE, layout="constrained")
    ax.barh(names, [importances[n] for n in names])
    ax.set(
        xlabel=f"importance for {metric} (fANOVA, share of variance)",
        title="Hyperparameter importances",
        xlim=(0, None),
    )
    return fig


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


def _loss_curves(folds, configs: dict[str, Any], path: Path) -> None:
    """Train-loss curves on the first fold, one panel per loss (MSE and MAE never share)."""
    first_fold = folds[0].fold
    learnt = [f for f in folds if f.fold == first_fold and f.history]
    by_loss: dict[str, list[FoldResult]] = {}
    for fold in learnt:
        loss = getattr(configs.get(fold.model), "loss", "loss")
        by_loss.setdefault(loss, []).append(fold)
    panels = max(1, len(by_loss))
    fig, axes = plt.subplots(
        1, panels, figsize=(6 * panels, 4), layout="constrained", squeeze=False
    )
    for ax, (loss, group) in zip(axes[0], by_loss.items(), strict=False):
        for fold in group:
            curve = fold.history["train_loss"]
            ax.plot(range(1, len(curve) + 1), curve, label=fold.model)
        ax.set(yscale="log", xlabel="Epoch", ylabel=f"train loss ({loss.upper()}, log scale)")
        plain = FuncFormatter(lambda y, _: f"{y:.3g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"Train loss ({loss.upper()}) on {first_fold}")
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
            rows.append({"arch": arch, "fold": fold, "chosen by": chosen, **vars(config)})
    return pd.DataFrame(rows, dtype=object).fillna("-")


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
        else "No metric regressed beyond noise and the minimum difference."
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

## Paired comparisons (per fold)

{chr(10).join(f"- {line}" for line in outcome.sentences)}

With 5 folds the smallest two-sided Wilcoxon p-value is 0.0625: read it with the t-test.

## Regression gate

{gate}

## Configs

{markdown_table(config_rows)}

{figures}"""
    path = folder / "report.md"
    path.write_text(text)
    (folder / "report.html").write_text(to_html(text, folder, "Benchmark report"))
    return path
