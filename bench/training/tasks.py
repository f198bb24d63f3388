"""The two halves of a recommender's job, as entries of one registry: predict the ratings
people give ("rating"), or rank the items they will choose ("ranking").

A task names what differs and nothing else (see docs/architecture.md): the metric a study
selects on by default (its direction is the metric's own, `bench.metrics`), the part of a
trial's search space it adds, the architecture parameters it fixes, and how a trial's
parameters become `TrainOptions.ranking`. Architectures stay task-free: ranking removes a
rating head through `Arch.logit_fields` in `bench.training.train`. One `Task` entry in
`TASKS` adds another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError
from bench.metrics import BY_NAME, RatingScale
from bench.training.options import RankingSetup, TrainOptions

if TYPE_CHECKING:
    import optuna

NEGATIVES = (1, 16)  # negatives per positive: drawn on a log scale
POSITIVES = ("all", "relevant")  # every rating is a positive, or those >= the scale's relevant


@dataclass(frozen=True)
class Task:
    """A registered task: its default selection metric, the metrics' kind, the search
    space it adds, the architecture parameters it fixes, and its training setup."""

    name: str
    metric: str  # the default selection metric (a tunable metric of bench.metrics)
    kind: str  # the kind of metric it selects on (Metric.kind)
    space: Callable[[optuna.Trial], dict[str, Any]]  # the task's own parameters
    setup: Callable[[Mapping[str, Any], RatingScale], RankingSetup | None]
    fixed: Mapping[str, Any]  # architecture parameters the task does not search
    defaults: Mapping[str, Any]  # its parameters for a published (untuned) config
    reference: str  # the baseline a benchmark compares every model with
    description: str

    def suggest(self, arch, trial: optuna.Trial, max_epochs: int) -> Any:
        """The architecture's config of this trial (the fixed parameters not drawn), then the
        task's own parameters drawn on the same trial."""
        config = arch.suggest(_Fixing(trial, self.fixed), max_epochs)
        self.space(trial)
        return config

    def config(self, arch, params: Mapping[str, Any]) -> Any:
        """A config from a trial's parameters (the task's fixed ones added back)."""
        return arch.from_params({**params, **self.fixed})

    def from_trial(self, arch, trial, scale: RatingScale) -> Any:
        """The entry a finished trial chose: its config for the epochs it kept, with the
        task's setup (`RankedConfig`) where the task has one."""
        config = arch.from_trial(trial, self.fixed)
        setup = self.setup(trial.params, scale)
        return config if setup is None else RankedConfig(config, setup)

    def options(self, base: TrainOptions, params: Mapping[str, Any], scale) -> TrainOptions:
        """`base` with this task's training setup for a trial's parameters."""
        return dataclasses.replace(base, ranking=self.setup(params, scale))

    def metrics(self) -> tuple[str, ...]:
        """The metrics a study of this task may select on."""
        return tuple(m.name for m in BY_NAME.values() if m.tunable and m.kind == self.kind)


@dataclass(frozen=True)
class RankedConfig:
    """An architecture's config trained for the ranking task with `setup` (a benchmark's
    tuned entry: what a fold refits)."""

    config: Any
    setup: RankingSetup

    @property
    def arch(self) -> str:
        return self.config.arch

    @property
    def loss(self) -> str:
        return self.setup.loss

    def report_fields(self) -> dict[str, Any]:
        """The config's fields, then the ranking setup's (`ranking_` before each name)."""
        ranking = {f"ranking_{k}": v for k, v in dataclasses.asdict(self.setup).items()}
        return {**vars(self.config), **ranking}

    def flat_params(self) -> dict[str, Any]:
        """MLflow params: the config's and the setup's (`bench.archs.config_params`)."""
        return {"arch": self.arch, **self.report_fields()}


class _Fixing:
    """A trial whose categorical parameters in `fixed` are not drawn but given."""

    def __init__(self, trial: optuna.Trial, fixed: Mapping[str, Any]):
        self.trial, self.fixed = trial, fixed

    def suggest_categorical(self, name: str, choices):
        if name in self.fixed:
            return self.fixed[name]
        return self.trial.suggest_categorical(name, choices)

    def __getattr__(self, name: str):
        return getattr(self.trial, name)


def _ranking_space(trial: optuna.Trial) -> dict[str, Any]:
    """The ranking loss, negatives per positive, their sampler, which ratings are positives."""
    return {
        "ranking_loss": trial.suggest_categorical("ranking_loss", ["bpr", "bce"]),
        "negatives": trial.suggest_int("negatives", *NEGATIVES, log=True),
        "sampler": trial.suggest_categorical("sampler", ["uniform", "popularity"]),
        "positives": trial.suggest_categorical("positives", POSITIVES),
    }


def _ranking_setup(params: Mapping[str, Any], scale: RatingScale) -> RankingSetup:
    """The training setup of a ranking trial's parameters."""
    lowest = scale.relevant if params["positives"] == "relevant" else None
    return RankingSetup(params["ranking_loss"], int(params["negatives"]), params["sampler"], lowest)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "rating", "mae", "rating", lambda trial: {}, lambda params, scale: None, {}, {},
            "bias", "predict the rating a user gives an item (MAE/RMSE, lower is better)",
        ),
        Task(
            "ranking", "ndcg_at_10", "ranking", _ranking_space, _ranking_setup,
            {"loss": "mse"},  # the rating loss: no part of a ranking step
            {"ranking_loss": "bpr", "negatives": 4, "sampler": "uniform", "positives": "all"},
            "popularity",
            "rank the items a user has not rated: trained on positives and sampled negatives "
            "(BPR or BCE), selected on NDCG@10 of every unrated item (higher is better)",
        ),
    )
}  # fmt: skip


def get_task(name: str) -> Task:
    return TASKS[name]


def task_metric(task: str, metric: str | None) -> str:
    """The metric a study of `task` selects on: `metric` (one of the task's, else one error
    line), or the task's default."""
    entry = get_task(task)
    if metric is None:
        return entry.metric
    if metric not in entry.metrics():
        raise BenchError(
            f"--metric {metric} does not measure the {task} task; pick one of "
            f"{', '.join(entry.metrics())} or pass another --task"
        )
    return metric
