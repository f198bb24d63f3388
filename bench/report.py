"""Study summaries: the best trial beside the post's settings, and Optuna's plots."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from bench.tracking import log_metrics  # noqa: E402

COMPLETE = optuna.trial.TrialState.COMPLETE
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


PLOTS = {
    "optimization_history": optuna.visualization.matplotlib.plot_optimization_history,
    "param_importances": optuna.visualization.matplotlib.plot_param_importances,
    "parallel_coordinate": optuna.visualization.matplotlib.plot_parallel_coordinate,
}


def log_study_summary(client: MlflowClient, run_id: str, study: optuna.Study) -> None:
    """Best trial's params (as tags) and metrics, trial table and plots on the parent run."""
    summary = summarise(client, study)
    n_finished = sum(v for k, v in summary.items() if k.startswith("n_") and isinstance(v, int))
    log_metrics(run_id, {k: v for k, v in summary.items() if v is not None}, step=n_finished)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == COMPLETE]
    if not complete:
        return
    best = study.best_trial
    for name, value in best.params.items():
        client.set_tag(run_id, f"best.{name}", str(value))
    table = study.trials_dataframe(attrs=("number", "value", "state", "params", "duration"))
    client.log_text(run_id, table.to_csv(index=False), "trials.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        for name, plot in PLOTS.items():
            try:
                axes = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue  # e.g. importances need two complete trials with varied params
            figure = getattr(axes, "figure", None) or axes.flat[0].figure
            client.log_figure(run_id, figure, f"plots/{name}.png")
            plt.close(figure)
