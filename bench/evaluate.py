"""Rating metrics and statistics of learnt embedding tables.

Plain numpy on purpose: these run every epoch of every trial, where scikit-learn's and
pandas' input checks cost more than the arithmetic (tests pin both to those libraries).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_RATING, MAX_RATING = 1, 5
STATS = ("count", "mean", "std", "min", "25%", "50%", "75%", "max")  # pandas' describe()
STAT_NAMES = {"25%": "p25", "50%": "p50", "75%": "p75"}


def mae_rmse(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    error = np.asarray(y_pred, dtype="float64") - np.asarray(y_true, dtype="float64")
    return float(np.mean(np.abs(error))), float(np.sqrt(np.mean(error**2)))


def rating_metrics(y_true: np.ndarray, y_pred: np.ndarray, prefix: str) -> dict[str, float]:
    """MAE and RMSE of raw predictions, and of predictions rounded to 1..5 (as the post)."""
    mae, rmse = mae_rmse(y_true, y_pred)
    mae_rounded, rmse_rounded = mae_rmse(y_true, np.clip(np.round(y_pred), MIN_RATING, MAX_RATING))
    return {
        f"{prefix}_mae": mae,
        f"{prefix}_rmse": rmse,
        f"{prefix}_mae_rounded": mae_rounded,
        f"{prefix}_rmse_rounded": rmse_rounded,
    }


def embedding_stats(table: np.ndarray) -> pd.DataFrame:
    """describe() of each dimension (columns d0..), plus one column for the row L2 norms."""
    values = np.column_stack([table, np.linalg.norm(table, axis=1)]).astype("float64")
    quartiles = np.percentile(values, [25, 50, 75], axis=0)
    rows = [
        np.full(values.shape[1], float(len(values))),
        values.mean(axis=0),
        values.std(axis=0, ddof=1),
        values.min(axis=0),
        *quartiles,
        values.max(axis=0),
    ]
    columns = [f"d{j}" for j in range(table.shape[1])] + ["norm"]
    return pd.DataFrame(np.vstack(rows), index=list(STATS), columns=columns)


def embedding_metrics(name: str, stats: pd.DataFrame, table: np.ndarray) -> dict[str, float]:
    """Flat metrics such as `emb_item_d0_mean`, `emb_item_norm_max`, `emb_item_neg_share`."""
    flat = {
        f"emb_{name}_{column}_{STAT_NAMES.get(stat, stat)}": float(stats.at[stat, column])
        for column in stats.columns
        for stat in STATS[1:]
    }
    flat[f"emb_{name}_neg_share"] = float(np.mean(table < 0))
    return flat
