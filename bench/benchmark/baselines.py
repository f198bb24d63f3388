"""Non-learnt reference predictors, with a scikit-learn-like fit/predict API.

They answer "how much does a model add over the obvious?": the global mean rating, the
global mean plus user and item offsets (damped means, or Surprise's ALS baseline), and
item popularity for the ranking metrics.

Users and items are int codes 0..n-1; a code with no training rating gets offset 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np
import pandas as pd

from bench.training.biases import BiasALS, columns, shrunk_means

# (reg_u, reg_i) pairs for `tune_bias_als`: Surprise's defaults (15, 10) and the smaller
# values that validation on MovieLens-100k folds u1 and u3 preferred (about (3..5, 2..3)).
BIAS_ALS_GRID = tuple(product((2.0, 3.0, 5.0, 10.0, 15.0, 25.0), (1.0, 2.0, 3.0, 5.0, 10.0, 20.0)))


class GlobalMean:
    name = "global_mean"

    def fit(self, train: pd.DataFrame) -> GlobalMean:
        self.mean_ = float(train["rating"].mean())
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.full(len(users), self.mean_, dtype="float64")


class DampedBias:
    """mu + b_u + b_i, each offset a mean of residuals shrunk towards 0 by `damping`.

    b_i = sum(r - mu) / (n_i + damping); b_u = sum(r - mu - b_i) / (n_u + damping).
    """

    name = "damped_bias"

    def __init__(self, n_users: int, n_items: int, damping: float = 25.0):
        self.n_users, self.n_items, self.damping = n_users, n_items, damping

    def fit(self, train: pd.DataFrame) -> DampedBias:
        users, items, ratings = columns(train)
        self.mean_ = float(ratings.mean())
        residual = ratings - self.mean_
        self.item_bias_ = shrunk_means(items, residual, self.n_items, self.damping)
        residual = residual - self.item_bias_[items]
        self.user_bias_ = shrunk_means(users, residual, self.n_users, self.damping)
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.mean_ + self.user_bias_[users] + self.item_bias_[items]


def _rmse(model, frame: pd.DataFrame) -> float:
    users, items, ratings = columns(frame)
    return float(np.sqrt(np.mean((model.predict(users, items) - ratings) ** 2)))


def tune_bias_als(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    n_users: int,
    n_items: int,
    grid: Sequence[tuple[float, float]] = BIAS_ALS_GRID,
) -> BiasALS:
    """BiasALS with the (reg_u, reg_i) of `grid` that has the lowest validation RMSE,
    refitted on train + valid so the tuned baseline sees as much data as a tuned model.

    The choice is kept on the result: `reg_u_`, `reg_i_`, `valid_rmse_` (of the chosen
    pair) and `grid_rmse_` (every pair's validation RMSE); ties go to the earlier pair.
    """
    if len(valid) == 0 or len(grid) == 0:
        raise ValueError("tuning BiasALS needs validation ratings and a non-empty grid")
    scores = {
        (reg_u, reg_i): _rmse(BiasALS(n_users, n_items, reg_u, reg_i).fit(train), valid)
        for reg_u, reg_i in grid
    }
    reg_u, reg_i = min(scores, key=scores.get)
    model = BiasALS(n_users, n_items, reg_u, reg_i).fit(pd.concat([train, valid]))
    model.reg_u_, model.reg_i_, model.valid_rmse_ = reg_u, reg_i, scores[(reg_u, reg_i)]
    model.grid_rmse_ = scores
    return model


class Popularity:
    """Ranks items by their number of training ratings (ties: the ranking's tie-break).

    It has no rating model: `predict` returns NaN, so that its rating metrics read "not
    applicable" rather than the global mean's; use `scores` for ranking.
    """

    name = "popularity"

    def fit(self, train: pd.DataFrame) -> Popularity:
        self.counts_ = np.bincount(train["item"].to_numpy())
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """No rating: NaN for every pair."""
        return np.full(len(users), np.nan)

    def scores(self, n_items: int) -> np.ndarray:
        """Training-rating count of each item code 0..n_items-1, as floats."""
        counts = np.zeros(n_items)
        shown = min(n_items, len(self.counts_))
        counts[:shown] = self.counts_[:shown]
        return counts
