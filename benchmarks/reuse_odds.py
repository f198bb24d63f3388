"""How often a default-space MF study would repeat a compiled structure if k (and the
batch size) took fewer values: Optuna's tpe-small sampler on the real MF space, against a
cheap stand-in objective.

A trial reuses a compiled epoch when an earlier trial of its process had the same structure
(`bench.training.compiled.structure_key`: k, batch size, loss, bias terms, which L2 terms
are on; the learning rate and L2 strengths are inputs). Training for real takes minutes per
study (`train_speed.py --sections reuse` measures that); this draws the same space's trials
in seconds, against a smooth stand-in for the validation RMSE (best near k 32, batch 256,
lr 5e-3, biases on, MSE), to compare grids before changing the space. It estimates the
sampler's behaviour, not the real study's figures.

    python benchmarks/reuse_odds.py [--trials 30] [--studies 8]
"""

from __future__ import annotations

import quiet  # noqa: F401 - first: before TensorFlow loads

# isort: split
import argparse
import math
import warnings

import keras
import numpy as np
import optuna

from bench.archs import get_arch
from bench.sweep.samplers import make_sampler, stream_of
from bench.training.compiled import structure_key

SMALL_TABLE = 7  # users and items of the models built for their structure

POWERS = tuple(2**i for i in range(9))
GRIDS = {  # k's values; the batch sizes (None: as the space says)
    "k every integer (the space now)": (None, None),
    "k 16 values, about 1.5x apart": (
        (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256),
        None,
    ),
    "k powers of two": (POWERS, None),
    "k powers of two, batch 128, 512 or 2048": (POWERS, [128, 512, 2048]),
}


class GridTrial:
    """A trial whose `k` is drawn as an index into `grid`, and whose batch size from
    `batches` (None: as the space says)."""

    def __init__(self, trial: optuna.Trial, grid: tuple[int, ...] | None, batches: list | None):
        self.trial, self.grid, self.batches = trial, grid, batches

    def suggest_int(self, name: str, *args, **kwargs) -> int:
        if name != "k" or self.grid is None:
            return self.trial.suggest_int(name, *args, **kwargs)
        return self.grid[self.trial.suggest_int("k_step", 0, len(self.grid) - 1)]

    def suggest_categorical(self, name: str, choices: list):
        batches = self.batches if name == "batch_size" and self.batches else choices
        return self.trial.suggest_categorical(name, batches)

    def __getattr__(self, name: str):
        return getattr(self.trial, name)


def stand_in(config) -> float:
    """A smooth validation RMSE with MF's measured preferences."""
    return (
        0.91
        + 0.02 * (math.log(config.learning_rate / 5e-3)) ** 2 / 4
        + 0.01 * (math.log2(config.batch_size) - 8) ** 2 / 9
        + 0.02 * (math.log2(config.k) - 5) ** 2 / (25 if config.row_l2 else 12)
        + (0.0 if config.use_bias else 0.02)
        + (0.01 if config.loss == "mae" else 0.0)
    )


def structure(arch, config) -> tuple:
    """The key the sweep's runner cache files the trial under (`structure_key`), of its
    model built on small tables: the key reads the variables' shapes, not their rows."""
    keras.backend.clear_session()
    model = arch.build(config, SMALL_TABLE, SMALL_TABLE)
    return structure_key(model, config, arch.jit_compile, False, 1)


def repeats(grids: tuple, trials: int, seed: int) -> int:
    """Trials of one study whose structure an earlier trial had."""
    arch, seen, noise = get_arch("mf"), set(), np.random.default_rng(seed)
    study = optuna.create_study(sampler=make_sampler(seed, (stream_of("reuse-odds"),), "tpe-small"))
    count = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal count
        config = arch.suggest(GridTrial(trial, *grids), arch.max_epochs)
        key = structure(arch, config)
        count += key in seen
        seen.add(key)
        return stand_in(config) + noise.normal(0, 0.003)

    study.optimize(objective, n_trials=trials)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--studies", type=int, default=8)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    print(f"trials repeating a structure, {args.studies} studies of {args.trials} trials:")
    for name, grids in GRIDS.items():
        counts = [repeats(grids, args.trials, seed) for seed in range(args.studies)]
        share = np.mean(counts) / args.trials
        print(f"  {name}: {counts}, mean {share:.0%} of trials")


if __name__ == "__main__":
    main()
