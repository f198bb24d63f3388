"""The one predictor seam: learnt configs, baselines and peers, each fitted on a fold and scored.

Every predictor the benchmark runs implements `Predictor` (its MLflow params, and `fit` on a
split into a `Fitted`), so `evaluate` never asks what it holds. A baseline is one class and one
line in `BASELINES`; a learnt config is any architecture's config; a peer is a `PeerSpec`.
Learnt models and peers predict through `with_fallback`: a pair whose user or item has no
training rating in the fold gets the global mean plus the known side's bias."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from sklearn.model_selection import train_test_split

import bench.benchmark.bfm as bfm
import bench.benchmark.ensembles as ensembles
import bench.benchmark.peers as peers
import bench.benchmark.rankers as rankers
from bench.archs import config_params
from bench.benchmark.baselines import BiasALS, GlobalMean, Popularity, tune_bias_als
from bench.benchmark.results import FoldResult
from bench.data import Split
from bench.metrics import RANKING, ranking_ks, rating_metrics
from bench.metrics.ranking import ranking_metrics
from bench.training.options import TrainOptions
from bench.training.ranking import ranked_grid, rated_codes, trained_items
from bench.training.tasks import RankedConfig
from bench.training.train import TrainResult, predict_codes, train

Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]
BIAS_VALID_FRACTION = 0.1  # the bias baseline's regularisation is chosen on this part


@dataclass
class Fitted:
    """A predictor fitted on one fold: its predictions, and what a learnt one leaves."""

    predict: Predict  # ratings of (user code, item code) pairs
    score_all: Callable[[], np.ndarray] | None  # every pair's score, for ranking; None: none
    training: TrainResult | None = None  # history, embeddings and Keras model of a learnt one
    seconds: float | None = None  # fitting time, when the predictor measures it itself


class Predictor(Protocol):
    """What the benchmark fits on a fold and scores on its test part."""

    loss: str | None  # the training loss that names its curves; None: no curves

    def params(self) -> dict[str, Any]:
        """What the fold's MLflow run records as its params."""

    def fit(self, split: Split, seed: int) -> Fitted:
        """Fit on the split's training part."""


GRID_PAIRS = 1 << 17  # pairs scored per call: a factor model's gathers stay ~100 MB


def _score_grid(predict: Predict, n_users: int, n_items: int) -> np.ndarray:
    """Every (user, item) score, a block of users at a time (all 1.6M pairs of
    MovieLens-100k at once took 4.5 GB for a 100-factor SVD's gathered vectors)."""
    items = np.arange(n_items, dtype="int32")
    rows = max(1, GRID_PAIRS // max(n_items, 1))
    grid = np.empty((n_users, n_items), dtype="float64")
    for start in range(0, n_users, rows):
        users = np.arange(start, min(start + rows, n_users), dtype="int32")
        scores = predict(np.repeat(users, n_items), np.tile(items, len(users)))
        grid[start : start + len(users)] = np.asarray(scores).reshape(len(users), n_items)
    return grid


def _grid_of(predict: Predict, split: Split) -> Callable[[], np.ndarray]:
    return lambda: _score_grid(predict, split.n_users, split.n_items)


def known_pairs(split: Split):
    """known(users, items): whether both ids have a rating in the split's training part."""
    seen_users = rated_codes(split.train, "user", split.n_users)
    seen_items = rated_codes(split.train, "item", split.n_items)
    return lambda users, items: seen_users[users] & seen_items[items]


def with_fallback(predict: Predict, split: Split) -> Predict:
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


def _no_rating(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """A ranker's rating predictions: none (NaN: its MAE and RMSE are not applicable)."""
    return np.full(len(users), np.nan)


@dataclass(frozen=True)
class LearntConfig:
    """Any registered architecture's config, trained with the harness's engine."""

    config: Any

    @property
    def loss(self) -> str:
        return self.config.loss

    def params(self) -> dict[str, Any]:
        return config_params(self.config)

    def fit(self, split: Split, seed: int) -> Fitted:
        return MEMBERS.fit(self.config, split, seed)  # an ensemble's member: the same fit


def _fit_learnt(config: Any, split: Split, seed: int) -> Fitted:
    """`config` trained on the split's training part, predicting through the fallback."""
    result = train(config, split, TrainOptions(seed=seed))
    predict = with_fallback(lambda users, items: predict_codes(result.model, users, items), split)
    return Fitted(predict, _grid_of(predict, split), result, result.fit_seconds)


@dataclass(frozen=True)
class RankedLearnt(LearntConfig):
    """An architecture's config trained for ranking (`config`: a `RankedConfig`, its loss
    and params those of its setup too): it scores every pair by its logit and predicts no
    rating (NaN)."""

    def fit(self, split: Split, seed: int) -> Fitted:
        options = TrainOptions(seed=seed, ranking=self.config.setup)
        untested = replace(split, test=split.test.iloc[:0])  # `evaluate` ranks the test part
        result = train(self.config.config, untested, options)
        users = np.arange(split.n_users, dtype="int32")
        trained = trained_items(split.train, split.n_items)  # the others: ranked last
        grid = lambda: ranked_grid(result.model, users, trained)  # noqa: E731
        return Fitted(_no_rating, lambda: grid().astype("float64"), result, result.fit_seconds)


@dataclass(frozen=True)
class SpecPeer:
    """A peer given by a `PeerSpec` (its name and params), which are its logged params."""

    spec: peers.PeerSpec
    loss = None

    def params(self) -> dict[str, Any]:
        return config_params(self.spec)


@dataclass(frozen=True)
class Peer(SpecPeer):
    """A scikit-surprise peer (`bench.benchmark.peers`) with its tuned params."""

    def fit(self, split: Split, seed: int) -> Fitted:
        scale = (split.scale.low, split.scale.high)
        peer, seconds = peers.fit_and_time(self.spec.name, self.spec.params, split.train, scale)
        predict = with_fallback(peer.predict, split)
        return Fitted(predict, _grid_of(predict, split) if peer.ranks_all_pairs else None)


@dataclass(frozen=True)
class RankingPeer(SpecPeer):
    """A ranking peer (`bench.benchmark.rankers`: EASE, ItemKNN, implicit's ALS and BPR)
    with its tuned params: it scores every pair for ranking and predicts no rating (NaN)."""

    def fit(self, split: Split, seed: int) -> Fitted:
        shape = (split.n_users, split.n_items)
        scores = rankers.fit_scores(
            self.spec.name, self.spec.params, split.train, shape, split.scale, seed
        )
        return Fitted(_no_rating, lambda: scores)


@dataclass(frozen=True)
class BayesianPeer(SpecPeer):
    """myFM's Bayesian factorisation machine (`bench.benchmark.bfm`): ratings clipped to the
    scale, the benchmark's fallback for ids without a training rating, and its own score
    grid (one matrix product) for ranking."""

    def fit(self, split: Split, seed: int) -> Fitted:
        scale = (split.scale.low, split.scale.high)
        model = bfm.fit(split.train, split.n_users, split.n_items, scale, seed, **self.spec.params)
        predict = with_fallback(model.predict, split)
        return Fitted(predict, lambda: _with_fallback_grid(model.scores(), predict, split))


def _with_fallback_grid(grid: np.ndarray, predict: Predict, split: Split) -> np.ndarray:
    """`grid` with the rows of users and columns of items that have no training rating
    scored by `predict` (the fallback), as `_score_grid` of a fallback predictor would."""
    known = known_pairs(split)(np.arange(split.n_users)[:, None], np.arange(split.n_items))
    users, items = np.nonzero(~known)
    grid[users, items] = predict(users, items)
    return grid


class MemberFits:
    """The learnt configs fitted on one split, kept while the benchmark is on that fold: a
    fold's architecture rows and its ensembles (each and `all-ens`) share their fits."""

    def __init__(self) -> None:
        self._fold: tuple | None = None
        self._fits: dict[tuple, Fitted] = {}

    def fit(self, config: Any, split: Split, seed: int) -> Fitted:
        fold = (split.name, split.data_sha256, seed)
        if fold != self._fold:
            self._fold, self._fits = fold, {}  # a new fold: the last one's models go
        key = (split.valid_fraction, len(split.train), repr(config))
        if key not in self._fits:
            self._fits[key] = _fit_learnt(config, split, seed)
        return self._fits[key]


MEMBERS = MemberFits()


class Ensemble:
    """An ensemble of tuned configs (`bench.benchmark.ensembles`): weights chosen on the
    fold's validation part, members refitted on its training part; the weights it chose
    are among its params once fitted."""

    loss = None

    def __init__(self, spec: ensembles.EnsembleSpec):
        self.spec = spec
        self.weights: np.ndarray | None = None

    def params(self) -> dict[str, Any]:
        weights = self.weights if self.weights is not None else [np.nan] * len(self.spec.members)
        chosen = [f"{label}:{w:.2f}" for label, w in zip(self.spec.labels, weights, strict=True)]
        selection = f"greedy, {ensembles.ROUNDS} rounds, val {self.spec.metric}"
        return {"ensemble": self.spec.name, "members": ",".join(chosen), "selection": selection}

    def fit(self, split: Split, seed: int) -> Fitted:
        tuning = ensembles.tuning_part(split, seed, self.spec.valid_fraction)
        users, items = tuning.valid["user"].to_numpy(), tuning.valid["item"].to_numpy()
        configs = [config for _, config in self.spec.members]
        valid = np.stack([MEMBERS.fit(c, tuning, seed).predict(users, items) for c in configs])
        self.weights = ensembles.fit_weights(valid, tuning.valid, self.spec.metric)
        picked = [(w, c) for w, c in zip(self.weights, configs, strict=True) if w > 0]
        kept = [(w, MEMBERS.fit(c, split, seed)) for w, c in picked]
        predict = lambda u, i: sum(w * member.predict(u, i) for w, member in kept)  # noqa: E731
        return Fitted(predict, lambda: sum(w * member.score_all() for w, member in kept))


class _Baseline:
    """A non-learnt reference: its name is its only param."""

    name = ""
    loss = None

    def params(self) -> dict[str, Any]:
        return {"baseline": self.name}


class GlobalMeanBaseline(_Baseline):
    """Every pair gets the training part's mean rating."""

    name = "global_mean"

    def fit(self, split: Split, seed: int) -> Fitted:
        model = GlobalMean().fit(split.train)
        return Fitted(model.predict, _grid_of(model.predict, split))


class BiasBaseline(_Baseline):
    """BaselineOnly-style ALS biases, their regularisation chosen on a validation part of the
    fold's training part."""

    name = "bias"

    def fit(self, split: Split, seed: int) -> Fitted:
        fit, valid = train_test_split(split.train, test_size=BIAS_VALID_FRACTION, random_state=seed)
        model = tune_bias_als(fit, valid, split.n_users, split.n_items)
        return Fitted(model.predict, _grid_of(model.predict, split))


class PopularityBaseline(_Baseline):
    """Ranks items by their training count; it predicts no rating (its MAE and RMSE are NaN,
    shown as not applicable)."""

    name = "popularity"

    def fit(self, split: Split, seed: int) -> Fitted:
        model = Popularity().fit(split.train)
        counts = model.scores(split.n_items)
        return Fitted(model.predict, lambda: np.tile(counts, (split.n_users, 1)))


BASELINES: dict[str, type[_Baseline]] = {
    b.name: b for b in (GlobalMeanBaseline, BiasBaseline, PopularityBaseline)
}


def as_predictor(entry: Any) -> Predictor:
    """A job's entry as a predictor: a baseline name, a peer's spec, or a learnt config."""
    if isinstance(entry, str):
        return BASELINES[entry]()
    if isinstance(entry, ensembles.EnsembleSpec):
        return Ensemble(entry)
    if isinstance(entry, RankedConfig):
        return RankedLearnt(entry)
    if isinstance(entry, peers.PeerSpec):
        if entry.name == bfm.NAME:
            return BayesianPeer(entry)
        return RankingPeer(entry) if entry.name in rankers.RANKERS else Peer(entry)
    return LearntConfig(entry)


def _ranking(score_all: Callable[[], np.ndarray] | None, split: Split) -> dict[str, float]:
    if score_all is None:  # no vectorised scores for every pair: ranking metrics left empty
        return {m.name: float("nan") for m in RANKING}
    scores, metrics = score_all(), {}
    for k in ranking_ks():
        metrics.update(
            ranking_metrics(
                lambda u: scores[u], split.train, split.test, split.n_items, k, scale=split.scale
            )
        )
    return metrics


def evaluate(name: str, predictor: Predictor, split: Split, seed: int) -> FoldResult:
    """Fit `predictor` on the split's training part; score its test part and the ranking."""
    start = time.perf_counter()
    fitted = predictor.fit(split, seed)
    seconds = fitted.seconds if fitted.seconds is not None else time.perf_counter() - start
    test = split.test
    users, items = test["user"].to_numpy(), test["item"].to_numpy()
    y_pred = fitted.predict(users, items)
    metrics = rating_metrics(test["rating"].to_numpy(), y_pred, "", split.scale)
    metrics.update(_ranking(fitted.score_all, split))
    metrics["fit_seconds"] = seconds
    metrics["n_fallback"] = int(len(test) - known_pairs(split)(users, items).sum())
    result = fitted.training
    if result is None:
        return FoldResult(name, split.name, metrics)
    return FoldResult(name, split.name, metrics, result.history, result.embeddings, result.model)
