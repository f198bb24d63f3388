"""Every metric the harness reports, declared once.

One row per metric: its name, kind (rating, ranking or cost), direction, whether the
regression gate checks it, whether reports plot it, its bounds, and for rating metrics
how it is computed. Sweeps, the benchmark, the gate, the report and MLflow names all read
this table: adding a metric is one row (plus, for a new kind, its computation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class RatingScale:
    """The rating values a data set allows: low..high in steps of `step`."""

    low: float = 1.0
    high: float = 5.0
    step: float = 1.0

    def snap(self, predictions: np.ndarray) -> np.ndarray:
        """Round to the nearest allowed rating (half to even), then clip to the scale."""
        snapped = np.round(np.asarray(predictions, dtype="float64") / self.step) * self.step
        return np.clip(snapped, self.low, self.high)

    @property
    def relevant(self) -> float:
        """The lowest rating that counts as relevant in ranking metrics: the top quarter
        of the scale (4 on 1..5 and on 0.5..5 in half stars, 8 on 1..10)."""
        return self.low + 0.75 * (self.high - self.low)

    def __str__(self) -> str:
        return f"{self.low:g}..{self.high:g} step {self.step:g}"


def _mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.abs(y_pred - y_true)))


def _rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y_pred - y_true) ** 2)))


RatingFn = Callable[[np.ndarray, np.ndarray, RatingScale], float]


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Literal["rating", "ranking", "cost"]
    lower_is_better: bool
    description: str
    gated: bool = False  # the regression gate checks it
    plotted: bool = False  # report figures show it
    tunable: bool = False  # a sweep may select on it (its task's: the metric's kind)
    bounds: tuple[float, float] | None = None  # CIs are clipped to these
    compute: RatingFn | None = None  # rating metrics: (y_true, y_pred, scale) -> value
    k: int | None = None  # ranking metrics: list length


METRICS: tuple[Metric, ...] = (
    Metric("mae", "rating", True, "mean absolute error of raw predictions", gated=True,
           plotted=True, tunable=True, bounds=(0, np.inf), compute=lambda t, p, s: _mae(t, p)),
    Metric("rmse", "rating", True, "root mean squared error of raw predictions", gated=True,
           plotted=True, tunable=True, bounds=(0, np.inf), compute=lambda t, p, s: _rmse(t, p)),
    Metric("mae_rounded", "rating", True, "MAE of predictions rounded to the rating scale",
           bounds=(0, np.inf), compute=lambda t, p, s: _mae(t, s.snap(p))),
    Metric("rmse_rounded", "rating", True, "RMSE of predictions rounded to the rating scale",
           bounds=(0, np.inf), compute=lambda t, p, s: _rmse(t, s.snap(p))),
    Metric("precision_at_10", "ranking", False, "share of the top 10 that is relevant",
           gated=True, bounds=(0, 1), k=10),
    Metric("recall_at_10", "ranking", False, "share of relevant items in the top 10",
           gated=True, tunable=True, bounds=(0, 1), k=10),
    Metric("ndcg_at_10", "ranking", False, "discounted gain of the top 10, normalised",
           gated=True, plotted=True, tunable=True, bounds=(0, 1), k=10),
    Metric("fit_seconds", "cost", True, "seconds of training (compilation included)"),
)  # fmt: skip


BY_NAME = {metric.name: metric for metric in METRICS}
RATING = tuple(m for m in METRICS if m.kind == "rating")
RANKING = tuple(m for m in METRICS if m.kind == "ranking")
GATED = tuple(m.name for m in METRICS if m.gated)
PLOTTED = tuple(m.name for m in METRICS if m.plotted)
TUNABLE = tuple(m.name for m in METRICS if m.tunable)


def get_metric(name: str) -> Metric:
    return BY_NAME[name]


def lower_is_better(name: str) -> bool:
    metric = BY_NAME.get(name)
    return metric.lower_is_better if metric else name.endswith("seconds")


def rating_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, prefix: str, scale: RatingScale | None = None
) -> dict[str, float]:
    """Every rating metric of the table, named `{prefix}_{metric}` (e.g. `test_mae`); an empty
    prefix names them plainly (`mae`)."""
    scale = scale or RatingScale()
    y_true = np.asarray(y_true, dtype="float64")
    y_pred = np.asarray(y_pred, dtype="float64")
    head = f"{prefix}_" if prefix else ""
    return {f"{head}{m.name}": m.compute(y_true, y_pred, scale) for m in RATING}


def mlflow_name(name: str) -> str:
    """A benchmark fold's metric under the name a sweep trial uses (`test_mae`, ...)."""
    metric = BY_NAME.get(name)
    return f"test_{name}" if metric is not None and metric.kind != "cost" else name


def ranking_ks() -> tuple[int, ...]:
    return tuple(sorted({m.k for m in RANKING}))
