"""A finished study summarised: its best trial, Optuna's plots, the champion registered."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial

from bench.sweep.anytime import curve_of, log_curve
from bench.sweep.champion import register_best
from bench.sweep.descriptions import study_result, trial_run_name, with_result
from bench.tracking.tracker import EMBEDDING_PNG, Tracker, as_metrics

NOTE = "mlflow.note.content"  # a run's description
COMPLETE = optuna.trial.TrialState.COMPLETE
TEST_KEYS = ("test_mae", "test_rmse", "test_mae_rounded", "test_ndcg_at_10", "test_recall_at_10")


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
    best = study.best_trial  # in the study's direction
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
    tracker.log(run_id, as_metrics(parent_metrics(summary, metric), step=n_finished))
    champion = None
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == COMPLETE]
    if complete:
        best = study.best_trial
        tags = {f"best.{name}": str(value) for name, value in best.params.items()}
        tracker.log(run_id, tags=tags)
        mark_best(client, run_id, best)
        table = study.trials_dataframe(attrs=("number", "value", "state", "params", "duration"))
        client.log_text(run_id, table.to_csv(index=False), "trials.csv")
        log_study_plots(tracker, run_id, study, metric)
        log_curve(tracker, run_id, curve_of(study), metric)
        _copy_best_embeddings(client, run_id, best)
        if register:
            champion = register_best(client, study, best, metric)
    note = client.get_run(run_id).data.tags.get(NOTE, "")
    result = study_result(summary, metric, champion)
    tracker.log(run_id, tags={NOTE: with_result(note, result)})


def parent_metrics(summary: dict, metric: str) -> dict[str, float]:
    """The summary as the parent run's metrics: the best trial's figures under the trials'
    own names (`val_mae`, `test_rmse`, ...), so parent and trials share the runs table's
    columns; counts and the post-settings trial's figures as they are."""
    renamed = {"best_val": metric, **{f"best_{key}": key for key in TEST_KEYS}}
    return {renamed.get(k, k): v for k, v in summary.items() if v is not None}


BEST_TAG = "best_trial"  # "true" on the run of the study's best trial (MLflow's runs table)


def mark_best(client: MlflowClient, parent_id: str, best: FrozenTrial) -> None:
    """Tag and name the best trial's run (`trial-0007 (best)`), and unmark a run marked
    best before (an earlier best of this study)."""
    best_run = best.user_attrs.get("mlflow_run_id")
    experiment = client.get_run(parent_id).info.experiment_id
    marked = client.search_runs(
        [experiment],
        filter_string=f"tags.{BEST_TAG} = 'true' and tags.mlflow.parentRunId = '{parent_id}'",
    )
    for run in marked:
        if run.info.run_id != best_run:
            client.set_tag(run.info.run_id, BEST_TAG, "false")
            number = int(run.data.tags["trial_number"])
            client.update_run(run.info.run_id, name=trial_run_name(number))
    if best_run:
        client.set_tag(best_run, BEST_TAG, "true")
        client.update_run(best_run, name=f"{trial_run_name(best.number)} (best)")


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
        clip_outliers(history, [t.value for t in complete], maximise=_maximised(study))
        _log_optuna_figure(tracker, run_id, history, "plots/optimization_history.png")
        _intermediate_values(tracker, run_id, study)
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
    complete = study.get_trials(deepcopy=False, states=(COMPLETE,))
    params = sorted({name for t in complete for name in t.params})  # Optuna plots these only
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


def _intermediate_values(tracker: Tracker, run_id: str, study: optuna.Study) -> None:
    """Every trial's validation metric per epoch (pruned trials too), outliers clipped."""
    trials = study.get_trials(deepcopy=False)
    values = [v for t in trials for v in t.intermediate_values.values() if np.isfinite(v)]
    if not values:
        return
    axes = optuna.visualization.matplotlib.plot_intermediate_values(study)
    legend = axes.get_legend()
    if legend is not None:  # one entry per trial: unreadable
        legend.remove()
    clip_outliers(axes, values, "epoch value(s)", maximise=_maximised(study))
    _log_optuna_figure(tracker, run_id, axes, "plots/intermediate_values.png")


def clip_outliers(axes, values: list[float], what: str = "trial(s)", maximise: bool = False) -> int:
    """Clip the y axis to the bulk of the values (up to the upper Tukey fence, Q3 + 3 IQR;
    `maximise`: from the lower one, Q1 - 3 IQR: the worst side either way), so that one
    diverged trial does not flatten the rest; says in the title how many points lie
    beyond. The number clipped."""
    if len(values) < 4:
        return 0
    sign = -1.0 if maximise else 1.0  # the worst side made the upper one
    q1, q3 = np.quantile([sign * v for v in values], [0.25, 0.75])
    fence = q3 + 3 * (q3 - q1)
    beyond = sum(sign * v > fence for v in values)
    if not beyond:
        return 0
    best = min(sign * v for v in values)
    limits = sorted(sign * x for x in (best - 0.05 * (fence - best), fence + 0.05 * (fence - best)))
    axes.set_ylim(*limits)
    side = "below" if maximise else "above"
    axes.set_title(f"{axes.get_title()} ({beyond} {what} {side} the axis, clipped)")
    return beyond


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


def _maximised(study: optuna.Study) -> bool:
    return study.direction == optuna.study.StudyDirection.MAXIMIZE
