"""The samplers and pruners a study can use, registered by name with a one-line description.

Optuna loads when a sampler or pruner is built, not with this module: the commands' flags
list the names. Each sampler is seeded per sampler stream (invocation, worker, process
generation), so no two samplers draw the same sequence: a joining invocation, a second
worker or a recycled worker process with the first one's seed would repeat its random
start-up trials.
"""

from __future__ import annotations

import importlib.util
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.errors import BenchError

if TYPE_CHECKING:
    import optuna

SMALL_BUDGET_STARTUP = 4  # finished trials before TPE models the space (fixed starts count)
MEDIAN_STARTUP_TRIALS = 5
WARMUP_EPOCHS = 3  # epochs every trial runs before a pruner may stop it


@dataclass(frozen=True)
class Entry:
    """One registered sampler or pruner: how to build it, in words, and what it needs."""

    build: Callable[..., object]
    description: str
    needs: str | None = None  # a module that must be importable (an optional dependency)


def _sampler(name: str, **options: object) -> Callable[[int], object]:
    """A builder of Optuna's sampler `name` for a seed (Optuna loads when it is built)."""

    def build(seed: int) -> object:
        import optuna

        return getattr(optuna.samplers, name)(seed=seed, **options)

    return build


def _pruner(name: str, epochs_as: str | None = None, **options: object) -> Callable[[int], object]:
    """A builder of Optuna's pruner `name` for trials of at most max_epochs epochs, passed
    as `epochs_as` where the pruner wants it."""

    def build(max_epochs: int) -> object:
        import optuna

        epochs = {epochs_as: max_epochs} if epochs_as else {}
        return getattr(optuna.pruners, name)(**options, **epochs)

    return build


SAMPLERS: dict[str, Entry] = {
    "random": Entry(_sampler("RandomSampler"), "random search"),
    "tpe": Entry(
        _sampler("TPESampler"),
        "Optuna's TPE as it ships (10 random start-up trials, independent per parameter)",
    ),
    "tpe-small": Entry(
        _sampler(
            "TPESampler",
            n_startup_trials=SMALL_BUDGET_STARTUP,
            multivariate=True,
            group=True,  # conditional spaces: one model per group of co-occurring parameters
            constant_liar=True,  # parallel workers do not all draw the same point
            warn_independent_sampling=False,
        ),
        f"TPE for small budgets: model-based from the {SMALL_BUDGET_STARTUP + 1}th trial (trial 0 "
        "and the priors among the first, the rest random), multivariate, grouped for "
        "conditional parameters, constant liar for parallel workers",
    ),
    "qmc": Entry(
        _sampler("QMCSampler", scramble=True, warn_independent_sampling=False),
        "scrambled Sobol quasi-random points (conditional parameters drawn at random)",
    ),
    "cmaes": Entry(
        _sampler("CmaEsSampler", warn_independent_sampling=False),
        "CMA-ES on the numeric parameters (categorical ones drawn at random)",
        needs="cmaes",
    ),
    "gp": Entry(_sampler("GPSampler"), "Gaussian-process Bayesian optimisation", needs="torch"),
}

PRUNERS: dict[str, Entry] = {
    "none": Entry(_pruner("NopPruner"), "no pruner"),
    "median": Entry(
        _pruner(
            "MedianPruner", n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=WARMUP_EPOCHS
        ),
        "the median pruner (stops a trial whose validation metric at an epoch is worse than "
        f"the median of earlier trials at that epoch, after {MEDIAN_STARTUP_TRIALS} trials "
        f"and {WARMUP_EPOCHS} epochs)",
    ),
    "sha": Entry(
        _pruner("SuccessiveHalvingPruner", min_resource=WARMUP_EPOCHS),
        "successive halving over epochs (asynchronous, from "
        f"{WARMUP_EPOCHS} epochs, keeping the best third at each rung)",
    ),
    "hyperband": Entry(
        _pruner("HyperbandPruner", epochs_as="max_resource", min_resource=WARMUP_EPOCHS),
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


def sampler_seed(seed: int, stream: tuple) -> int:
    """A 32-bit seed from the user's seed and a stream. hash() of integers is the same in
    every process and release (the creator's draws are reproducible); a joiner's stream
    holds its host name, whose hash Python also randomises per process."""
    return hash((seed, *stream)) % 2**32


def stream_of(name: str) -> int:
    """A stable number per name: studies of different folds (or architectures) draw
    different streams (the folds of a nested benchmark would otherwise try the same random
    configurations, and MF and NNMF, whose spaces share their parameters, the same ones)."""
    return zlib.crc32(name.encode())


def make_sampler(seed: int, stream: tuple, name: str = "tpe") -> optuna.samplers.BaseSampler:
    """The named sampler, seeded for this sampler stream."""
    return _entry(SAMPLERS, "sampler", name).build(sampler_seed(seed, stream))


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    """The named pruner, for trials of at most `max_epochs` epochs."""
    return _entry(PRUNERS, "pruner", name).build(max_epochs)


def available(table: dict[str, Entry]) -> list[str]:
    """The names whose optional dependency is installed."""
    return [n for n, e in table.items() if not e.needs or importlib.util.find_spec(e.needs)]
