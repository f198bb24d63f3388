"""Rating metrics and statistics of learnt embedding tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, root_mean_squared_error

MIN_RATING, MAX_RATING = 1, 5
STAT_NAMES = {"25%": "p25", "50%": "p50", "75%": "p75"}


def rating_metrics(y_true: np.ndarray, y_pred: np.ndarray, prefix: str) -> dict[str, float]:
    """MAE and RMSE of raw predictions, and of predictions rounded to 1..5 (as the post)."""
    rounded = np.clip(np.round(y_pred), MIN_RATING, MAX_RATING)
    return {
        f"{prefix}_mae": float(mean_absolute_error(y_true, y_pred)),
        f"{prefix}_rmse": float(root_mean_squared_error(y_true, y_pred)),
        f"{prefix}_mae_rounded": float(mean_absolute_error(y_true, rounded)),
        f"{prefix}_rmse_rounded": float(root_mean_squared_error(y_true, rounded)),
    }


def embedding_stats(table: np.ndarray) -> pd.DataFrame:
    """describe() of each dimension (columns d0..), plus one column for the row L2 norms."""
    columns = [f"d{j}" for j in range(table.shape[1])] + ["norm"]
    with_norms = np.column_stack([table, np.linalg.norm(table, axis=1)])
    return pd.DataFrame(with_norms, columns=columns).describe()


def embedding_metrics(name: str, table: np.ndarray) -> dict[str, float]:
    """Flat metrics such as `emb_item_d0_mean`, `emb_item_norm_max`, `emb_item_neg_share`."""
    stats = embedding_stats(table).drop(index="count")
    flat = {
        f"emb_{name}_{column}_{STAT_NAMES.get(stat, stat)}": float(value)
        for column in stats.columns
        for stat, value in stats[column].items()
    }
    flat[f"emb_{name}_neg_share"] = float(np.mean(table < 0))
    return flat
