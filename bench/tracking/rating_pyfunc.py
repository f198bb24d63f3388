"""MLflow "models from code" file of the served rating models; imports nothing from `bench`.

MLflow copies this file into every model that `bench.tracking.serving.log_rating_model` logs
and runs it when the model is loaded, where `bench` may not be installed: so it needs only
keras (with TensorFlow), numpy, pandas and mlflow. bench imports it too, to compute the same
predictions in process.

Custom layers: a Keras model may hold bench's `GlobalBias` and `RowL2`, saved under the
registered names "bench>GlobalBias" and "bench>RowL2" together with the module that defined
them. Shipping that module with `code_paths` would drag in the rest of bench, so this file
keeps copies of the layers (`RowL2`: an identity, as it is when predicting) and passes them to
`keras.saving.load_model` as custom objects under those registered names. Keras looks custom
objects up by registered name before it tries to import the recorded module, so where bench
keeps the layers does not matter. The copies are not
registered globally: MLflow also runs this file in the logging process, and a global
registration would replace bench's own class there. If bench's layer changes, change the copy:
`log_rating_model` reloads every model it logs and checks its predictions, so a mismatch fails
at logging time rather than in serving.
"""

from __future__ import annotations

import keras
import mlflow
import numpy as np
import pandas as pd

KERAS_ARTIFACT = "keras_model"
MAPS_ARTIFACT = "id_maps"
BATCH_SIZE = 65536


class GlobalBias(keras.layers.Layer):
    """Adds one trainable scalar (the global rating offset); the same as bench's layer."""

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")

    def call(self, inputs: keras.KerasTensor) -> keras.KerasTensor:
        return inputs + self.bias


class RowL2(keras.layers.Layer):
    """bench's per-rating L2 layer: an identity when predicting (its penalty is training's);
    it keeps the strength weight so that the saved weights load."""

    def __init__(self, strength: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_strength = float(strength)

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.strength = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="strength"
        )

    def call(self, inputs: keras.KerasTensor) -> keras.KerasTensor:
        return inputs


CUSTOM_OBJECTS = {"bench>GlobalBias": GlobalBias, "bench>RowL2": RowL2}


def load_maps(path: str) -> dict[str, np.ndarray]:
    """The id maps and fallback saved by `bench.tracking.serving`: user_ids, item_ids (sorted raw
    ids), user_seen, item_seen (bool per code), global_mean and rating_scale ([min, max])."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def encode(ids: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes (positions in the sorted `ids`) of raw ids, and whether each raw id is known."""
    codes = np.minimum(np.searchsorted(ids, raw), len(ids) - 1)
    return codes.astype("int32"), ids[codes] == raw


def model_scores(model: keras.Model, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The network's outputs for code pairs, in large eager batches (as bench's training)."""
    users, items = users.reshape(-1, 1), items.reshape(-1, 1)
    parts = [
        np.asarray(model([users[start : start + BATCH_SIZE], items[start : start + BATCH_SIZE]]))
        for start in range(0, len(users), BATCH_SIZE)
    ]
    return np.concatenate(parts).reshape(-1).astype("float64")


def predict_ratings(model: keras.Model, maps: dict, frame: pd.DataFrame) -> pd.DataFrame:
    """Ratings for raw (user, item) ids, clipped to the rating scale.

    The network predicts a pair only when both ids had a training rating; any other pair (an
    id unknown to the model, or known but never rated in training, whose embedding is still
    its random initial value) gets the global mean training rating plus the bias of the side
    that had ratings (as the benchmark's fallback; a model saved without biases: the mean).
    """
    users, user_known = encode(maps["user_ids"], frame["user"].to_numpy(dtype="int64"))
    items, item_known = encode(maps["item_ids"], frame["item"].to_numpy(dtype="int64"))
    user_rated = user_known & maps["user_seen"][users]
    item_rated = item_known & maps["item_seen"][items]
    usable = user_rated & item_rated
    ratings = np.full(len(frame), float(maps["global_mean"]))
    if "user_bias" in maps:
        ratings += np.where(user_rated, maps["user_bias"][users], 0.0)
        ratings += np.where(item_rated, maps["item_bias"][items], 0.0)
    if usable.any():
        ratings[usable] = model_scores(model, users[usable], items[usable])
    low, high = maps["rating_scale"]
    return pd.DataFrame({"rating": np.clip(ratings, low, high)}, index=frame.index)


class RatingModel(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame with int columns `user` and `item` (raw MovieLens ids).
    Output: a DataFrame with the float column `rating`."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.network = keras.saving.load_model(
            context.artifacts[KERAS_ARTIFACT], custom_objects=CUSTOM_OBJECTS, compile=False
        )
        self.maps = load_maps(context.artifacts[MAPS_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return predict_ratings(self.network, self.maps, model_input)


if (
    __name__ != "bench.tracking.rating_pyfunc"
):  # MLflow runs this file as model code, not bench's import
    mlflow.models.set_model(RatingModel())
