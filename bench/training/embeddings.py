"""Per-epoch validation errors and statistics of learnt embedding tables.

Plain numpy on purpose: these run every epoch of every trial, where scikit-learn's and
pandas' input checks cost more than the arithmetic (tests pin both to those libraries).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STATS = ("count", "mean", "std", "min", "25%", "50%", "75%", "max")  # pandas' describe()


def mae_rmse(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    error = np.asarray(y_pred, dtype="float64") - np.asarray(y_true, dtype="float64")
    return float(np.mean(np.abs(error))), float(np.sqrt(np.mean(error**2)))


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


def embedding_summary(name: str, table: np.ndarray) -> dict[str, float]:
    """Whole-table figures for MLflow (per-dimension statistics go to a CSV artifact)."""
    values = np.asarray(table, dtype="float64")
    return {
        f"emb_{name}_mean": float(values.mean()),
        f"emb_{name}_std": float(values.std()),
        f"emb_{name}_norm_mean": float(np.linalg.norm(values, axis=1).mean()),
        f"emb_{name}_neg_share": float(np.mean(values < 0)),
    }


def epoch_figures(name: str, table: np.ndarray) -> dict[str, float]:
    """How a table stands after an epoch, as curves (MLflow groups them under
    `embeddings/`): the mean row norm and the spread of its values."""
    values = np.asarray(table, dtype="float64")
    return {
        f"embeddings/{name}_norm_mean": float(np.linalg.norm(values, axis=1).mean()),
        f"embeddings/{name}_std": float(values.std()),
    }
