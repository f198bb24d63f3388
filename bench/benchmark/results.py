"""The result types of a benchmark: one model on one fold, and a whole run's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import pandas as pd

from bench.benchmark.stats import Paired, Regression


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
    previous: pd.DataFrame | None = None  # the per-fold results the gate compared with
    min_delta: float = 0.0  # the gate's smallest difference that counts
    against: str = ""  # what the gate compared with ("reference run NAME", ...)
    tuning: pd.DataFrame | None = None  # "did tuning help?": tuned configs against trial 0
    run: str = ""  # the MLflow parent run's name (benchmark-DATE-TIME)
    promoted: bool = False  # whether --promote made the run the gate's reference
