"""Record training runs in MLflow: params, provenance tags, per-epoch curves, artifacts.

The tracking URI is the `--tracking-uri` flag, else $MLFLOW_TRACKING_URI, else a SQLite
file `mlflow.db` in the working directory. Per-epoch metrics go in `log_batch` calls, not
one write per value (a SQLite store manages about 100 writes per second).
"""

from __future__ import annotations

import functools
import io
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from sqlalchemy.exc import SQLAlchemyError  # noqa: E402

from bench.config import DEFAULT_TRACKING_URI, TrainOptions, config_params  # noqa: E402
from bench.data import Split  # noqa: E402
from bench.errors import BenchError  # noqa: E402
from bench.train import TrainResult  # noqa: E402

MAX_METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call (params: 100)
PACKAGES = ("tensorflow", "keras", "optuna", "mlflow", "numpy", "pandas", "scikit-learn")


def resolve_tracking_uri(flag: str | None = None) -> str:
    return flag or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def setup(experiment: str, tracking_uri: str | None = None) -> str:
    """Point MLflow at the store and experiment; returns the experiment id."""
    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.set_experiment(experiment).experiment_id
    except (MlflowException, OSError, SQLAlchemyError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise BenchError(
            f"cannot open the MLflow store {uri!r} ({reason}); pass --tracking-uri or set "
            f"MLFLOW_TRACKING_URI to a writable store such as sqlite:///mlflow.db"
        ) from exc


def _git_commit() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


@functools.cache
def environment_tags() -> dict[str, str]:
    """Package versions, git commit and machine: what a number depends on besides config."""
    tags = {f"version.{name}": _version(name) for name in PACKAGES}
    tags.update(
        {
            "version.python": platform.python_version(),
            "git_commit": _git_commit(),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "cpu_count": str(os.cpu_count()),
        }
    )
    return tags


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


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


def log_batch(
    run_id: str,
    metrics: list[Metric] = (),
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """Everything in as few store writes as MLflow's per-call limits allow."""
    client = MlflowClient()
    metrics = list(metrics)
    first = True
    while first or metrics:
        client.log_batch(
            run_id,
            metrics=metrics[:MAX_METRICS_PER_BATCH],
            params=[Param(k, str(v)) for k, v in (params or {}).items()] if first else [],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()] if first else [],
        )
        metrics = metrics[MAX_METRICS_PER_BATCH:]
        first = False


def log_metrics(run_id: str, values: dict[str, float], step: int = 0) -> None:
    log_batch(run_id, as_metrics(values, step))


def loss_curve_figure(history: dict[str, list[float]], title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    epochs = range(1, len(history["train_loss"]) + 1)
    ax.plot(epochs, history["train_loss"], label="train loss")
    if history.get("val_loss"):
        ax.plot(epochs, history["val_loss"], label="validation loss")
    ax.set(yscale="log", xlabel="Epoch", ylabel="Loss", title=title)
    ax.legend()
    return fig


def _model_summary(result: TrainResult) -> str:
    buffer = io.StringIO()
    result.model.summary(print_fn=lambda line, **_: buffer.write(line + "\n"))
    return buffer.getvalue()


def log_training(
    result: TrainResult,
    split: Split,
    options: TrainOptions,
    params: dict[str, Any] | None = None,
    figure: bool = True,
) -> None:
    """Log one training into the active MLflow run: one batched write plus artifact files.

    figure=False skips the loss-curve PNG (sweep trials: the UI plots the curves anyway).
    """
    run_id = mlflow.active_run().info.run_id
    all_params = {
        **config_params(result.config),
        **split.provenance,
        "seed": options.seed,
        "engine": options.engine,
        "jit_compile": options.jit_compile,
        **(params or {}),
    }
    tags = {
        "arch": result.config.arch,
        "split": split.name,
        "data_sha256": split.data_sha256,
        **environment_tags(),
    }
    log_batch(
        run_id,
        curves_to_metrics(result.history) + as_metrics(result.final_metrics()),
        all_params,
        tags,
    )
    client = MlflowClient()
    for name, table in result.embedding_tables.items():
        client.log_text(run_id, table.to_csv(index_label="stat"), f"embeddings/{name}_stats.csv")
    client.log_text(run_id, _model_summary(result), "model_summary.txt")
    if figure:
        fig = loss_curve_figure(result.history, f"{result.config.arch} on {split.name}")
        client.log_figure(run_id, fig, "loss_curve.png")
        plt.close(fig)
