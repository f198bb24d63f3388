"""Ranking peers: closed-form item-item models in numpy (EASE, Steck 2019; a cosine ItemKNN)
and the `implicit` package's ALS and BPR (the field's standard CPU implementations).

Each learns from the binary matrix X of a fold's training positives (every rating, or only
those at or above the scale's relevance threshold: a choice each tunes) and scores every
(user, item) pair: an item-item model as X[u] @ B, a factor model as p_u . q_i. They rank;
they predict no rating, so their rating metrics are NaN. Each is tuned per fold with Optuna
on the validation part and budget our architectures get, selected on validation NDCG@10
(higher is better), and refitted on the fold's whole training part. One `Ranker` entry in
`RANKERS` adds another.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from bench.benchmark.peers import run_budget
from bench.errors import BenchError
from bench.metrics import RatingScale
from bench.metrics.ranking import ranking_metrics
from bench.sweep.samplers import make_sampler, stream_of
from bench.training.tasks import POSITIVES  # which training ratings count as a positive

MAX_ITEMS = 20_000  # B is a dense n_items x n_items float64 matrix: 3.2 GB at this size
SELECTED_ON = "ndcg_at_10"  # the validation metric a ranker's config is chosen on


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


def item_item(weights: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """An item-item model's scores: X @ B, B = weights(X, **params)."""
    return lambda x, seed, **params: np.asarray(x @ weights(x, **params))


def _implicit_scores(kind: str) -> Callable[..., np.ndarray]:
    """The scores of `implicit`'s model `kind` (als, bpr) fitted on X: P @ Q^T. One thread:
    BPR's parallel updates race (hogwild), so only one thread gives the same model twice."""

    def scores(x: sp.csr_matrix, seed: int, **params) -> np.ndarray:
        import implicit.cpu.als  # the optional `bench` extra: imported when --peers asks
        import implicit.cpu.bpr

        models = {
            "als": implicit.cpu.als.AlternatingLeastSquares,
            "bpr": implicit.cpu.bpr.BayesianPersonalizedRanking,
        }
        with threadpool_limits(1, "blas"):  # implicit's advice: BLAS threads slow ALS down
            model = models[kind](random_state=seed, num_threads=1, **params)
            model.fit(x.astype("float32"), show_progress=False)
        return np.asarray(model.user_factors @ model.item_factors.T, dtype="float64")

    return scores


def require_implicit(names) -> None:
    """One error line if `implicit` (the `bench` extra) is missing for these peers."""
    wanted = [name for name in names if name in IMPLICIT]
    if wanted and importlib.util.find_spec("implicit") is None:
        raise BenchError(
            f"--peers {','.join(wanted)} needs implicit, which is not installed; "
            "run pip install 'recsys-sweep-bench[bench]'"
        )


@dataclass(frozen=True)
class Ranker:
    """A registered ranking peer: its search space and how it scores every pair from X."""

    name: str
    space: Callable[[optuna.Trial], dict[str, Any]]
    scores: Callable[..., np.ndarray]  # scores(X, seed, **params) -> n_users x n_items
    version: str  # in its study names: a changed space starts new studies
    item_item: bool = False  # holds a dense n_items x n_items matrix (MAX_ITEMS applies)


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


def _als_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "factors": trial.suggest_int("factors", 8, 256, log=True),
        "regularization": trial.suggest_float("regularization", 1e-3, 10.0, log=True),
        "alpha": trial.suggest_float("alpha", 0.1, 50.0, log=True),
        "iterations": trial.suggest_int("iterations", 5, 30),
        "positives": trial.suggest_categorical("positives", POSITIVES),
    }


def _bpr_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "factors": trial.suggest_int("factors", 8, 256, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.2, log=True),
        "regularization": trial.suggest_float("regularization", 1e-5, 0.1, log=True),
        "iterations": trial.suggest_int("iterations", 20, 300, log=True),
        "positives": trial.suggest_categorical("positives", POSITIVES),
    }


RANKERS: dict[str, Ranker] = {
    r.name: r
    for r in (
        Ranker("ease", _ease_space, item_item(ease_weights), "r1", item_item=True),
        Ranker("itemknn", _itemknn_space, item_item(itemknn_weights), "r1", item_item=True),
        Ranker("als", _als_space, _implicit_scores("als"), "r1"),
        Ranker("bpr", _bpr_space, _implicit_scores("bpr"), "r1"),
    )
}
IMPLICIT = ("als", "bpr")  # the rankers that need the `implicit` package


def fit_scores(
    name: str, params: dict[str, Any], train: pd.DataFrame, shape, scale, seed: int = 0
) -> np.ndarray:
    """Every (user, item) score of ranker `name` fitted on `train`."""
    n_users, n_items = shape
    if RANKERS[name].item_item and n_items > MAX_ITEMS:
        raise BenchError(
            f"--peers {name}: {n_items:,} items need a dense {n_items:,}^2 item-item matrix "
            f"(over {MAX_ITEMS:,} items); leave {name} out on this data set"
        )
    fields = dict(params)
    x = positives(train, n_users, n_items, fields.pop("positives", "all"), scale)
    return RANKERS[name].scores(x, seed, **fields)


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
        scores = fit_scores(name, params, tuning.train, shape, tuning.scale, seed)
        return validation_score(scores, tuning)

    sampler = make_sampler(seed, (stream_of(tuning.name),), budget.sampler)
    found = optuna.create_study(
        study_name=f"{study}-{RANKERS[name].version}", storage=storage, sampler=sampler,
        direction="maximize", load_if_exists=True,
    )  # fmt: skip
    return run_budget(found, objective, RANKERS[name].space, budget, f"val_{SELECTED_ON}")
