"""Non-learnt reference predictors, with a scikit-learn-like fit/predict API.

They answer "how much does a model add over the obvious?": the global mean rating, and
the global mean plus damped user and item offsets (Koren's baseline predictor).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


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

    name = "bias"

    def __init__(self, n_users: int, n_items: int, damping: float = 25.0):
        self.n_users, self.n_items, self.damping = n_users, n_items, damping

    def fit(self, train: pd.DataFrame) -> DampedBias:
        users, items = train["user"].to_numpy(), train["item"].to_numpy()
        ratings = train["rating"].to_numpy("float64")
        self.mean_ = float(ratings.mean())
        residual = ratings - self.mean_
        self.item_bias_ = np.bincount(items, residual, self.n_items) / (
            np.bincount(items, minlength=self.n_items) + self.damping
        )
        residual = residual - self.item_bias_[items]
        self.user_bias_ = np.bincount(users, residual, self.n_users) / (
            np.bincount(users, minlength=self.n_users) + self.damping
        )
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.mean_ + self.user_bias_[users] + self.item_bias_[items]
