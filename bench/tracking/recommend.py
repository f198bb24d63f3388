"""A user's top-k unseen movies from a logged model (the library half of recommend): a Keras
model (runs:/RUN_ID/model) or a rating model such as a sweep's champion (a pyfunc on raw ids,
models:/recsys-mf-ml-100k@champion)."""

from __future__ import annotations

import posixpath
from pathlib import Path

import keras
import mlflow.artifacts
import mlflow.keras
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
from mlflow.store.artifact.utils.models import get_model_name_and_version
from mlflow.tracking import MlflowClient

import bench.archs.layers  # noqa: F401  registers the custom layers a model may use
from bench.errors import BenchError
from bench.metrics.ranking import top_k_unseen
from bench.tracking.store import shown
from bench.tracking.tracker import Tracker, resolve_tracking_uri
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
    tracker = Tracker(existing_store(resolve_tracking_uri(tracking_uri)))
    try:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=model_files(tracker.client, uri), tracking_uri=tracker.uri
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


def existing_store(tracking_uri: str) -> str:
    """The store, if a SQLite one exists (reading a model never creates a store)."""
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    if tracking_uri.startswith("sqlite:///") and not path.is_file():
        raise BenchError(
            f"no MLflow store at {path.absolute()}; pass --tracking-uri (or set "
            "MLFLOW_TRACKING_URI) to the store the model was registered in"
        )
    return tracking_uri


def model_files(client: MlflowClient, uri: str) -> str:
    """Where the files of a models:/ URI are, asked of `client`'s own registry (MLflow's
    download_artifacts asks the process's global registry, whatever tracking URI it gets);
    any other URI as it is."""
    if not ModelsArtifactRepository.is_models_uri(uri):
        return uri
    base, inner = ModelsArtifactRepository.split_models_uri(uri)
    try:
        found = get_model_name_and_version(client, base)
        if len(found) == 1:  # models:/MODEL_ID, a logged model
            location = client.get_logged_model(found[0]).artifact_location
        else:
            location = client.get_model_version_download_uri(*found)
    except MlflowException as exc:
        reason = str(exc).strip().splitlines()[0]
        raise BenchError(
            f"cannot load model {uri!r} from {shown(client.tracking_uri)} ({reason}); pass the "
            "--tracking-uri of the store it was registered in"
        ) from exc
    return posixpath.join(location, inner) if inner else location


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
