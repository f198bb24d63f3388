"""Top-k ranking metrics for rating predictors.

For each test user with at least one relevant test rating (in the top quarter of the rating
scale: >= 4 on MovieLens' 1..5 and 0.5..5, >= 8 on 1..10) the candidate
items are scored and the k best form the recommendation list; users without one are
skipped and counted. Metrics are averaged over the ranked users.

Candidates ("protocols"):
- "unrated" (default; RecBole's full sort): every item the user did not rate in training.
- "known" (LensKit's): those of them that have at least one training rating, so items
  the model never saw are not ranked (a relevant test item among them is a sure miss).

Equal scores are broken by a seeded random permutation of the item codes, the same on
every machine, so a constant predictor gets a random (not an id-ordered) list and two
runs rank identically.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from bench.metrics import RatingScale

CANDIDATES = ("unrated", "known")
FIVE_STARS = RatingScale()  # MovieLens 100k's 1..5


def tiebreak_ranks(n_items: int, seed: int = 0) -> np.ndarray:
    """Per-item tie-break rank (0 = first among equal scores): the position of each item
    code in `np.random.default_rng(seed).permutation(n_items)`."""
    ranks = np.empty(n_items, dtype="int64")
    ranks[np.random.default_rng(seed).permutation(n_items)] = np.arange(n_items)
    return ranks


def top_k_unseen(
    scores: np.ndarray, seen: np.ndarray, k: int, tiebreak: np.ndarray | None = None
) -> np.ndarray:
    """Indices of the k highest scores among items not `seen` (best first).

    Equal scores go in ascending `tiebreak` rank (per item; None = by item code). Fewer
    than k items come back when fewer are unseen; NaN scores rank last.
    """
    candidates = np.flatnonzero(~np.asarray(seen, dtype=bool))
    second = candidates if tiebreak is None else np.asarray(tiebreak)[candidates]
    order = np.lexsort((second, -np.asarray(scores, dtype="float64")[candidates]))
    return candidates[order[:k]]


def _excluded(train: pd.DataFrame, n_items: int, candidates: str) -> Callable[[int], np.ndarray]:
    """For a user code, the boolean mask of items that are not candidates."""
    if candidates not in CANDIDATES:
        raise ValueError(f"unknown candidates {candidates!r}; choose one of {CANDIDATES}")
    never_rated = np.bincount(train["item"].to_numpy(), minlength=n_items)[:n_items] == 0
    base = never_rated if candidates == "known" else np.zeros(n_items, dtype=bool)
    rated = train.groupby("user")["item"].agg(list)

    def excluded(user: int) -> np.ndarray:
        mask = base.copy()
        mask[rated.get(user, [])] = True
        return mask

    return excluded


def _list_metrics(recommended: np.ndarray, wanted: np.ndarray, k: int) -> tuple[float, ...]:
    """precision@k, recall@k, NDCG@k of one list (binary relevance)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    hits = np.isin(recommended, wanted).astype(float)
    ideal = discounts[: min(len(wanted), k)].sum()
    return hits.sum() / k, hits.sum() / len(wanted), float(hits @ discounts[: len(hits)]) / ideal


def ranking_metrics(
    score_user: Callable[[int], np.ndarray],
    train: pd.DataFrame,
    test: pd.DataFrame,
    n_items: int,
    k: int = 10,
    *,
    candidates: str = "unrated",
    seed: int = 0,
    scale: RatingScale = FIVE_STARS,
) -> dict[str, float]:
    """precision@k, recall@k and NDCG@k (binary relevance: test rating >= scale.relevant),
    averaged over the test users with a relevant test item, plus the counts `n_users_ranked` and
    `n_users_skipped` (test users without one) and `rec_median_train_count`: the median
    training-rating count of the recommended items, a popularity-bias sanity figure.

    `score_user(u)` returns predicted scores for all n_items items of user code u;
    `candidates` is "unrated" or "known" (module docstring); `seed` fixes the tie-break.
    """
    excluded = _excluded(train, n_items, candidates)
    tiebreak = tiebreak_ranks(n_items, seed)
    train_counts = np.bincount(train["item"].to_numpy(), minlength=n_items)
    relevant = test[test["rating"] >= scale.relevant].groupby("user")["item"].agg(np.unique)
    rows, lists = [], []
    for user, wanted in relevant.sort_index().items():
        recommended = top_k_unseen(score_user(user), excluded(user), k, tiebreak)
        rows.append(_list_metrics(recommended, wanted, k))
        lists.append(recommended)
    means = np.mean(rows, axis=0) if rows else np.full(3, np.nan)
    shown = np.concatenate(lists) if lists else np.zeros(0, dtype=int)
    return {
        f"precision_at_{k}": float(means[0]),
        f"recall_at_{k}": float(means[1]),
        f"ndcg_at_{k}": float(means[2]),
        "n_users_ranked": len(rows),
        "n_users_skipped": int(test["user"].nunique()) - len(rows),
        "rec_median_train_count": float(np.median(train_counts[shown])) if len(shown) else np.nan,
    }


def grid_metrics(
    scores: np.ndarray,
    excluded: np.ndarray,
    relevant: np.ndarray,
    k: int = 10,
    tiebreak: np.ndarray | None = None,
) -> dict[str, float]:
    """precision@k, recall@k and NDCG@k of many users at once, from their score rows
    (users x items): `excluded` items are never listed, `relevant` marks each row's relevant
    items (at least one per row). The whole-grid form of `ranking_metrics`, with its lists:
    equal scores in `tiebreak` order (default: its seeded permutation, seed 0), fewer than k
    items where fewer are allowed; cheap enough for every epoch (partitions, no full sort)."""
    wanted = relevant.sum(axis=1)
    if (wanted == 0).any():
        raise ValueError("every row needs a relevant item")
    n_items = scores.shape[1]
    k_listed = min(k, n_items)
    tiebreak = tiebreak_ranks(n_items) if tiebreak is None else np.asarray(tiebreak)
    scores = np.where(excluded, -np.inf, np.asarray(scores, dtype="float64"))
    top = _top_k(scores, k_listed, tiebreak)
    listed = np.isfinite(np.take_along_axis(scores, top, axis=1))  # allowed items only
    hits = np.take_along_axis(relevant, top, axis=1) & listed
    discounts = 1.0 / np.log2(np.arange(2, k_listed + 2))
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))[np.minimum(wanted, k) - 1]
    return {
        f"precision_at_{k}": float(np.mean(hits.sum(axis=1) / k)),
        f"recall_at_{k}": float(np.mean(hits.sum(axis=1) / wanted)),
        f"ndcg_at_{k}": float(np.mean(hits @ discounts / ideal)),
    }


def _top_k(scores: np.ndarray, k: int, tiebreak: np.ndarray) -> np.ndarray:
    """Each row's k best item codes, best first, equal scores in ascending `tiebreak`: the
    k-th best score found by a partition; the items above it and, of those equal to it,
    the first in tie-break order make the list, then sorted."""
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
    last = scores.shape[1]  # after every tie-break rank
    order = np.where(scores > kth, -1, np.where(scores == kth, tiebreak, last))
    chosen = np.argpartition(order, k - 1, axis=1)[:, :k]
    keys = (tiebreak[chosen], -np.take_along_axis(scores, chosen, axis=1))
    return np.take_along_axis(chosen, np.lexsort(keys, axis=-1), axis=1)
