"""Anytime curves of a study: the best value found so far, per trial and per second spent.

A tuner is judged by how fast its best-so-far value falls, not only by where it ends: the
curve over trials (and over cumulative trial seconds) and the area under it (its mean;
lower is better for a minimised metric) say how much each trial bought.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import optuna

from bench.tracking.tracker import Tracker, as_metrics

FIGURE = "plots/best_so_far.png"


@dataclass(frozen=True)
class Curve:
    """A study's best-so-far curve, one point per finished trial in trial order."""

    trials: list[int]  # trial numbers
    best: list[float]  # best complete value up to and including that trial (nan: none yet)
    seconds: list[float]  # cumulative wall seconds of the trials up to that one


def best_so_far(values: Sequence[float | None], maximise: bool = False) -> list[float]:
    """The running minimum (`maximise`: maximum) of `values`; None (a pruned or failed
    trial) improves nothing."""
    out, best, sign = [], math.nan, -1.0 if maximise else 1.0
    for value in values:
        if value is not None and (math.isnan(best) or sign * value < sign * best):
            best = value
        out.append(best)
    return out


def area(best: Sequence[float]) -> float:
    """The mean of a best-so-far curve (its area per trial); the trials before the first
    complete one count as the worst value the curve reaches."""
    finite = [b for b in best if not math.isnan(b)]
    if not finite:
        return math.nan
    worst = max(finite)
    return sum(worst if math.isnan(b) else b for b in best) / len(best)


def curve_of(study: optuna.Study) -> Curve:
    """The curve of a study's finished trials, in its direction."""
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    finished.sort(key=lambda t: t.number)
    complete = optuna.trial.TrialState.COMPLETE
    values = [t.value if t.state == complete else None for t in finished]
    seconds, total = [], 0.0
    for trial in finished:
        total += trial.duration.total_seconds() if trial.duration else 0.0
        seconds.append(total)
    maximise = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return Curve([t.number for t in finished], best_so_far(values, maximise), seconds)


def log_curve(tracker: Tracker, run_id: str, curve: Curve, metric: str) -> None:
    """On a study's parent run: `best_{metric}` per trial (step = trial number) and per
    cumulative second (step = seconds), and the figure of both."""
    metrics = []
    for number, best, seconds in zip(curve.trials, curve.best, curve.seconds, strict=True):
        if math.isnan(best):
            continue
        metrics += as_metrics({f"best_{metric}_by_trial": best}, step=number)
        metrics += as_metrics({f"best_{metric}_by_second": best}, step=round(seconds))
    if metrics:
        tracker.log(run_id, metrics)
        tracker.log_figure(run_id, curve_figure(curve, metric), FIGURE)


def curve_figure(curve: Curve, metric: str) -> plt.Figure:
    """Best-so-far against trials and against cumulative seconds, side by side."""
    fig, (by_trial, by_second) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    by_trial.step(curve.trials, curve.best, where="post")
    by_trial.set(xlabel="trial", ylabel=f"best {metric} so far", title="per trial")
    by_second.step(curve.seconds, curve.best, where="post")
    by_second.set(xlabel="cumulative trial seconds", title="per second")
    fig.tight_layout()
    return fig
