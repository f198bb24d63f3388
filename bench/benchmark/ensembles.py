"""Ensembles of a nested study's best configs, weighted on the validation part only.

An HPO study pays for many good configs and keeps one. `--ensembles M` adds rows that keep
more: for each architecture, the M best trials of each fold's study (`ARCH-ens`), and all of
those together (`all-ens`). Each member is trained on the fold's tuning part (the training
part less its validation part, exactly the study's split) and predicts the validation
part; Caruana et al.'s greedy ensemble selection (2004, as Auto-sklearn uses it) picks
members with replacement for `ROUNDS` rounds, each time the one whose addition gives the
lowest validation error, and the weights are how often each was picked. The members
picked are then refitted on the fold's whole training part, as single configs are, and the
row predicts their weighted mean. No weight sees a test rating; a one-member ensemble is
its member.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from bench.data import Split

ROUNDS = 25  # greedy selection rounds, fixed in advance (weights are multiples of 1/25)
ALL = "all"  # the cross-architecture ensemble's prefix
SUFFIX = "-ens"


def row_name(prefix: str) -> str:
    """The result row of an architecture's ensemble (`mf-ens`) or of all of them."""
    return f"{prefix}{SUFFIX}"


@dataclass(frozen=True)
class EnsembleSpec:
    """An ensemble's members on one fold: (label, config) pairs, best first."""

    name: str
    members: tuple[tuple[str, Any], ...]
    valid_fraction: float  # the nested studies' validation share, carved the same way
    metric: str  # the validation metric the weights minimise (rmse or mae)

    @property
    def arch(self) -> str:
        return "ensemble"

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.members]

    def report_fields(self) -> dict[str, str]:
        """What the report's config table shows: the members by trial (their configs are
        their architectures' rows; the weights are among the fold run's params)."""
        return {"members": ", ".join(self.labels), "weights on": f"validation {self.metric}"}


def tuning_part(fold: Split, seed: int, valid_fraction: float) -> Split:
    """The fold's training part cut as its nested study cut it (`nested_tuning.tuning_split`:
    the same rows, the same seed), with no test part."""
    split_seed = int(fold.name.removeprefix("seed")) if fold.name.startswith("seed") else seed
    train, valid = train_test_split(fold.train, test_size=valid_fraction, random_state=split_seed)
    return replace(
        fold, seed=split_seed, valid_fraction=valid_fraction, train=train.reset_index(drop=True),
        valid=valid.reset_index(drop=True), test=fold.test.iloc[:0],
    )  # fmt: skip


def _error(predicted: np.ndarray, target: np.ndarray, metric: str) -> float:
    residual = predicted - target
    return float(np.sqrt(np.mean(residual**2)) if metric == "rmse" else np.mean(np.abs(residual)))


def greedy_weights(
    predictions: np.ndarray, target: np.ndarray, metric: str, rounds: int = ROUNDS
) -> np.ndarray:
    """Caruana's selection with replacement: `rounds` picks, each the member (a row of
    `predictions`) that most lowers the running mean's error; ties: the earlier member."""
    counts = np.zeros(len(predictions))
    total = np.zeros(predictions.shape[1])
    for picked in range(1, rounds + 1):
        errors = [_error((total + row) / picked, target, metric) for row in predictions]
        best = int(np.argmin(errors))
        counts[best] += 1
        total += predictions[best]
    return counts / rounds


def fit_weights(predictions: np.ndarray, valid: pd.DataFrame, metric: str) -> np.ndarray:
    """The members' weights from their predictions of the validation part `valid`."""
    return greedy_weights(predictions, valid["rating"].to_numpy("float64"), metric)
