"""Log trained rating models as self-contained MLflow pyfunc models; register champions.

A logged model takes raw MovieLens ids (a DataFrame with int columns `user` and `item`) and
returns a DataFrame with the float column `rating`. It is a "models from code" pyfunc: the
code is `bench/tracking/rating_pyfunc.py`, copied into the model, which imports nothing from
bench, so the model loads where bench is not installed. Its artifacts are the Keras model
(`.keras`) and an `.npz` with the id maps and the fallback. It carries a signature, an input
example of real ids and pinned pip requirements, so MLflow infers no requirements (which takes
35-55 s for Keras).

Everything goes through the MlflowClient passed in (its tracking and registry URIs); nothing
uses or changes MLflow's active run, tracking URI or experiment.
"""

from __future__ import annotations

import importlib
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import LoggedModel, LoggedModelOutput, LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.models import Model, infer_signature
from mlflow.protos.databricks_pb2 import ALREADY_EXISTS, RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient

import bench.tracking.rating_pyfunc as rating_pyfunc
from bench.training.biases import BiasALS
from bench.training.ranking import LOWEST_SCORE, rated_codes

REQUIREMENTS = ("tensorflow", "keras", "numpy", "pandas", "mlflow")
EXAMPLE_ROWS = 5
MODEL_URI_PREFIX = "models:/"
CHAMPION = "champion"  # the alias of a registered model's best version
REGISTERED_DESCRIPTION = (
    "Rating predictions from raw user and item ids (a DataFrame with int columns `user` and "
    "`item`; out: float column `rating`, clipped to the rating scale; a pair with an id "
    "that had no training rating gets the training mean plus the bias of its known side, "
    "the mean alone when neither side is known). Alias `champion`: the best trial of the "
    "sweeps, selected on validation (a sweep moves it only to a model better on the same "
    "data, split and metric). Alias `benchmark`: the latest benchmark's model of the first "
    "fold. Each version's description says where it comes from."
)


RANKING_DESCRIPTION = (
    "Ranking scores from raw user and item ids (a DataFrame with int columns `user` and "
    "`item`; out: float column `rating` holding the model's raw score, higher ranks first, "
    "not a rating and not clipped; a pair with an id that had no training rating scores "
    "-1e30, below every learnt score). Alias `champion`: the best trial of the ranking "
    "sweeps, selected on validation NDCG@10 (or recall@10). Each version's description says "
    "where it comes from."
)


RATING_MODEL = "rating_model"  # the name of a run's logged pyfunc model
RATING_MODEL_TAG = "rating_model_uri"  # a sweep trial's tag: the `models:/<id>` it logged
ALREADY_EXISTS_CODES = {ErrorCode.Name(code) for code in (ALREADY_EXISTS, RESOURCE_ALREADY_EXISTS)}


@dataclass(frozen=True)
class Fallback:
    """What the served model needs for pairs it must not predict with the network.

    `user_seen`/`item_seen`: one bool per code, True where the code has a training rating.
    A pair with an unknown or unseen id gets `global_mean` plus the bias of its known side
    (`user_bias`/`item_bias`, Surprise's ALS baseline on the training ratings, 0 for unseen
    codes): the benchmark's fallback (`bench.benchmark.predictors.with_fallback`), model-
    independent, so it works for every architecture.
    """

    global_mean: float
    user_seen: np.ndarray
    item_seen: np.ndarray
    user_bias: np.ndarray | None = None  # None: no biases (the global mean alone)
    item_bias: np.ndarray | None = None

    @classmethod
    def from_ratings(cls, train: pd.DataFrame, n_users: int, n_items: int) -> Fallback:
        """From a training frame with code columns `user`, `item` and a `rating` column."""
        user_seen, item_seen = _seen(train, n_users, n_items)
        base = BiasALS(n_users, n_items, clip=None).fit(train)
        return cls(base.mean_, user_seen, item_seen, base.user_bias_, base.item_bias_)

    @classmethod
    def ranked_last(cls, train: pd.DataFrame, n_users: int, n_items: int) -> Fallback:
        """A ranking model's: a pair with an unseen id scores `LOWEST_SCORE` (ranked last)."""
        return cls(LOWEST_SCORE, *_seen(train, n_users, n_items))


def _seen(train: pd.DataFrame, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """One bool per user code and per item code: True where it has a training rating."""
    return rated_codes(train, "user", n_users), rated_codes(train, "item", n_items)


def pinned_requirements() -> list[str]:
    """`name==version` of the installed packages the served model needs."""
    return [f"{name}=={_version(name)}" for name in REQUIREMENTS]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:  # e.g. TensorFlow installed as tensorflow-cpu
        return importlib.import_module(name).__version__


def id_maps(
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    fallback: Fallback,
    rating_scale: tuple[float, float],
) -> dict[str, np.ndarray]:
    """The arrays saved with the model (see `rating_pyfunc.load_maps`), checked for shape."""
    maps = {
        "user_ids": np.asarray(user_ids, dtype="int64"),
        "item_ids": np.asarray(item_ids, dtype="int64"),
        "user_seen": np.asarray(fallback.user_seen, dtype=bool),
        "item_seen": np.asarray(fallback.item_seen, dtype=bool),
        "global_mean": np.float64(fallback.global_mean),
        "user_bias": _biases(fallback.user_bias, len(user_ids)),
        "item_bias": _biases(fallback.item_bias, len(item_ids)),
        "rating_scale": np.asarray(rating_scale, dtype="float64"),
    }
    for side in ("user", "item"):
        ids, seen = maps[f"{side}_ids"], maps[f"{side}_seen"]
        if np.any(np.diff(ids) <= 0) or seen.shape != ids.shape or not seen.any():
            raise ValueError(
                f"{side}_ids must be sorted unique raw ids, one per code, with {side}_seen of "
                f"the same length and some True (got {len(ids)} ids, {seen.sum()}/{seen.shape} "
                f"seen)"
            )
    if maps["rating_scale"].shape != (2,) or not np.all(np.diff(maps["rating_scale"]) > 0):
        raise ValueError(f"rating_scale must be (min, max), got {rating_scale}")
    return maps


def _biases(biases: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n) if biases is None else np.asarray(biases, dtype="float64")


def input_example(maps: dict[str, np.ndarray], rows: int = EXAMPLE_ROWS) -> pd.DataFrame:
    """A few pairs of real raw ids that had training ratings."""
    users = maps["user_ids"][maps["user_seen"]][:rows]
    items = maps["item_ids"][maps["item_seen"]][:rows]
    pairs = min(len(users), len(items))
    return pd.DataFrame({"user": users[:pairs], "item": items[:pairs]})


def log_rating_model(
    client: MlflowClient,
    run_id: str,
    keras_model: keras.Model,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    fallback: Fallback,
    *,
    rating_scale: tuple[float, float],
    name: str = "model",
    step: int = 0,
) -> str:
    """Log `keras_model` as a pyfunc model of run `run_id`; returns its URI `models:/<id>`.

    `user_ids`/`item_ids`: the sorted raw ids, position = code. The model goes in the run's
    experiment, is linked to the run as an output at `step` and gets the run's params. It is
    loaded back and checked against `keras_model` before upload.
    """
    maps = id_maps(user_ids, item_ids, fallback, rating_scale)
    run = client.get_run(run_id)
    logged = client.create_logged_model(
        run.info.experiment_id, name=name, source_run_id=run_id, params=run.data.params
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = _save(Path(tmp), keras_model, maps, logged)
            client.log_model_artifacts(logged.model_id, str(path))
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step)])
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return MODEL_URI_PREFIX + logged.model_id


def _save(folder: Path, keras_model: keras.Model, maps: dict, logged: LoggedModel) -> Path:
    """Write the MLflow model folder for `logged` under `folder`; returns its path."""
    keras_model.save(folder / "model.keras")
    np.savez(folder / "id_maps.npz", **maps)
    example = input_example(maps)
    expected = rating_pyfunc.predict_ratings(keras_model, maps, example)
    path = folder / "pyfunc"
    mlflow.pyfunc.save_model(
        path,
        python_model=rating_pyfunc.__file__,
        artifacts={
            rating_pyfunc.KERAS_ARTIFACT: str(folder / "model.keras"),
            rating_pyfunc.MAPS_ARTIFACT: str(folder / "id_maps.npz"),
        },
        signature=infer_signature(example, expected),
        input_example=example,
        pip_requirements=pinned_requirements(),
        mlflow_model=Model(
            artifact_path=logged.artifact_location,
            run_id=logged.source_run_id,
            model_uuid=logged.model_id,
            model_id=logged.model_id,
        ),
    )
    _check_round_trip(path, example, expected)
    return path


def _check_round_trip(path: Path, example: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Load the saved model as a server would and compare its predictions with `expected`."""
    served = mlflow.pyfunc.load_model(str(path)).predict(example)
    if not np.allclose(served["rating"], expected["rating"], rtol=1e-5, atol=1e-6):
        raise ValueError(
            f"the saved model predicts {served['rating'].tolist()} where the Keras model "
            f"predicts {expected['rating'].tolist()}: does rating_pyfunc.GlobalBias still "
            f"match bench's layer?"
        )


def registered_name(arch: str, dataset: str, task: str = "rating") -> str:
    """The registered model of an architecture on a data set: `recsys-mf-ml-100k`; one
    trained for another task than ratings names it: `recsys-mf-ranking-ml-100k`."""
    return f"recsys-{arch}-{dataset}" if task == "rating" else f"recsys-{arch}-{task}-{dataset}"


def register_champion(
    client: MlflowClient,
    model_uri: str,
    name: str,
    description: str,
    alias: str | None = CHAMPION,
    model_description: str = REGISTERED_DESCRIPTION,
) -> str:
    """Register `model_uri` (`models:/<id>` from `log_rating_model`) as a version of registered
    model `name` (created if missing), describe it and point `alias` at it (None: no alias
    moves); returns the version.

    Registering the same logged model again reuses its version. The source is the logged
    model's artifact location, not `models:/<id>`, because MLflow's SQL registry resolves
    `models:/<id>` through the global tracking URI rather than this client's.
    """
    if not model_uri.startswith(MODEL_URI_PREFIX):
        raise ValueError(f"expected a URI {MODEL_URI_PREFIX}<model id>, got {model_uri!r}")
    logged = client.get_logged_model(model_uri.removeprefix(MODEL_URI_PREFIX))
    _ensure_registered_model(client, name)
    client.update_registered_model(name, description=model_description)
    version = (
        _existing_version(client, name, logged.artifact_location)
        or client.create_model_version(
            name,
            source=logged.artifact_location,
            run_id=logged.source_run_id,
            model_id=logged.model_id,
        ).version
    )
    client.update_model_version(name, version, description=description)
    if alias:
        client.set_registered_model_alias(name, alias, version)
    return str(version)


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in ALREADY_EXISTS_CODES:
            raise


def _existing_version(client: MlflowClient, name: str, source: str) -> str | None:
    """The version of `name` registered from `source`, if any (the SQL registry keeps no
    model id on versions)."""
    versions = client.search_model_versions(f"name = '{name}'")
    return next((v.version for v in versions if v.source == source), None)
