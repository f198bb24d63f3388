"""A user's top-k unseen movies from a logged model (the library half of recommend): a Keras
model (runs:/RUN_ID/model) or a rating model such as a sweep's champion (a pyfunc on raw ids,
models:/recsys-mf-ml-100k@champion)."""

from __future__ import annotations

import keras
import mlflow.artifacts
import mlflow.keras
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import Model

import bench.archs.layers  # noqa: F401  registers the custom layers a model may use
from bench.errors import BenchError
from bench.metrics.ranking import top_k_unseen
from bench.tracking.tracker import resolve_tracking_uri
from bench.training.train import predict_codes


def load_keras_model(uri: str, tracking_uri: str | None = None) -> keras.Model:
    """The Keras model logged at `uri`, read from the given store (no global MLflow state)."""
    model = load_model(uri, tracking_uri)
    if not isinstance(model, keras.Model):
        raise BenchError(f"model {uri!r} has no Keras flavour; pass a runs:/RUN_ID/model URI")
    return model


def load_model(uri: str, tracking_uri: str | None = None):
    """The model logged at `uri`: its Keras model where it has that flavour, else its pyfunc
    (which takes raw user and item ids, as a sweep's champion does)."""
    try:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, tracking_uri=resolve_tracking_uri(tracking_uri)
        )
        if "keras" in Model.load(path).flavors:
            return mlflow.keras.load_model(path)
        return mlflow.pyfunc.load_model(path)
    except (MlflowException, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise BenchError(
            f"cannot load model {uri!r} ({reason}); pass a URI such as runs:/RUN_ID/model or "
            f"models:/recsys-mf-ml-100k@champion"
        ) from exc


def scores_of(model, data, user_id: int, items: np.ndarray) -> np.ndarray:
    """The model's predicted ratings of one user for item codes `items`."""
    if isinstance(model, keras.Model):
        user = int(data.users.encode(np.array([user_id]))[0])
        return predict_codes(model, np.full(len(items), user), items)
    frame = pd.DataFrame({"user": np.full(len(items), user_id), "item": data.items.decode(items)})
    return np.asarray(model.predict(frame)["rating"], dtype="float64")


def recommend(model, data, user_id: int, k: int) -> pd.DataFrame:
    """The k unseen items with the highest predicted rating for one user, with titles."""
    if user_id not in set(data.users.ids.tolist()):
        raise BenchError(f"user {user_id} is not in the rating data (ids {data.users.ids[0]}..)")
    user = int(data.users.encode(np.array([user_id]))[0])
    items = np.arange(data.n_items)
    scores = scores_of(model, data, user_id, items)
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
