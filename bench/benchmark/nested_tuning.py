"""Nested tuning: each fold's config is tuned on that fold's training part only.

For every fold and architecture, an ordinary Optuna study (in the same storage, its trials
nested MLflow runs) tunes on a validation part carved from the fold's training part; the
best validation trial's config is then retrained by the benchmark on the fold's whole
training part and scored once on its test part. No test rating of a fold is ever seen by
its tuning. A study that already finished its budget is reused, so a rerun of the same
job is cheap and gives the same configs; one that a killed job left short is topped up to
its budget (trials that completed or were pruned count; failed and killed ones run again).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import optuna

from bench.archs import ARCHS, get_arch
from bench.benchmark.processes import Piece, run_all
from bench.benchmark.spec import Budget
from bench.data import RatingData, Split, make_split
from bench.datasets import get_dataset
from bench.errors import BenchError
from bench.sweep.settings import SweepSettings
from bench.sweep.shared import space_version
from bench.sweep.storage.backends import open_storage
from bench.sweep.workers import run_study
from bench.tracking.environment import code_version
from bench.training.tasks import get_task

DONE = "nested_budget_done"
NESTED_TRIALS_PER_PROCESS = 10
NESTED_EXPERIMENT = "nested-tuning"
SPENT = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)  # of a budget


@dataclass(frozen=True)
class Tuned:
    """A fold's chosen config and where it came from."""

    config: Any
    provenance: dict[str, Any]
    trial0: Any = None  # the config of trial 0 (the published settings), if it completed


def study_name(dataset: str, fold: str, arch: str, seed: int, budget: Budget) -> str:
    """One study per fold, architecture (or peer), seed, budget and search space: a changed
    space starts new studies instead of reusing configs from the old one."""
    label = get_dataset(dataset).label
    name = f"nested-{label}-{fold}-{arch}-s{seed}-{budget.digest()}"
    if arch not in ARCHS:  # a peer: its space is scikit-surprise's (bench.benchmark.peers)
        return name
    return f"{name}-{space_version(get_arch(arch)).rsplit('-', 1)[-1][:6]}"


def tuning_split(data: RatingData, fold: Split, seed: int, budget: Budget) -> Split:
    """The fold's training part cut into training and validation, with an EMPTY test part:
    tuning neither trains on, selects on, nor even scores the fold's test ratings."""
    base = "seed" if fold.name.startswith("seed") else fold.name
    split_seed = int(fold.name.removeprefix("seed")) if base == "seed" else seed
    split = make_split(data, base, seed=split_seed, valid_fraction=budget.valid_fraction)
    if len(split.train) + len(split.valid) != len(fold.train):
        raise BenchError(f"{fold.name}: the tuning split does not cover the fold's training part")
    return replace(split, test=split.test.iloc[:0])


def _settings(arch: str, split: Split, name: str, seed: int, budget: Budget, stores):
    storage, tracking_uri = stores
    return SweepSettings(
        arch=arch,
        dataset=split.dataset,
        n_trials=budget.trials,
        timeout=budget.timeout,
        split=split.name,
        seed=seed,
        valid_fraction=budget.valid_fraction,
        pruner=budget.pruner,
        metric=budget.metric,
        task=budget.task,
        sampler=budget.sampler,
        patience=budget.patience,
        max_epochs=budget.max_epochs,
        storage=storage,
        tracking_uri=tracking_uri,
        study_name=name,
        experiment=NESTED_EXPERIMENT,  # one experiment for every fold's study, not one each
        resumable=False,  # finished is finished: a rerun reuses it (see short_line)
        register_champion=False,  # a fold's tuning study: the benchmark registers its own
        # trials in recycled worker processes: TensorFlow's native memory of hundreds of
        # compiled structures stays out of the benchmark's own process (which crashed in
        # libgcc's unwinder at 6.3 GB after 300 in-process trials, measured)
        trials_per_process=NESTED_TRIALS_PER_PROCESS,
    )


def tune(
    data: RatingData, fold: Split, arch: str, seed: int, budget: Budget, stores: tuple[str, str]
) -> Tuned:
    """Tune `arch` on `fold`'s training part (or reuse a finished study); its best config."""
    name = study_name(fold.dataset, fold.name, arch, seed, budget)
    study = _existing(name, stores[0])
    if study is None or not study.user_attrs.get(DONE):
        if (left := budget.trials - _spent(study)) > 0:
            split = tuning_split(data, fold, seed, budget)
            settings = _settings(arch, split, name, seed, budget, stores)
            study = run_study(replace(settings, n_trials=left), split)
        study.set_user_attr(DONE, True)
    best = study.best_trial
    finished = [t for t in study.trials if t.state.is_finished()]
    first = study.trials[0] if study.trials else None
    provenance = {
        "study": name,
        "trial": best.number,
        "start": best.user_attrs.get("baseline"),  # "post", a prior's label, or None (drawn)
        "metric": f"val_{budget.metric}",
        "value": best.value,
        "trial0_value": first.value if first is not None and first.value is not None else None,
        "trials": len(finished),
        "budget": asdict(budget),
        "commit": code_version(),  # the commit, + a digest of local edits; else the version
    }
    complete = first is not None and first.state == optuna.trial.TrialState.COMPLETE
    task = get_task(budget.task)
    trial0 = task.from_trial(get_arch(arch), first, fold.scale) if complete else None
    return Tuned(task.from_trial(get_arch(arch), best, fold.scale), provenance, trial0)


def tune_all(
    data: RatingData, splits: list[Split], archs: list[str], seed: int, budget: Budget,
    stores: tuple[str, str], workers: int = 1,
) -> dict[tuple[str, str], Tuned]:  # fmt: skip
    """Every (fold, architecture) study, by (fold, arch): one after another, or `workers`
    at a time, each in a process of its own (`tuning_pieces`)."""
    return run_all(tuning_pieces(data, splits, archs, seed, budget, stores), workers, "tuning it")


def tuning_pieces(
    data: RatingData, splits: list[Split], archs: list[str], seed: int, budget: Budget,
    stores: tuple[str, str],
) -> dict[tuple[str, str], Piece]:  # fmt: skip
    """Each (fold, architecture) study as a piece to run (`bench.benchmark.processes`). A
    study's trials run one after another in its own sampler stream, so the configs chosen
    do not depend on how many studies run at once."""
    return {(s.name, a): (tune, (data, s, a, seed, budget, stores)) for s in splits for a in archs}


def top_configs(storage: str, name: str, arch: str, m: int) -> tuple[tuple[str, Any], ...]:
    """The `m` best completed trials of study `name` as (label, config), best first (ties:
    the earlier trial); a trial whose config repeats a better one's is passed over."""
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    members: list[tuple[str, Any]] = []
    for trial in sorted(done, key=lambda t: (sign * t.value, t.number)):
        config = get_arch(arch).from_trial(trial)
        if len(members) < m and all(config != kept for _, kept in members):
            members.append((f"{arch}#{trial.number}", config))
    return tuple(members)


def short_line(fold: str, name: str, origin: dict, budget: Budget) -> str | None:
    """One line if the study stopped before the budget's trial count, else None."""
    if origin["trials"] >= budget.trials:
        return None
    return (
        f"{fold}: {name} stopped at its {budget.timeout:g} s timeout after {origin['trials']} "
        f"of {budget.trials} trials, so its config depends on this machine's speed "
        "(--tune-timeout 0: no timeout)"
    )


def _existing(name: str, storage: str) -> optuna.Study | None:
    """The study of that name, finished or left short by a killed job; None if there is none."""
    try:
        return optuna.load_study(study_name=name, storage=open_storage(storage))
    except KeyError:
        return None


def _spent(study: optuna.Study | None) -> int:
    """The trials of a study's budget it holds already: completed or pruned ones (a failed
    or killed trial is run again, so an interrupted job chooses from as many trials as an
    uninterrupted one)."""
    if study is None:
        return 0
    return len(study.get_trials(deepcopy=False, states=SPENT))
