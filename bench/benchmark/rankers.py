"""Closed-form item-item ranking peers, in numpy: EASE (Steck 2019) and a cosine ItemKNN.

Both learn an item-item weight matrix B from the binary matrix X of a fold's training
positives (every rating, or only those at or above the scale's relevance threshold: a choice
each tunes) and score user u's items as X[u] @ B. They rank; they predict no rating, so their
rating metrics are NaN. Each is tuned per fold with Optuna on the validation part and budget
our architectures get, selected on validation NDCG@10 (higher is better), and refitted on
the fold's whole training part. One `Ranker` entry in `RANKERS` adds another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
import scipy.sparse as sp

from bench.benchmark.peers import run_budget
from bench.errors import BenchError
from bench.metrics import RatingScale
from bench.metrics.ranking import ranking_metrics
from bench.sweep.samplers import make_sampler, stream_of

MAX_ITEMS = 20_000  # B is a dense n_items x n_items float64 matrix: 3.2 GB at this size
SELECTED_ON = "ndcg_at_10"  # the validation metric a ranker's config is chosen on
POSITIVES = ("all", "relevant")  # which training ratings count as a positive


def positives(
    train: pd.DataFrame, n_users: int, n_items: int, kept: str, scale: RatingScale
) -> sp.csr_matrix:
    """The binary user x item matrix of the training ratings that count as positives."""
    rows = train if kept == "all" else train[train["rating"] >= scale.relevant]
    ones = np.ones(len(rows), dtype="float64")
    coords = (rows["user"].to_numpy(), rows["item"].to_numpy())
    matrix = sp.csr_matrix((ones, coords), shape=(n_users, n_items))
    matrix.data[:] = 1.0  # a pair rated twice is still one positive
    return matrix


def _gram(x: sp.csr_matrix) -> np.ndarray:
    """X^T X as a dense float64 matrix (item co-occurrence counts)."""
    return np.asarray((x.T @ x).todense(), dtype="float64")


def ease_weights(x: sp.csr_matrix, l2: float) -> np.ndarray:
    """EASE's closed form: B = I - P diag(1 / diag(P)), P = (X^T X + l2 I)^-1, diag(B) = 0."""
    gram = _gram(x)
    gram[np.diag_indices_from(gram)] += l2
    inverse = np.linalg.inv(gram)
    weights = inverse / -np.diag(inverse)
    np.fill_diagonal(weights, 0.0)
    return weights


def itemknn_weights(x: sp.csr_matrix, neighbours: int, shrinkage: float) -> np.ndarray:
    """Shrunk cosine similarity of item columns, each item keeping its `neighbours` most
    similar items (ties: the lower item code) as the ones that score it."""
    gram = _gram(x)
    norms = np.sqrt(np.diag(gram))
    sims = gram / (np.outer(norms, norms) + shrinkage + 1e-12)
    np.fill_diagonal(sims, 0.0)
    if neighbours < len(sims):
        dropped = np.argsort(-sims, axis=0, kind="stable")[neighbours:]
        np.put_along_axis(sims, dropped, 0.0, axis=0)
    return sims


@dataclass(frozen=True)
class Ranker:
    """A registered ranking peer: its search space and how it builds B from X."""

    name: str
    space: Callable[[optuna.Trial], dict[str, Any]]
    weights: Callable[..., np.ndarray]
    version: str  # in its study names: a changed space starts new studies


def _ease_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "l2": trial.suggest_float("l2", 1.0, 1e4, log=True),
        "positives": trial.suggest_categorical("positives", POSITIVES),
    }


def _itemknn_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "neighbours": trial.suggest_int("neighbours", 5, 500, log=True),
        "shrinkage": trial.suggest_float("shrinkage", 0.0, 200.0),
        "positives": trial.suggest_categorical("positives", POSITIVES),
    }


RANKERS: dict[str, Ranker] = {
    r.name: r
    for r in (
        Ranker("ease", _ease_space, ease_weights, "r1"),
        Ranker("itemknn", _itemknn_space, itemknn_weights, "r1"),
    )
}


def fit_scores(name: str, params: dict[str, Any], train: pd.DataFrame, shape, scale) -> np.ndarray:
    """Every (user, item) score of ranker `name` fitted on `train`: X @ B."""
    n_users, n_items = shape
    if n_items > MAX_ITEMS:
        raise BenchError(
            f"--peers {name}: {n_items:,} items need a dense {n_items:,}^2 item-item matrix "
            f"(over {MAX_ITEMS:,} items); leave {name} out on this data set"
        )
    fields = dict(params)
    x = positives(train, n_users, n_items, fields.pop("positives", "all"), scale)
    return np.asarray(x @ RANKERS[name].weights(x, **fields))


def validation_score(scores: np.ndarray, tuning) -> float:
    """Validation NDCG@10 of a score grid fitted on the tuning split's training part."""
    metrics = ranking_metrics(
        lambda u: scores[u], tuning.train, tuning.valid, tuning.n_items, 10, scale=tuning.scale
    )
    return float(metrics[SELECTED_ON])


def tune(
    name: str, tuning, budget, seed: int, storage: optuna.storages.BaseStorage, study: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tune ranker `name` on the tuning split's validation part with the budget's trial
    count, timeout and sampler, maximising validation NDCG@10; (params, provenance)."""
    shape = (tuning.n_users, tuning.n_items)

    def objective(trial: optuna.Trial) -> float:
        params = RANKERS[name].space(trial)
        return validation_score(fit_scores(name, params, tuning.train, shape, tuning.scale), tuning)

    sampler = make_sampler(seed, (stream_of(tuning.name),), budget.sampler)
    found = optuna.create_study(
        study_name=f"{study}-{RANKERS[name].version}", storage=storage, sampler=sampler,
        direction="maximize", load_if_exists=True,
    )  # fmt: skip
    return run_budget(found, objective, RANKERS[name].space, budget, f"val_{SELECTED_ON}")
