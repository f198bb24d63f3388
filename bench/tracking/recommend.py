"""A user's top-k unseen movies from a logged Keras model (the library half of recommend)."""

from __future__ import annotations

import keras
import mlflow.artifacts
import mlflow.keras
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

import bench.archs.layers  # noqa: F401  registers the custom layers a model may use
from bench.errors import BenchError
from bench.metrics.ranking import top_k_unseen
from bench.tracking.tracker import resolve_tracking_uri
from bench.training.train import predict_codes


def load_keras_model(uri: str, tracking_uri: str | None = None) -> keras.Model:
    """The Keras model logged at `uri`, read from the given store (no global MLflow state)."""
    try:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, tracking_uri=resolve_tracking_uri(tracking_uri)
        )
        return mlflow.keras.load_model(path)
    except (MlflowException, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise BenchError(
            f"cannot load model {uri!r} ({reason}); pass a URI such as runs:/RUN_ID/model from "
            f"the benchmark experiment"
        ) from exc


def recommend(model, data, user_id: int, k: int) -> pd.DataFrame:
    """The k unseen items with the highest predicted rating for one user, with titles."""
    if user_id not in set(data.users.ids.tolist()):
        raise BenchError(f"user {user_id} is not in the rating data (ids {data.users.ids[0]}..)")
    user = int(data.users.encode(np.array([user_id]))[0])
    items = np.arange(data.n_items)
    scores = predict_codes(model, np.full(data.n_items, user), items)
    seen = np.zeros(data.n_items, dtype=bool)
    seen[data.ratings.loc[data.ratings["user"] == user, "item"].to_numpy()] = True
    top = top_k_unseen(scores, seen, k)
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(top) + 1),
            "movie id": data.items.decode(top),
            "title": data.titles(top),
            "predicted rating": scores[top],
        }
    )
