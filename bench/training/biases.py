"""The global mean plus user and item offsets, fitted as scikit-surprise's BaselineOnly
(ALS): the benchmark's `bias` baseline, and the fallback of every model for an id without
training ratings (the benchmark's, and the served champion's, so that both predict alike).

Users and items are int codes 0..n-1; a code with no training rating gets offset 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RATING_SCALE = (1.0, 5.0)


def columns(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        frame["user"].to_numpy(),
        frame["item"].to_numpy(),
        frame["rating"].to_numpy("float64"),
    )


def shrunk_means(codes: np.ndarray, residual: np.ndarray, n: int, reg: float) -> np.ndarray:
    """Per-code sum(residual) / (count + reg); 0 for codes with no rating."""
    totals = np.bincount(codes, residual, n)
    denominators = np.bincount(codes, minlength=n) + reg
    return np.divide(totals, denominators, out=np.zeros(n), where=denominators > 0)


class BiasALS:
    """mu + b_u + b_i fitted as scikit-surprise's BaselineOnly (method "als") does.

    Each of `n_epochs` rounds sets, as Surprise's `baseline_als` does, items first:
    b_i = sum(r - mu - b_u) / (reg_i + n_i), then b_u = sum(r - mu - b_i) / (reg_u + n_u).
    Predictions are clipped to `clip` (Surprise clips to the rating scale, 1..5 here);
    None leaves them unclipped.
    """

    name = "bias"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        reg_u: float = 15.0,
        reg_i: float = 10.0,
        n_epochs: int = 10,
        clip: tuple[float, float] | None = RATING_SCALE,
    ):
        self.n_users, self.n_items = n_users, n_items
        self.reg_u, self.reg_i, self.n_epochs, self.clip = reg_u, reg_i, n_epochs, clip

    def fit(self, train: pd.DataFrame) -> BiasALS:
        users, items, ratings = columns(train)
        self.mean_ = float(ratings.mean())
        residual = ratings - self.mean_
        self.user_bias_ = np.zeros(self.n_users)
        self.item_bias_ = np.zeros(self.n_items)
        for _ in range(self.n_epochs):
            self.item_bias_ = shrunk_means(
                items, residual - self.user_bias_[users], self.n_items, self.reg_i
            )
            self.user_bias_ = shrunk_means(
                users, residual - self.item_bias_[items], self.n_users, self.reg_u
            )
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        estimate = self.mean_ + self.user_bias_[users] + self.item_bias_[items]
        return estimate if self.clip is None else np.clip(estimate, *self.clip)
