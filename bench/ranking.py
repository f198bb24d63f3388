"""Top-k ranking metrics for rating predictors.

For each test user with at least one relevant test rating (rating >= 4), every item the
user did not rate in training is scored; the k best form the recommendation list. Metrics
are averaged over those users.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

RELEVANT = 4


def top_k_unseen(scores: np.ndarray, seen: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores among items not `seen` (best first)."""
    scores = np.where(seen, -np.inf, scores)
    top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
    return top[np.argsort(-scores[top], kind="stable")]


def ranking_metrics(
    score_user: Callable[[int], np.ndarray],
    train: pd.DataFrame,
    test: pd.DataFrame,
    n_items: int,
    k: int = 10,
) -> dict[str, float]:
    """precision@k, recall@k and NDCG@k (binary relevance: test rating >= 4).

    `score_user(u)` returns predicted ratings for all n_items items of user code u.
    """
    relevant = test[test["rating"] >= RELEVANT].groupby("user")["item"].agg(set)
    seen_by_user = train.groupby("user")["item"].agg(list)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    precision, recall, ndcg = [], [], []
    for user, wanted in relevant.items():
        seen = np.zeros(n_items, dtype=bool)
        seen[seen_by_user.get(user, [])] = True
        recommended = top_k_unseen(score_user(user), seen, k)
        hits = np.array([item in wanted for item in recommended], dtype=float)
        precision.append(hits.sum() / k)
        recall.append(hits.sum() / len(wanted))
        ideal = discounts[: min(len(wanted), k)].sum()
        ndcg.append(float(hits @ discounts[: len(hits)]) / ideal)
    return {
        f"precision_at_{k}": float(np.mean(precision)),
        f"recall_at_{k}": float(np.mean(recall)),
        f"ndcg_at_{k}": float(np.mean(ndcg)),
    }
