"""What a benchmark run writes to MLflow: its identity, each fold's run, registered models."""

from __future__ import annotations

import hashlib
import json
import tempfile

import mlflow.keras
import pandas as pd
import tensorflow as tf
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from bench.archs import config_params
from bench.benchmark.configs import Job
from bench.benchmark.predictors import Predictor
from bench.benchmark.results import FoldResult
from bench.benchmark.spec import BenchmarkSpec
from bench.data import RatingData, Split
from bench.errors import BenchError, one_line
from bench.metrics import mlflow_name
from bench.sweep.descriptions import benchmark_model_description
from bench.tracking.environment import code_version, environment_tags, machine_class
from bench.tracking.serving import (
    RATING_MODEL,
    Fallback,
    log_rating_model,
    register_champion,
    registered_name,
)
from bench.tracking.tracker import Tracker, as_metrics, curves_to_metrics, loss_named

PROTOCOL = "4"  # bump when what a benchmark number means changes (2: early stopping; 3: row L2;
# 4: the svd-defaults start and per-architecture sampler streams)


def run_identity(job: Job, spec: BenchmarkSpec, data: RatingData, folds: str) -> dict:
    """What must be equal for two benchmark runs to be compared by the gate: the data, the
    folds, the protocol, the configs (hashed), the epochs cap, the seed and the machine
    class (numbers of the NN differ across CPUs and thread counts)."""
    if spec.protocol == "nested":  # configs differ per run by design: hash what chose them
        configs = json.dumps({"archs": sorted(job.configs), "budget": job.source})
    else:
        configs = json.dumps(
            {a: {f: config_params(c) for f, c in fs.items()} for a, fs in job.configs.items()},
            sort_keys=True,
        )
    identity = {
        "bench.kind": "benchmark",
        "protocol": PROTOCOL,
        "dataset": data.dataset.name,
        "data_sha256": data.checksum,
        "folds": folds,
        "config_source": job.source,
        "configs_sha256": hashlib.sha256(configs.encode()).hexdigest()[:16],
        "max_epochs": str(spec.max_epochs or "none"),
        "metric": spec.metric,
        "seed": str(spec.seed),
        "machine_class": machine_class(),
        "device": _machine_tags()["device"],
    }
    return {key: str(value).replace("'", "") for key, value in identity.items()}  # filterable


REFERENCE_TAG = "bench.reference"  # "true" on runs a person promoted (--promote)
GATED_TAG = "bench.gated_against"  # the run (or file) a benchmark run was compared with


def previous_results(
    client: MlflowClient, experiment_id: str, identity: dict
) -> tuple[pd.DataFrame | None, str]:
    """Per-fold results to gate against, and which run they are: the latest promoted
    reference run of the same identity, else the latest finished one (a regression then
    fails one night only, and slow drift passes: promote a reference)."""
    match = " and ".join(f"tags.`{key}` = '{value}'" for key, value in identity.items())
    finished = f"{match} and attributes.status = 'FINISHED'"
    for extra, kind in ((f" and tags.`{REFERENCE_TAG}` = 'true'", "reference"), ("", "latest")):
        runs = client.search_runs(
            [experiment_id],
            filter_string=finished + extra,
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if runs:
            return _results_of(client, runs[0], kind), f"{kind} run {runs[0].info.run_name}"
    return None, ""


def _results_of(client: MlflowClient, run, kind: str) -> pd.DataFrame:
    """A benchmark run's results.csv; a run whose artifacts are gone (a store copied or
    cached without its artifact folder) is one error saying which run and what to do."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return pd.read_csv(client.download_artifacts(run.info.run_id, "results.csv", tmp))
    except (MlflowException, OSError) as exc:
        raise BenchError(
            f"the {kind} run {run.info.run_name} to gate against has no results.csv under "
            f"{run.info.artifact_uri} ({one_line(exc)}); restore the store's artifacts "
            "(mlartifacts/ beside a SQLite store, with it in any cache), or gate against an "
            "earlier run's results.csv with --baseline FILE"
        ) from exc


def promote(client: MlflowClient, run_id: str) -> None:
    """Make a finished benchmark run the reference later runs of its identity are gated
    against, until another is promoted."""
    client.set_tag(run_id, REFERENCE_TAG, "true")


def _machine_tags() -> dict[str, str]:
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "device": f"GPU x{len(gpus)}" if gpus else "CPU",
        "threads.intra_op": str(tf.config.threading.get_intra_op_parallelism_threads()),
    }


MODEL_REQUIREMENTS = [
    f"{name}=={environment_tags()[f'version.{name}']}" for name in ("tensorflow", "keras", "numpy")
]


def log_fold(
    tracker: Tracker,
    parent_id: str,
    experiment_id: str,
    fold: FoldResult,
    predictor: Predictor,
    split: Split | None = None,
    data: RatingData | None = None,
    inputs: list | None = None,
) -> str | None:
    """One nested run per model and fold (metrics named as in sweeps: `test_mae`,
    `train_loss_mse`, ...); learnt models are logged as MLflow models. Returns the URI of the
    pyfunc `rating_model` when one is logged (`data` given)."""
    run_id = tracker.start_run(
        experiment_id,
        f"{fold.model}-{fold.fold}",
        parent=parent_id,
        tags={"model": fold.model, "fold": fold.fold},
    )
    params = predictor.params()
    metrics = as_metrics({mlflow_name(k): v for k, v in fold.metrics.items()})
    if predictor.loss and fold.history:
        metrics += curves_to_metrics(loss_named(fold.history, predictor.loss))
    tracker.log(run_id, metrics, params)
    if inputs:
        tracker.client.log_inputs(run_id, datasets=inputs)
    uri = None
    if fold.keras_model is not None:
        with tempfile.TemporaryDirectory() as tmp:  # the Keras model, for `bench recommend`
            mlflow.keras.save_model(
                fold.keras_model, f"{tmp}/model", pip_requirements=MODEL_REQUIREMENTS
            )
            tracker.client.log_artifacts(run_id, f"{tmp}/model", "model")
        if data is not None:  # a self-contained pyfunc model that takes raw ids
            fallback = Fallback.from_ratings(split.train, split.n_users, split.n_items)
            scale = (split.scale.low, split.scale.high)
            uri = log_rating_model(
                tracker.client, run_id, fold.keras_model, data.users.ids, data.items.ids,
                fallback, rating_scale=scale, name=RATING_MODEL,
            )  # fmt: skip
    tracker.end(run_id)
    return uri


def register_models(
    tracker: Tracker, folds: list[FoldResult], dataset: str, source: str, run_name: str,
    identities: dict[str, str],
) -> dict[str, str]:  # fmt: skip
    """Each architecture's model of the first fold, registered as `recsys-ARCH-DATASET`
    with alias `benchmark` (the sweeps' best is `champion`): a model for each benchmarked
    config, chosen by fold order, never by a test score. A model whose identity (config,
    data, code: `model_identity`) equals the current `benchmark` version's is not
    registered again. Returns arch -> the version the alias names."""
    first = folds[0].fold if folds else None
    versions = {}
    for fold in folds:
        if fold.fold != first or fold.model_uri is None:
            continue
        name = registered_name(fold.model, dataset)
        identity = identities[fold.model]
        versions[fold.model] = _unchanged(tracker.client, name, identity) or _register(
            tracker, fold, name, source, run_name, identity
        )
    return versions


def _register(
    tracker: Tracker, fold: FoldResult, name: str, source: str, run_name: str, identity: str
) -> str:
    """Register a fold's model as the `benchmark` version of `name`, tagged."""
    description = benchmark_model_description(fold.model, source, fold.fold, run_name)
    version = register_champion(
        tracker.client, fold.model_uri, name, description, alias=BENCHMARK_ALIAS
    )
    tags = {"source": "benchmark", "benchmark_run": run_name, "fold": fold.fold}
    for key, value in {**tags, MODEL_IDENTITY_TAG: identity}.items():
        tracker.client.set_model_version_tag(name, version, key, value)
    return version


def _unchanged(client: MlflowClient, name: str, identity: str) -> str | None:
    """The `benchmark` version of `name` if it has this identity, else None."""
    try:
        version = client.get_model_version_by_alias(name, BENCHMARK_ALIAS)
    except MlflowException:  # no such model or alias yet
        return None
    return version.version if version.tags.get(MODEL_IDENTITY_TAG) == identity else None


def model_identity(config: object, data_sha256: str) -> str:
    """What a benchmarked model is a function of: its config, the data and the code (the
    commit and its uncommitted changes, and the versions of the libraries that train it)."""
    tags = environment_tags()
    payload = {
        "config": config_params(config),
        "data": data_sha256,
        "code": code_version(),
        "libraries": {k: v for k, v in tags.items() if k.startswith("version.")},
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


MODEL_IDENTITY_TAG = "bench.model_identity"  # model version tag: config, data and code


BENCHMARK_ALIAS = "benchmark"  # registered-model alias of the latest benchmarked model
