"""A Bayesian factorisation machine peer (myFM's Gibbs sampler, the `bench` extra).

Rendle, Zhang & Koren (2019) found Bayesian MF, run properly, ahead of most published
neural rating models on MovieLens; untuned, it is the baseline a reviewer names first. Its
features are a user's one-hot, the items the user rated in the training part (SVD++-style
implicit feedback, each 1/sqrt(count)) and an item's one-hot, each group with hyperpriors
of its own. Its settings are fixed in advance, not chosen on any data (`SETTINGS`): the
sampler's hyperpriors take the place of the regularisation a tuned model searches for.

Predictions average the kept Gibbs samples. An FM whose features split into a user block
and an item block scores a pair as c_u + w_i + <a_u, v_i> per sample, so the fitted model
keeps the samples' c, w and the factors stacked side by side, and a whole score grid is one
matrix product (`BayesianFM.scores`); it equals myFM's own `predict` (tested).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from bench import verbosity
from bench.errors import BenchError

INSTALL = "pip install 'recsys-sweep-bench[bench]'"
NAME = "bfm"  # its name in --peers and in the report
# fixed before any data were seen: rank 10 and 200 sweeps (the setting of the and
# Rendle et al.'s Bayesian MF runs), the first 20 discarded as burn-in
SETTINGS: dict[str, Any] = {"rank": 10, "n_iter": 200, "burn_in": 20, "implicit": True}
ORIGIN = "fixed in advance: rank 10, 200 Gibbs sweeps (20 burn-in), implicit features"
PAIRS_PER_BLOCK = 8192  # pairs scored at once: their gathered factors stay ~100 MB


def require_myfm() -> None:
    """One error line if myFM (the `bench` extra) is missing."""
    if importlib.util.find_spec("myfm") is None:
        raise BenchError(f"--peers bfm needs myfm, which is not installed; run {INSTALL}")


def user_block(train: pd.DataFrame, n_users: int, n_items: int, implicit: bool) -> sp.csr_matrix:
    """Each user's features: its one-hot, then (implicit) its rated items / sqrt(count)."""
    one_hot = sp.identity(n_users, format="csr", dtype="float64")
    if not implicit:
        return one_hot
    users, items = train["user"].to_numpy(), train["item"].to_numpy()
    rated = sp.csr_matrix((np.ones(len(users)), (users, items)), shape=(n_users, n_items))
    rated.data[:] = 1.0  # a pair rated twice counts once
    counts = np.asarray(rated.sum(axis=1)).ravel()
    rated = sp.diags(1.0 / np.sqrt(np.maximum(counts, 1.0))) @ rated
    return sp.hstack([one_hot, rated], format="csr")


@dataclass
class BayesianFM:
    """A fitted BFM as per-sample terms: score(u, i) = mean_s(c_u + w_i + <a_u, v_i>)."""

    user_const: np.ndarray  # (n_users,): mean over samples of w0 + the user block's terms
    item_weight: np.ndarray  # (n_items,): mean over samples of the item's linear weight
    user_factors: np.ndarray  # (n_users, samples x rank): each sample's a_u, side by side
    item_factors: np.ndarray  # (n_items, samples x rank), divided by the sample count
    scale: tuple[float, float]

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Ratings of (user, item) code pairs, clipped to the scale."""
        users, items = np.asarray(users, "int64"), np.asarray(items, "int64")
        out = np.empty(len(users), dtype="float64")
        for start in range(0, len(users), PAIRS_PER_BLOCK):
            u, i = users[start : start + PAIRS_PER_BLOCK], items[start : start + PAIRS_PER_BLOCK]
            dot = np.einsum("nk,nk->n", self.user_factors[u], self.item_factors[i])
            out[start : start + len(u)] = self.user_const[u] + self.item_weight[i] + dot
        return np.clip(out, *self.scale)

    def scores(self) -> np.ndarray:
        """Every (user, item) pair's score, unclipped (ranking keeps its order)."""
        grid = self.user_factors @ self.item_factors.T
        return grid + self.user_const[:, None] + self.item_weight[None, :]


def _sample_terms(fm, users: sp.csr_matrix, n_user_features: int):
    """One Gibbs sample's c (per user), item weights, a (per user) and item factors."""
    w, v = np.asarray(fm.w), np.asarray(fm.V)
    user_v, item_v = v[:n_user_features], v[n_user_features:]
    a = users @ user_v
    squares = users.multiply(users) @ (user_v**2)
    const = fm.w0 + users @ w[:n_user_features] + 0.5 * ((a**2).sum(1) - squares.sum(1))
    return const, w[n_user_features:], a, item_v


def relation_blocks(users: np.ndarray, items: np.ndarray, user_features, n_items: int):
    """myFM's two relation blocks of (user, item) pairs: the user's features, the item's."""
    import myfm

    return [
        myfm.RelationBlock(users.astype("int64"), user_features),
        myfm.RelationBlock(items.astype("int64"), sp.identity(n_items, format="csr")),
    ]


def fit(train: pd.DataFrame, n_users: int, n_items: int, scale, seed: int, **settings):
    """A `BayesianFM` Gibbs-sampled on `train` (codes 0..n-1) with `settings` (default
    `SETTINGS`)."""
    model, features = fit_sampler(train, n_users, n_items, seed, **settings)
    return _as_terms(model.predictor_.samples, features, scale)


def fit_sampler(train: pd.DataFrame, n_users: int, n_items: int, seed: int, **settings):
    """myFM's fitted regressor and the user block's feature matrix it was fitted with."""
    import myfm  # the optional `bench` extra: imported only when --peers asks for it

    cfg = {**SETTINGS, **settings}
    features = user_block(train, n_users, n_items, cfg["implicit"])
    users, items = train["user"].to_numpy(), train["item"].to_numpy()
    blocks = relation_blocks(users, items, features, n_items)
    groups = [n_users] + ([n_items] if cfg["implicit"] else []) + [n_items]
    model = myfm.MyFMRegressor(rank=cfg["rank"], random_seed=seed)
    with verbosity.quiet_progress():  # myFM's tqdm bar, one line per 10 sweeps
        model.fit(
            None, train["rating"].to_numpy("float64"), X_rel=blocks, n_iter=cfg["n_iter"],
            n_kept_samples=cfg["n_iter"] - cfg["burn_in"], group_shapes=groups,
        )  # fmt: skip
    return model, features


def _as_terms(samples, features: sp.csr_matrix, scale) -> BayesianFM:
    """The kept samples' terms, averaged (constants, weights) or stacked (factors)."""
    terms = [_sample_terms(fm, features, features.shape[1]) for fm in samples]
    consts, weights, user_vs, item_vs = zip(*terms, strict=True)
    return BayesianFM(
        user_const=np.mean(consts, axis=0),
        item_weight=np.mean(weights, axis=0),
        user_factors=np.hstack(user_vs),
        item_factors=np.hstack(item_vs) / len(samples),
        scale=(float(scale[0]), float(scale[1])),
    )
