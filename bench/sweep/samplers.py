"""The samplers and pruners a study can use, registered by name with a one-line description.

Each sampler is seeded per sampler stream (invocation, worker, process generation), so no
two samplers draw the same sequence: a joining invocation, a second worker or a recycled
worker process with the first one's seed would repeat its random start-up trials.
"""

from __future__ import annotations

import importlib.util
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import optuna

from bench.errors import BenchError
from bench.sweep.shared import sampler_seed

SMALL_BUDGET_STARTUP = 4  # random trials before TPE models the space (after trial 0)
MEDIAN_STARTUP_TRIALS = 5
WARMUP_EPOCHS = 3  # epochs every trial runs before a pruner may stop it


@dataclass(frozen=True)
class Entry:
    """One registered sampler or pruner: how to build it, in words, and what it needs."""

    build: Callable[..., object]
    description: str
    needs: str | None = None  # a module that must be importable (an optional dependency)


def _tpe_small(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=SMALL_BUDGET_STARTUP,
        multivariate=True,
        group=True,  # conditional spaces: one model per group of co-occurring parameters
        constant_liar=True,  # parallel workers do not all draw the same point
        warn_independent_sampling=False,
    )


SAMPLERS: dict[str, Entry] = {
    "random": Entry(lambda seed: optuna.samplers.RandomSampler(seed=seed), "random search"),
    "tpe": Entry(
        lambda seed: optuna.samplers.TPESampler(seed=seed),
        "Optuna's TPE as it ships (10 random start-up trials, independent per parameter)",
    ),
    "tpe-small": Entry(
        _tpe_small,
        f"TPE for small budgets: {SMALL_BUDGET_STARTUP} random start-up trials, multivariate, "
        "grouped for conditional parameters, constant liar for parallel workers",
    ),
    "qmc": Entry(
        lambda seed: optuna.samplers.QMCSampler(
            seed=seed, scramble=True, warn_independent_sampling=False
        ),
        "scrambled Sobol quasi-random points (conditional parameters drawn at random)",
    ),
    "cmaes": Entry(
        lambda seed: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
        "CMA-ES on the numeric parameters (categorical ones drawn at random)",
        needs="cmaes",
    ),
    "gp": Entry(
        lambda seed: optuna.samplers.GPSampler(seed=seed),
        "Gaussian-process Bayesian optimisation",
        needs="torch",
    ),
}

PRUNERS: dict[str, Entry] = {
    "none": Entry(lambda max_epochs: optuna.pruners.NopPruner(), "no pruner"),
    "median": Entry(
        lambda max_epochs: optuna.pruners.MedianPruner(
            n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=WARMUP_EPOCHS
        ),
        "the median pruner (stops a trial whose validation metric at an epoch is worse than "
        f"the median of earlier trials at that epoch, after {MEDIAN_STARTUP_TRIALS} trials "
        f"and {WARMUP_EPOCHS} epochs)",
    ),
    "sha": Entry(
        lambda max_epochs: optuna.pruners.SuccessiveHalvingPruner(min_resource=WARMUP_EPOCHS),
        "successive halving over epochs (asynchronous, from "
        f"{WARMUP_EPOCHS} epochs, keeping the best third at each rung)",
    ),
    "hyperband": Entry(
        lambda max_epochs: optuna.pruners.HyperbandPruner(
            min_resource=WARMUP_EPOCHS, max_resource=max_epochs
        ),
        "the Hyperband pruner (successive halving over epochs, several brackets)",
    ),
}


def require(kind: str, name: str) -> Entry:
    """The registered sampler or pruner `name`, its optional dependency present; else one
    `BenchError` line saying what to do."""
    return _entry(SAMPLERS if kind == "sampler" else PRUNERS, kind, name)


def _entry(table: dict[str, Entry], kind: str, name: str) -> Entry:
    entry = table.get(name)
    if entry is None:
        raise BenchError(f"unknown {kind} {name!r}; choose one of {', '.join(table)}")
    if entry.needs and importlib.util.find_spec(entry.needs) is None:
        raise BenchError(
            f"the {name} {kind} needs the Python package {entry.needs!r}: pip install {entry.needs}"
        )
    return entry


def split_stream(split: str) -> int:
    """A stable number per split, so studies of different folds draw different streams (the
    folds of a nested benchmark would otherwise try the same random configurations)."""
    return zlib.crc32(split.encode())


def make_sampler(seed: int, stream: tuple, name: str = "tpe") -> optuna.samplers.BaseSampler:
    """The named sampler, seeded for this sampler stream."""
    return _entry(SAMPLERS, "sampler", name).build(sampler_seed(seed, stream))


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    """The named pruner, for trials of at most `max_epochs` epochs."""
    return _entry(PRUNERS, "pruner", name).build(max_epochs)


def available(table: dict[str, Entry]) -> list[str]:
    """The names whose optional dependency is installed."""
    return [n for n, e in table.items() if not e.needs or importlib.util.find_spec(e.needs)]
