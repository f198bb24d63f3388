"""The samplers and pruners a study can use, built by name."""

from __future__ import annotations

import optuna

from bench.sweep.shared import (
    sampler_seed,
)


def make_sampler(seed: int, stream: tuple) -> optuna.samplers.BaseSampler:
    """TPE seeded per sampler stream (invocation, worker, process generation), so no two
    samplers draw the same sequence: a joining invocation, a second worker or a recycled
    worker process with the first one's seed would repeat its random start-up trials."""
    return optuna.samplers.TPESampler(seed=sampler_seed(seed, stream))


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=5, max_resource=max_epochs)
    return optuna.pruners.NopPruner()
