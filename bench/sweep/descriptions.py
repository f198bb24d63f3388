"""The words a person reads in MLflow: run descriptions and registered-model descriptions.

MLflow shows a run's description (tag `mlflow.note.content`, Markdown) at the top of the
run page. A study's parent run says what the study tunes, how, within which budget and, once
it ends, which trial won; a trial run says its state, its objective value and how that value
is computed.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from bench.archs import Arch
from bench.sweep.samplers import PRUNERS, SAMPLERS
from bench.sweep.settings import SweepSettings
from bench.sweep.storage.urls import redact_text
from bench.training.tasks import get_task

NAME_SUFFIX = {"PRUNED": " (pruned)", "FAIL": " (failed)"}


def trial_run_name(number: int, state: str = "") -> str:
    """A trial's run name in the runs table: pruned and failed trials say so."""
    return f"trial-{number:04d}{NAME_SUFFIX.get(state, '')}"


RESULT_HEADING = "## Result"
SPACE_SAMPLES = 64  # random draws to reach the conditional parameters of a space
OBJECTIVE_WHY = (
    "The epoch a trial keeps is its best one under early stopping (its weights are restored "
    "before the test part is scored and the model logged and served), its last without it "
    "(`--patience 0`), so the objective describes the model one gets."
)


def _patience(patience: int | None) -> str:
    if patience is None:
        return "off (every trial trains its epochs)"
    return f"after {patience} epochs without a better validation figure, best epoch kept"


def command_line() -> str:
    """This process's command line, with the password of any URL in it redacted."""
    return redact_text(shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv]))


def search_space(
    arch: Arch, max_epochs: int, task: str = "rating"
) -> dict[str, tuple[BaseDistribution, bool]]:
    """Each parameter's distribution and whether every config has it (False: conditional),
    found by drawing configs at random from the space (no training)."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        draws = []
        for _ in range(SPACE_SAMPLES):
            trial = study.ask()
            get_task(task).suggest(arch, trial, max_epochs)
            draws.append(trial.distributions)
    finally:
        optuna.logging.set_verbosity(verbosity)
    names = dict.fromkeys(name for draw in draws for name in draw)
    return {
        name: (
            next(d[name] for d in draws if name in d),
            all(name in draw for draw in draws),
        )
        for name in names
    }


def describe_distribution(distribution: BaseDistribution) -> str:
    if isinstance(distribution, CategoricalDistribution):
        return "one of " + ", ".join(map(str, distribution.choices))
    if isinstance(distribution, FloatDistribution | IntDistribution):
        scale = " (log scale)" if distribution.log else ""
        return f"{distribution.low:g}..{distribution.high:g}{scale}"
    return str(distribution)


def space_lines(space: Mapping[str, tuple[BaseDistribution, bool]]) -> list[str]:
    return [
        f"- `{name}`: {describe_distribution(dist)}{'' if always else ' (conditional)'}"
        for name, (dist, always) in space.items()
    ]


def study_description(settings: SweepSettings, arch: Arch, provenance: Mapping[str, Any]) -> str:
    """The parent run's description when the study is created."""
    max_epochs = settings.max_epochs or arch.max_epochs
    timeout = (
        f"{settings.timeout:g} s (the trial in flight finishes)" if settings.timeout else "none"
    )
    cap = f", epochs capped at {settings.max_epochs}" if settings.max_epochs else ""
    metric = f"val_{settings.metric}"
    lines = [
        f"Optuna study **{settings.name}** tunes `{arch.name}`, {arch.description}, on "
        f"{settings.dataset}, split `{settings.split}` (seed {settings.seed}; validation = "
        f"{settings.valid_fraction:.0%} of the training part: {provenance.get('n_train')} "
        f"training, {provenance.get('n_valid')} validation, {provenance.get('n_test')} test "
        f"ratings).",
        "",
        f"Started with: `{command_line()}`",
        "",
        f"**Task**: {settings.task}: {get_task(settings.task).description}.",
        "",
        f"**Objective**: {_verb(settings)} `{metric}`, the validation {settings.metric.upper()} "
        f"at the epoch a trial keeps. {OBJECTIVE_WHY} Test metrics are logged for every "
        f"completed trial but never shown to Optuna.",
        "",
        f"**Budget**: {settings.n_trials} trials per invocation, timeout {timeout}{cap}, "
        f"{settings.workers} worker(s). Sampler: {SAMPLERS[settings.sampler].description}. "
        f"Pruning: {PRUNERS[settings.pruner].description}. Early stopping: "
        f"{_patience(settings.patience)}.",
        "",
        "**Search space** (trial 0 is the published settings):",
        "",
        *space_lines(search_space(arch, max_epochs, settings.task)),
        "",
        RESULT_HEADING,
        "",
        "Not yet: the study is running; this part is written when it ends.",
    ]
    return "\n".join(lines)


def _verb(settings: SweepSettings) -> str:
    """What the study does to its metric: minimise or maximise."""
    return "minimise" if settings.direction == "minimize" else "maximise"


def experiment_description(settings: SweepSettings) -> str:
    """The experiment page's text: what the study is and how to read its runs."""
    if settings.experiment:
        return SHARED_EXPERIMENT
    return (
        f"Optuna study **{settings.name}**: tunes `{settings.arch}` on {settings.dataset}, "
        f"split `{settings.split}`, {_verb(settings)[:-1]}ing validation "
        f"{settings.metric.upper()} ({settings.task} task). The "
        f"parent run `study-{settings.name}` holds the study's description, its best "
        f"figures (under the trials' metric names), plots and `trials.csv`; expand it (the + "
        f"beside its name) for one nested run per trial. The best trial is named "
        f"`trial-NNNN (best)` and tagged `best_trial=true`. Test metrics are logged for "
        f"every completed trial and never shown to Optuna."
    )


SHARED_EXPERIMENT = (
    "Several Optuna studies (`--experiment`): one parent run `study-NAME` per study, each "
    "with its description, best figures (under the trials' metric names), plots and "
    "`trials.csv`; expand a parent (the + beside its name) for one nested run per trial. "
    "Filter with `tags.study = 'NAME'` (a study's runs) or `tags.arch = 'mf'` (its parent); "
    "the parents compare in one table. "
    "The best trial of each study is named `trial-NNNN (best)` and tagged "
    "`best_trial=true`. Test metrics are logged for every completed trial and never shown "
    "to Optuna."
)


def with_result(description: str, result: str) -> str:
    """`description` with its result part replaced by `result`."""
    head = description.split(RESULT_HEADING, 1)[0].rstrip()
    return f"{head}\n\n{RESULT_HEADING}\n\n{result}" if head else f"{RESULT_HEADING}\n\n{result}"


def study_result(summary: Mapping[str, Any], metric: str, champion: str | None) -> str:
    """The result part of a finished study's description."""
    counts = ", ".join(
        f"{summary[key]} {key.removeprefix('n_')}" for key in summary if key.startswith("n_")
    )
    if "best_trial" not in summary:
        return f"Trials: {counts or 'none'}. No trial completed, so there is no best trial."
    test = summary.get("best_test_mae")
    lines = [
        f"Trials: {counts}.",
        "",
        f"**Best trial: {summary['best_trial']}** (`trial-{summary['best_trial']:04d}`), "
        f"{metric} = {summary['best_val']:.4f}"
        + (f" (its test_mae: {test:.4f}, not used to select it)." if test is not None else "."),
    ]
    if champion:
        lines += ["", f"Its model is registered as {champion}."]
    return "\n".join(lines)


def trial_running(number: int, study: str) -> str:
    return f"Trial {number} of study **{study}**: running."


def trial_description(
    number: int,
    study: str,
    state: str,
    metric: str,
    values: list[float],
    planned_epochs: int,
    detail: str = "",
    kept: int | None = None,
) -> str:
    """A finished trial's description: state, objective value and how it was computed.

    `values`: the validation metric per epoch run; `detail`: the pruner or the error;
    `kept`: the index of the epoch early stopping kept (None: the last).
    """
    lines = [f"Trial {number} of study **{study}**: **{state}**."]
    if state == "COMPLETE":
        at = len(values) - 1 if kept is None else kept
        how = (
            f"after the last epoch ({len(values)} of {planned_epochs})"
            if kept is None
            else f"at epoch {at + 1}, the best of the {len(values)} trained (of "
            f"{planned_epochs}), kept by early stopping"
        )
        lines.append(
            f"Objective `{metric}` = {values[at]:.4f}: the validation metric {how}. {OBJECTIVE_WHY}"
        )
    elif state == "PRUNED":
        last = f" (`{metric}` then {values[-1]:.4f})" if values else ""
        lines.append(
            f"Stopped after epoch {len(values)} of {planned_epochs}{last} by {detail}; a pruned "
            f"trial has no objective value and no test metrics."
        )
    else:
        lines.append(f"Failed after {len(values)} of {planned_epochs} epochs: {detail}")
    return "\n\n".join(lines)


def champion_description(study: str, trial: int, metric: str, value: float) -> str:
    return (
        f"Best trial of study {study}: trial {trial}, {metric} = {value:.4f} (validation part, "
        f"at the epoch the trial kept: its best under early stopping). Trained on the "
        f"study's training part; takes raw user and item ids."
    )


def benchmark_model_description(arch: str, source: str, fold: str, run_name: str) -> str:
    return (
        f"{arch} from the benchmark run {run_name}: config from {source}, trained on fold "
        f"{fold}'s training part (the first fold; not selected on test). Takes raw user and "
        f"item ids."
    )


def benchmark_description(source: str, folds: list[str], models: list[str]) -> str:
    return "\n".join(
        [
            f"Fold-wise benchmark of {', '.join(models)} on folds {', '.join(folds)}: each "
            f"model is trained on a fold's whole training part and scored on its test part "
            f"(child runs `MODEL-FOLD`, metrics named as in sweeps: `test_mae`, ...).",
            "",
            f"Configs from {source}. Started with: `{command_line()}`",
            "",
            "The report (tables, paired comparisons, the regression gate, figures) is the "
            "artifact `report.html` (`report.md` and `results.csv` beside it). Each learnt "
            "model of the first fold is registered as `recsys-ARCH-DATASET`, alias "
            "`benchmark`.",
        ]
    )
