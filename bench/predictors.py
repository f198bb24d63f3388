"""Fit one predictor (a learnt config, a baseline or a peer) on a fold and score it.

Learnt models and peers predict through `with_fallback`: a pair whose user or item has no
rating in the fold's training part gets the global mean plus the known side's bias.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from bench import peers
from bench.baselines import BiasALS, GlobalMean, Popularity, tune_bias_als
from bench.config import TrainOptions
from bench.data import Split
from bench.metrics import RANKING, ranking_ks, rating_metrics
from bench.ranking import ranking_metrics
from bench.report import FoldResult
from bench.train import predict_codes, train

BASELINES = ("global_mean", "bias", "popularity")
BIAS_VALID_FRACTION = 0.1  # the bias baseline's regularisation is chosen on this part


def _score_grid(predict, n_users: int, n_items: int) -> np.ndarray:
    users = np.repeat(np.arange(n_users, dtype="int32"), n_items)
    items = np.tile(np.arange(n_items, dtype="int32"), n_users)
    return predict(users, items).reshape(n_users, n_items)


def _fit_baseline(name: str, split: Split, seed: int):
    """Global mean; popularity (ranks by training count); BaselineOnly-style ALS biases with
    their regularisation chosen on a validation part of the fold's training part."""
    if name == "bias":
        fit, valid = train_test_split(split.train, test_size=BIAS_VALID_FRACTION, random_state=seed)
        return tune_bias_als(fit, valid, split.n_users, split.n_items)
    return (GlobalMean() if name == "global_mean" else Popularity()).fit(split.train)


def known_pairs(split: Split):
    """known(users, items): whether both ids have a rating in the split's training part."""
    seen_users = np.bincount(split.train["user"], minlength=split.n_users) > 0
    seen_items = np.bincount(split.train["item"], minlength=split.n_items) > 0
    return lambda users, items: seen_users[users] & seen_items[items]


def with_fallback(predict, split: Split):
    """`predict` where both ids have a training rating, else the fallback: the global mean
    plus the known side's bias (BaselineOnly-style ALS on the fold's training part), never a
    learnt model's untrained embedding rows."""
    known = known_pairs(split)
    base = BiasALS(split.n_users, split.n_items, clip=(split.scale.low, split.scale.high))
    base.fit(split.train)

    def predicted(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        users, items = np.asarray(users), np.asarray(items)
        out = base.predict(users, items).astype("float64")
        mask = known(users, items)
        if mask.any():
            out[mask] = predict(users[mask], items[mask])
        return out

    return predicted


def _fit_peer(spec: peers.PeerSpec, split: Split):
    scale = (split.scale.low, split.scale.high)
    peer, seconds = peers.fit_and_time(spec.name, spec.params, split.train, scale)
    predict = with_fallback(peer.predict, split)
    grid = (
        (lambda: _score_grid(predict, split.n_users, split.n_items))
        if peer.ranks_all_pairs
        else None
    )
    return predict, grid, seconds


def _fit_predictor(predictor: Any, split: Split, seed: int):
    """Fit a config or a baseline; returns (predict, ranking scores of all pairs, result)."""
    if isinstance(predictor, peers.PeerSpec):
        predict, grid, _ = _fit_peer(predictor, split)
        return predict, grid, None
    if isinstance(predictor, str):
        baseline = _fit_baseline(predictor, split, seed)
        if isinstance(baseline, Popularity):
            counts = baseline.scores(split.n_items)
            return baseline.predict, lambda: np.tile(counts, (split.n_users, 1)), None
        grid = lambda: _score_grid(baseline.predict, split.n_users, split.n_items)  # noqa: E731
        return baseline.predict, grid, None
    result = train(predictor, split, TrainOptions(seed=seed))
    model = lambda users, items: predict_codes(result.model, users, items)  # noqa: E731
    predict = with_fallback(model, split)
    return predict, lambda: _score_grid(predict, split.n_users, split.n_items), result


def evaluate(name: str, predictor: Any, split: Split, seed: int) -> FoldResult:
    """Fit `predictor` (a config or a baseline name) on the split; score test and ranking."""
    start = time.perf_counter()
    predict, score_grid, result = _fit_predictor(predictor, split, seed)
    fit_seconds = result.fit_seconds if result else time.perf_counter() - start
    test = split.test
    users, items = test["user"].to_numpy(), test["item"].to_numpy()
    y_pred = predict(users, items)
    metrics = rating_metrics(test["rating"].to_numpy(), y_pred, "t", split.scale)
    metrics = {key.removeprefix("t_"): value for key, value in metrics.items()}
    if score_grid is None:  # no vectorised scores for every pair: ranking metrics left empty
        metrics.update({m.name: float("nan") for m in RANKING})
    else:
        scores = score_grid()
        for k in ranking_ks():
            metrics.update(
                ranking_metrics(
                    lambda u: scores[u], split.train, test, split.n_items, k, scale=split.scale
                )
            )
    metrics["fit_seconds"] = fit_seconds
    metrics["n_fallback"] = int(len(test) - known_pairs(split)(users, items).sum())
    if result is None:
        return FoldResult(name, split.name, metrics)
    return FoldResult(name, split.name, metrics, result.history, result.embeddings, result.model)
