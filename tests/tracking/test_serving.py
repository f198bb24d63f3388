"""The served rating model: logged with bench, loaded and used where bench cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from bench.archs.layers import GlobalBias, RowL2
from bench.tracking.serving import (
    REGISTERED_DESCRIPTION,
    Fallback,
    id_maps,
    log_rating_model,
    pinned_requirements,
    register_champion,
)
from bench.training.biases import BiasALS

USER_IDS = np.array([3, 10, 11, 42, 50, 77])  # raw ids; code = position; 77 has no rating
ITEM_IDS = np.array([1, 5, 8, 13, 21, 34, 55, 89])  # 89 has no rating
SCALE = (1.0, 5.0)
NAME = "recsys-mf-test"

# Runs in a fresh interpreter where every import of bench fails.
SERVE = """
import json, sys

class BlockBench:
    def find_spec(self, name, path=None, target=None):
        if name == "bench" or name.startswith("bench."):
            raise ImportError(f"{name} is blocked")

sys.meta_path.insert(0, BlockBench())
try:
    import bench
except ImportError:
    pass
else:
    sys.exit("bench was importable")

import mlflow
import pandas as pd

model = mlflow.pyfunc.load_model(sys.argv[1])
frame = pd.DataFrame(json.loads(sys.argv[2]))
print(json.dumps(model.predict(frame)["rating"].tolist()))
"""


def _train_frame() -> pd.DataFrame:
    """Codes: users 0..4 and items 0..6 have ratings; user 5 and item 7 have none."""
    rows = np.arange(20)
    ratings = np.random.default_rng(0).integers(1, 6, len(rows)).astype("float32")
    return pd.DataFrame({"user": rows % 5, "item": rows % 7, "rating": ratings})


def _tiny_mf(train: pd.DataFrame) -> keras.Model:
    """Dot product plus bench's GlobalBias and RowL2 (custom layers the served model must load
    without bench), trained for two steps."""
    keras.utils.set_random_seed(0)
    user = keras.Input((1,), dtype="int32", name="user")
    item = keras.Input((1,), dtype="int32", name="item")
    init = keras.initializers.RandomNormal(stddev=1.0)
    user_vec = keras.layers.Flatten()(
        keras.layers.Embedding(7, 3, embeddings_initializer=init)(user)
    )
    user_vec = RowL2(0.05, name="user_row_l2")(user_vec)
    item_vec = keras.layers.Flatten()(
        keras.layers.Embedding(9, 3, embeddings_initializer=init)(item)
    )
    dot = keras.layers.Dot(axes=1)([user_vec, item_vec])
    model = keras.Model([user, item], GlobalBias(name="global_bias")(dot))
    model.get_layer("global_bias").bias.assign([3.0])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x = [train["user"].to_numpy()[:, None], train["item"].to_numpy()[:, None]]
    model.fit(x, train["rating"].to_numpy(), batch_size=10, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> SimpleNamespace:
    """A tiny MF logged to a fresh SQLite store and registered as champion."""
    tmp = tmp_path_factory.mktemp("serving")
    train = _train_frame()
    model = _tiny_mf(train)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("serving", artifact_location=(tmp / "art").as_uri())
    run = client.create_run(experiment)
    client.log_param(run.info.run_id, "k", "3")
    fallback = Fallback.from_ratings(train, len(USER_IDS), len(ITEM_IDS))
    model_uri = log_rating_model(
        client, run.info.run_id, model, USER_IDS, ITEM_IDS, fallback, rating_scale=SCALE
    )
    version = register_champion(client, model_uri, NAME, "study mf-u1, trial 7")
    return SimpleNamespace(
        tracking_uri=uri,
        client=client,
        run_id=run.info.run_id,
        model=model,
        uri=model_uri,
        fallback=fallback,
        version=version,
        tmp=tmp,
    )


def _serve(served: SimpleNamespace, frame: pd.DataFrame) -> np.ndarray:
    env = {**os.environ, "MLFLOW_TRACKING_URI": served.tracking_uri}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            SERVE,
            f"models:/{NAME}@champion",
            json.dumps(frame.to_dict(orient="list")),
        ],
        cwd=served.tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return np.array(json.loads(out.stdout.strip().splitlines()[-1]))


def _request() -> pd.DataFrame:
    """Every pair of rated raw ids, then four pairs the network must not predict."""
    users, items = np.meshgrid(USER_IDS[:5], ITEM_IDS[:7], indexing="ij")
    odd = pd.DataFrame({"user": [77, 999, 3, 10], "item": [1, 5, 4, 89]})
    rated = pd.DataFrame({"user": users.ravel(), "item": items.ravel()})
    return pd.concat([rated, odd], ignore_index=True)


def test_champion_serves_raw_ids_where_bench_cannot_be_imported(served):
    request = _request()
    rated = len(request) - 4
    users = np.searchsorted(USER_IDS, request["user"][:rated]).reshape(-1, 1)
    items = np.searchsorted(ITEM_IDS, request["item"][:rated]).reshape(-1, 1)
    raw = np.asarray(served.model([users, items])).reshape(-1)
    assert ((raw < SCALE[0]) | (raw > SCALE[1])).any() and ((raw > 1) & (raw < 5)).any()
    predicted = _serve(served, request)
    np.testing.assert_allclose(predicted[:rated], np.clip(raw, *SCALE), rtol=1e-6)
    # (77, 1): user without ratings; (999, 5): unknown user; (3, 4): unknown item; (10, 89):
    # item without ratings. Each gets the mean plus its known side's bias, as in the benchmark
    fallback = served.fallback
    known_side = [fallback.item_bias[0], fallback.item_bias[1], *fallback.user_bias[:2]]
    expected = np.clip(fallback.global_mean + np.array(known_side), *SCALE)
    np.testing.assert_allclose(predicted[rated:], expected, rtol=1e-6)
    assert not np.allclose(predicted[rated:], fallback.global_mean)
    # and the registered model's page says so
    assert "gets the training mean plus the bias of its known side" in REGISTERED_DESCRIPTION


def _model_folder(served: SimpleNamespace) -> Path:
    location = served.client.get_logged_model(served.uri.removeprefix("models:/"))
    return Path(urlparse(location.artifact_location).path)


def test_logged_model_has_signature_example_and_only_pinned_requirements(served):
    folder = _model_folder(served)
    meta = Model.load(folder)
    assert meta.signature.inputs.input_names() == ["user", "item"]
    assert [spec.type.name for spec in meta.signature.inputs.inputs] == ["long", "long"]
    assert meta.signature.outputs.input_names() == ["rating"]
    example = pd.read_json(folder / meta.saved_input_example_info["artifact_path"], orient="split")
    assert set(example["user"]) <= set(USER_IDS[:5]) and set(example["item"]) <= set(ITEM_IDS[:7])
    requirements = (folder / "requirements.txt").read_text().split()
    assert requirements == pinned_requirements()  # inference would have added packages
    assert {line.split("==")[0] for line in requirements} >= {"tensorflow", "numpy", "keras"}


def test_logging_uses_the_client_only(served):
    assert mlflow.active_run() is None and mlflow.get_tracking_uri() != served.tracking_uri
    run = served.client.get_run(served.run_id)
    assert [out.model_id for out in run.outputs.model_outputs] == [served.uri[len("models:/") :]]
    assert served.client.get_logged_model(run.outputs.model_outputs[0].model_id).params == {
        "k": "3"
    }


def test_registering_again_reuses_the_version_and_updates_description(served):
    client = served.client
    again = register_champion(client, served.uri, NAME, "study mf-u1, trial 8", alias="best")
    assert again == served.version == "1"
    version = client.get_model_version_by_alias(NAME, "champion")
    assert str(version.version) == "1" and version.description == "study mf-u1, trial 8"
    assert str(client.get_model_version_by_alias(NAME, "best").version) == "1"


def test_register_champion_accepts_an_existing_registered_model(served):
    served.client.create_registered_model("recsys-existing")
    assert register_champion(served.client, served.uri, "recsys-existing", "d") == "1"


def test_fallback_marks_codes_with_training_ratings():
    fallback = Fallback.from_ratings(_train_frame(), len(USER_IDS), len(ITEM_IDS))
    assert fallback.user_seen.tolist() == [True] * 5 + [False]
    assert fallback.item_seen.tolist() == [True] * 7 + [False]
    assert fallback.global_mean == pytest.approx(_train_frame()["rating"].mean())
    base = BiasALS(len(USER_IDS), len(ITEM_IDS), clip=None).fit(_train_frame())
    np.testing.assert_array_equal(fallback.user_bias, base.user_bias_)  # the benchmark's
    np.testing.assert_array_equal(fallback.item_bias, base.item_bias_)
    assert fallback.user_bias[5] == 0 and fallback.item_bias[7] == 0  # no ratings: no bias


@pytest.mark.parametrize(
    ("user_ids", "scale"),
    [(USER_IDS[::-1], SCALE), (USER_IDS[:3], SCALE), (USER_IDS, (5.0, 1.0))],
)
def test_id_maps_rejects_unsorted_ids_wrong_masks_and_bad_scales(user_ids, scale):
    fallback = Fallback.from_ratings(_train_frame(), len(USER_IDS), len(ITEM_IDS))
    with pytest.raises(ValueError, match="must be"):
        id_maps(user_ids, ITEM_IDS, fallback, scale)
