"""`bench recommend`: a user's top-k unseen movies from a logged MLflow model."""

from __future__ import annotations

import argparse

import keras
import mlflow.artifacts
import mlflow.keras
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

import bench.archs.layers  # noqa: F401  registers the custom layers a model may use
from bench.data import load_dataset
from bench.datasets import DEFAULT
from bench.errors import BenchError
from bench.ranking import top_k_unseen
from bench.tracking import resolve_tracking_uri
from bench.train import predict_codes


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench recommend", description=__doc__)
    parser.add_argument("--model", required=True, help="MLflow model URI (runs:/RUN_ID/model)")
    parser.add_argument("--user", type=int, required=True, help="MovieLens user id")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--dataset", default=DEFAULT)
    parser.add_argument("--data-dir")
    parser.add_argument("--tracking-uri")
    args = parser.parse_args(argv)
    data = load_dataset(args.dataset, args.data_dir)
    model = load_keras_model(args.model, args.tracking_uri)
    table = recommend(model, data, args.user, args.k)
    print(f"top {args.k} unseen movies for user {args.user}:")
    print(table.to_string(index=False, float_format="{:.2f}".format))
    return 0
