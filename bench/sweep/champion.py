"""The champion of a registered model moves only up.

A study's best model is registered as a version of `recsys-ARCH-DATASET`, tagged with what it
was selected on (`validation.*`: the data set and its checksum, the split's kind, seed and
validation fraction, the metric and its value). Alias `champion` moves to it only when there
is no champion yet or the champion was selected on the same validation with a higher (worse)
value; otherwise the version stays registered without the alias and one line says why (a
smoke sweep's model is never served by `models:/…@champion` in place of a better one).
"""

from __future__ import annotations

import optuna
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial

from bench.datasets import get_dataset
from bench.metrics import lower_is_better
from bench.sweep.descriptions import champion_description
from bench.sweep.progress import say
from bench.tracking.serving import (
    CHAMPION,
    RANKING_DESCRIPTION,
    RATING_MODEL_TAG,
    REGISTERED_DESCRIPTION,
    register_champion,
    registered_name,
)

MISSING = ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)
INVALID = ErrorCode.Name(INVALID_PARAMETER_VALUE)


def register_best(
    client: MlflowClient, study: optuna.Study, best: FrozenTrial, metric: str
) -> str | None:
    """Register the best trial's logged model as a version of `recsys-ARCH-DATASET`, tagged
    with what it was selected on, and move alias `champion` to it unless the champion is as
    good on the same validation or was selected on another (then one line says so); returns
    a sentence naming it (None: the trial logged no model)."""
    trial_run = best.user_attrs.get("mlflow_run_id")
    run = client.get_run(trial_run) if trial_run else None
    uri = run.data.tags.get(RATING_MODEL_TAG) if run else None
    arch = study.user_attrs.get("arch")
    if not uri or not arch:
        return None
    attrs = study.user_attrs
    label = get_dataset(attrs.get("dataset", "ml-100k")).label
    name = registered_name(arch, label, attrs.get("task", "rating"))
    description = champion_description(study.study_name, best.number, metric, best.value)
    current = _champion(client, name)
    about = (
        REGISTERED_DESCRIPTION if attrs.get("task", "rating") == "rating" else RANKING_DESCRIPTION
    )
    version = register_champion(client, uri, name, description, None, about)
    record = validation_record(study, best, metric, run.data.tags.get("data_sha256"))
    tags = {"source": "sweep", "study": study.study_name, "trial": best.number, **record}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    return _move_champion(client, study.study_name, name, version, current, record)


def _move_champion(
    client: MlflowClient,
    study: str,
    name: str,
    version: str,
    current: ModelVersion | None,
    record: dict[str, str],
) -> str:
    """Alias `champion` moved to `version`, or left with one line why; a sentence saying
    which (for the parent run's description)."""
    kept = kept_champion(current, version, record)
    if kept:
        line = f"`{name}` version {version} registered; alias `{CHAMPION}` stays on "
        line += f"version {current.version}: {kept}"
        say(f"{study}: {line}")
        return line
    client.set_registered_model_alias(name, CHAMPION, version)
    return (
        f"`{name}` version {version}, alias `{CHAMPION}`: "
        f'`mlflow.pyfunc.load_model("models:/{name}@{CHAMPION}")` predicts from raw ids'
    )


RECORD = "validation."  # the prefix of a version's tags that say what it was selected on
VALUE_TAG = f"{RECORD}value"


def validation_record(
    study: optuna.Study, best: FrozenTrial, metric: str, data_sha256: str | None
) -> dict[str, str]:
    """What the best trial was selected on, as version tags: the data (set and checksum),
    the split (kind, seed, validation fraction), the metric and its value."""
    attrs = study.user_attrs
    record = {
        "dataset": attrs.get("dataset", "ml-100k"),
        "data_sha256": data_sha256,
        "split": attrs.get("split"),
        "split_seed": attrs.get("seed"),
        "valid_fraction": attrs.get("valid_fraction"),
        "metric": metric,
        "value": repr(best.value),
    }
    return {f"{RECORD}{key}": str(value) for key, value in record.items()}


def _champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version alias `champion` of `name` points at; None without one."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in (MISSING, INVALID):  # no such model, no such alias
            return None
        raise


def kept_champion(current: ModelVersion | None, version: str, record: dict[str, str]) -> str:
    """Why alias `champion` stays on `current` rather than move to `version` (with
    validation `record`); empty when it moves: no champion yet, the same version, or a
    better validation value (in its metric's direction) on the same data, split and metric."""
    if current is None or str(current.version) == str(version):
        return ""
    theirs = current.tags
    if VALUE_TAG not in theirs:
        return (
            "it records no validation to compare with (registered before versions did, or "
            f"set by hand); to move it: MlflowClient().set_registered_model_alias("
            f"'{current.name}', '{CHAMPION}', '{version}')"
        )
    differ = [key for key in record if key != VALUE_TAG and theirs.get(key) != record[key]]
    if differ:
        what = ", ".join(
            f"{key.removeprefix(RECORD)} {theirs.get(key)} there, {record[key]} here"
            for key in differ
        )
        return f"it was selected on another validation ({what}), so the two do not compare"
    ours, best = float(record[VALUE_TAG]), float(theirs[VALUE_TAG])
    metric = record[f"{RECORD}metric"]
    lower = lower_is_better(metric.removeprefix("val_"))
    if (ours < best) if lower else (ours > best):
        return ""
    than = "below" if lower else "above"
    return (
        f"this study's best {metric} {ours:.4f} is not {than} its {best:.4f} on the same validation"
    )
