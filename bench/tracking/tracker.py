"""The one way to MLflow: a `Tracker` holds an explicit client for one store.

The tracking URI is resolved once, at the entry point (the `--tracking-uri` flag, else
$MLFLOW_TRACKING_URI, else a SQLite file `mlflow.db` in the working directory), and the
tracker is passed down. No module uses MLflow's global (fluent) state, so two stores in one
process cannot cross. Per-epoch metrics go in `log_batch` calls, not one write per value (a
SQLite store manages about 100 writes per second).

Names: a loss curve carries its loss in its name (`train_loss_mse`, `val_loss_mae`), so that
MLflow never draws curves of different losses in one chart; `val_mae`/`val_rmse` and the
test metrics (`test_mae`, ...) mean the same in every run. A run's config is one artifact,
`config.json`; the split it used is logged as MLflow dataset inputs (`ml-100k/seed/train`, ...).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow.data
import numpy as np
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
from sqlalchemy.exc import SQLAlchemyError

from bench.archs import config_params
from bench.data import Split
from bench.datasets import get_dataset
from bench.errors import BenchError
from bench.tracking.client import SharedClient
from bench.tracking.environment import environment_tags, source_tags
from bench.tracking.figures import loss_curve_figure
from bench.tracking.store import setup_lock, sqlite_wal
from bench.training.options import TrainOptions
from bench.training.train import TrainResult

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
NOTE_TAG = "mlflow.note.content"  # a run's or an experiment's description in the MLflow UI
MAX_METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call (params: 100)
MAX_PARAMS_PER_BATCH = 100
EMBEDDING_PNG = "embeddings.png"  # histogram of a run's embedding values
LOSS_CURVES = ("train_loss", "val_loss")
SPLIT_PARTS = {"train": "training", "valid": "validation", "test": "test"}  # part: context
STORE_ERRORS = (MlflowException, OSError, SQLAlchemyError, sqlite3.Error)


# what MLflow stores runs in: a folder (no scheme, file), a database, or a tracking server
TRACKING_SCHEMES = ("", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https")


def resolve_tracking_uri(flag: str | None = None) -> str:
    """The --tracking-uri flag, else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db; an
    unknown scheme is one error naming the forms that work."""
    uri = flag or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    scheme = uri.partition("://")[0].partition("+")[0] if "://" in uri else ""
    if scheme not in TRACKING_SCHEMES and not scheme.startswith("databricks"):
        raise BenchError(
            f"MLflow store {uri!r}: unknown scheme {scheme!r}; pass --tracking-uri (or set "
            "MLFLOW_TRACKING_URI) as sqlite:///path/mlflow.db, http(s)://host:port (an MLflow "
            "server), postgresql://user@host/db or a folder"
        )
    return uri


def store_error(uri: str, exc: Exception) -> BenchError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return BenchError(
        f"cannot open the MLflow store {uri!r} ({reason}); pass --tracking-uri or set "
        f"MLFLOW_TRACKING_URI to a writable store such as sqlite:///mlflow.db"
    )


def as_metrics(values: dict[str, float], step: int = 0) -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric(key, float(value), now, step) for key, value in values.items()]


def curves_to_metrics(history: dict[str, list[float]]) -> list[Metric]:
    now = int(time.time() * 1000)
    return [
        Metric(name, float(value), now, epoch)
        for name, values in history.items()
        for epoch, value in enumerate(values)
    ]


def loss_named(history: dict[str, list[float]], loss: str) -> dict[str, list[float]]:
    """The curves under their MLflow names: each loss curve named with its loss."""
    return {f"{k}_{loss}" if k in LOSS_CURVES else k: v for k, v in history.items()}


def split_inputs(split: Split) -> list[DatasetInput]:
    """The split's non-empty parts (user and item codes, ratings) as MLflow dataset inputs,
    named `DATASET/SPLIT/PART`, with a digest of their content and a context tag."""
    registered = get_dataset(split.dataset)
    source = HTTPDatasetSource(registered.url) if registered.url else CodeDatasetSource({})
    inputs = []
    for part, context in SPLIT_PARTS.items():
        frame = getattr(split, part)[["user", "item", "rating"]]
        if frame.empty:
            continue
        digest = hashlib.sha256(np.ascontiguousarray(frame.to_numpy("float64")).tobytes())
        dataset = mlflow.data.from_pandas(
            frame,
            source=source,
            targets="rating",
            name=f"{split.dataset}/{split.name}/{part}",
            digest=digest.hexdigest()[:16],
        )
        tags = [InputTag(MLFLOW_DATASET_CONTEXT, context)]
        inputs.append(DatasetInput(dataset._to_mlflow_entity(), tags))
    return inputs


def run_config(config: Any, split: Split, options: TrainOptions) -> dict[str, Any]:
    """Everything a run was trained with: the config, the training options, the split."""
    return {
        "config": config_params(config),
        "training": {
            "seed": options.seed,
            "engine": options.engine,
            "jit_compile": options.jit_compile,
            "sparse_updates": options.sparse_updates,
            "ranking": dataclasses.asdict(options.ranking) if options.ranking else None,
        },
        "split": split.provenance,
    }


def _model_summary(result: TrainResult) -> str:
    buffer = io.StringIO()
    result.model.summary(print_fn=lambda line, **_: buffer.write(line + "\n"))
    return buffer.getvalue()


class Tracker:
    """One MLflow store, reached through an explicit client."""

    def __init__(self, uri: str | None = None):
        """Open the store under its set-up lock (MLflow makes a new database's tables on
        first use, and two processes doing so at once break it: bench.tracking.store)."""
        self.uri = resolve_tracking_uri(uri)
        try:
            with setup_lock(self.uri):
                self.client = SharedClient(self.uri)
                sqlite_wal(self.uri)
        except STORE_ERRORS as exc:
            raise store_error(self.uri, exc) from exc

    def artifact_location(self, name: str) -> str | None:
        """Beside a SQLite store, `mlartifacts/EXPERIMENT` (MLflow's default would be
        ./mlruns in whatever folder the command ran from): the store and its artifacts
        then move, back up and cache as one folder. Elsewhere the server's default."""
        if not self.uri.startswith("sqlite:///"):
            return None
        folder = Path(self.uri.removeprefix("sqlite:///")).absolute().parent / "mlartifacts"
        return (folder / re.sub(r"[^A-Za-z0-9_.-]+", "-", name)).as_uri()

    def experiment(self, name: str, description: str = "") -> str:
        """The id of experiment `name`, created if needed, with `description` (the text the
        MLflow UI shows on the experiment's page) when it has none yet."""
        try:
            found = self.client.get_experiment_by_name(name)
            if found is None:
                with contextlib.suppress(MlflowException):  # or made meanwhile elsewhere
                    self.client.create_experiment(name, self.artifact_location(name))
                found = self.client.get_experiment_by_name(name)
            if description and not found.tags.get(NOTE_TAG):  # a race for it: SharedClient
                self.client.set_experiment_tag(found.experiment_id, NOTE_TAG, description)
            return found.experiment_id
        except STORE_ERRORS as exc:
            raise store_error(self.uri, exc) from exc

    def start_run(
        self,
        experiment_id: str,
        name: str,
        parent: str | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
    ) -> str:
        tags = {**source_tags(), **(tags or {})}
        if parent:
            tags["mlflow.parentRunId"] = parent
        if description:
            tags["mlflow.note.content"] = description
        return self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def log(
        self,
        run_id: str,
        metrics: list[Metric] | dict[str, float] = (),
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """Everything in as few store writes as MLflow's per-call limits allow."""
        metrics = as_metrics(metrics) if isinstance(metrics, dict) else list(metrics)
        params_list = [Param(k, str(v)) for k, v in (params or {}).items()]
        tag_list = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        first = True
        while first or metrics or params_list:
            self.client.log_batch(
                run_id,
                metrics=metrics[:MAX_METRICS_PER_BATCH],
                params=params_list[:MAX_PARAMS_PER_BATCH],
                tags=tag_list if first else [],
            )
            metrics = metrics[MAX_METRICS_PER_BATCH:]
            params_list = params_list[MAX_PARAMS_PER_BATCH:]
            first = False

    def log_figure(self, run_id: str, figure: plt.Figure, path: str) -> None:
        self.client.log_figure(run_id, figure, path)
        plt.close(figure)

    def log_config(
        self,
        run_id: str,
        config: Any,
        split: Split,
        options: TrainOptions,
        params: dict[str, Any],
        inputs: list[DatasetInput] | None = None,
    ) -> None:
        """What a run trains: `params` as MLflow params, the whole config as `config.json`,
        the split as dataset inputs (`inputs`: prepared once by a caller with many runs)."""
        tags = {
            "arch": config.arch,
            "dataset": split.dataset,
            "split": split.name,
            "data_sha256": split.data_sha256,
            **environment_tags(),
        }
        self.log(run_id, params=params, tags=tags)
        text = json.dumps(run_config(config, split, options), indent=2, default=str)
        self.client.log_text(run_id, text, "config.json")
        self.client.log_inputs(run_id, datasets=split_inputs(split) if inputs is None else inputs)

    def log_training(
        self,
        run_id: str,
        result: TrainResult,
        split: Split,
        options: TrainOptions,
        params: dict[str, Any] | None = None,
        figure: bool = True,
        config_logged: bool = False,
    ) -> None:
        """Log one training: one batched write plus artifact files.

        Unless `config_logged` (a sweep trial logs its sampled values when it starts), the
        config's fields, the split's provenance, the options and `params` become params.
        figure=False skips the loss-curve PNG (sweep trials: the UI plots the curves anyway).
        """
        if not config_logged:
            all_params = {
                **config_params(result.config),
                **split.provenance,
                "seed": options.seed,
                "engine": options.engine,
                "jit_compile": options.jit_compile,
                "sparse_updates": options.sparse_updates,
                **(params or {}),
            }
            self.log_config(run_id, result.config, split, options, all_params)
        curves = loss_named(result.history, options.trained_loss(result.config))
        self.log(run_id, curves_to_metrics(curves) + as_metrics(result.final_metrics()))
        for name, table in result.embedding_tables.items():
            self.client.log_text(
                run_id, table.to_csv(index_label="stat"), f"embeddings/{name}_stats.csv"
            )
        self.client.log_text(run_id, _model_summary(result), "model_summary.txt")
        if figure:
            title = f"{result.config.arch} on {split.dataset} {split.name}"
            self.log_figure(run_id, loss_curve_figure(result.history, title), "loss_curve.png")
