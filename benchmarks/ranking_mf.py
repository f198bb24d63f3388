"""Can MF learn to rank? MF trained for the top-k task (positives, sampled negatives, a
ranking loss), tuned by Optuna's TPE on validation NDCG@10 carved from a fold's training
part, its chosen trial scored once on the fold's test part beside popularity's.

    BENCH_DATA_DIR=../shared/data/ml-100k python benchmarks/ranking_mf.py [FOLD] [TRIALS] [ARCH]

The space: the architecture's own (for MF: factors, biases and their L2, learning rate,
batch size, per-rating L2; not its rating loss), the ranking loss (BPR or BCE), negatives
per positive, their sampler, and which ratings count as positives. The
test part is read only for the chosen trial (the candidates: every item the user did not
rate in the fold's training part). A prototype of the ranking studies (issue 28).
"""

from __future__ import annotations

import quiet  # noqa: F401 - first: before TensorFlow loads

# isort: split
import sys
import time
from dataclasses import replace

import numpy as np
import optuna

from bench.archs import get_arch
from bench.data import load_dataset, make_split
from bench.training.options import TrainOptions
from bench.training.ranking import RankedPart, RankingSetup
from bench.training.train import train

MAX_EPOCHS = 40


def setup_of(trial: optuna.Trial) -> RankingSetup:
    """The ranking part of the space."""
    liked = trial.suggest_categorical("positives", ["all", "4+"])
    return RankingSetup(
        loss=trial.suggest_categorical("ranking_loss", ["bpr", "bce"]),
        negatives=trial.suggest_int("negatives", 1, 16, log=True),
        sampler=trial.suggest_categorical("sampler", ["uniform", "popularity"]),
        positives=None if liked == "all" else 4.0,
    )


class WithoutRatingLoss:
    """A trial whose rating loss is fixed (mse): no parameter of a ranking study."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial

    def suggest_categorical(self, name: str, choices):
        return "mse" if name == "loss" else self.trial.suggest_categorical(name, choices)

    def __getattr__(self, name: str):
        return getattr(self.trial, name)


def objective(arch, split):
    def run(trial: optuna.Trial) -> float:
        config = arch.suggest(WithoutRatingLoss(trial), MAX_EPOCHS)
        options = TrainOptions(seed=trial.number, ranking=setup_of(trial), patience=4)
        result = train(config, split, options)
        trial.set_user_attr("epochs", (result.best_epoch or 0) + 1)
        return max(result.history["val_ndcg_at_10"])

    return run


def popularity(split) -> dict[str, float]:
    """Popularity's test figures (training counts as scores), on the grid of the same users."""
    counts = np.bincount(split.train["item"], minlength=split.n_items)[: split.n_items]
    part = RankedPart(split.test, split.train, split.n_items, split.scale)
    return part.figures(lambda pairs: counts[pairs[1].ravel()].astype("float32"), "test")


def main() -> None:
    fold = sys.argv[1] if len(sys.argv) > 1 else "u1"
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    arch = get_arch(sys.argv[3] if len(sys.argv) > 3 else "mf")
    data = load_dataset("ml-100k")
    tuning = make_split(data, fold, seed=0, valid_fraction=0.1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=5, multivariate=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    started = time.perf_counter()
    study.optimize(objective(arch, tuning), n_trials=trials)
    best = study.best_trial
    print(
        f"{arch.name} {fold}: {trials} trials in {time.perf_counter() - started:.0f} s; "
        f"best validation NDCG@10 {best.value:.4f}: {best.params} epochs {best.user_attrs}"
    )
    fold_split = make_split(data, fold, seed=0, valid_fraction=0.0)
    config = replace(
        arch.from_params({**best.params, "loss": "mse"}), epochs=best.user_attrs["epochs"]
    )
    refit = train(config, fold_split, TrainOptions(seed=0, ranking=setup_of(best)))
    print(f"refitted on the fold's training part, test: {refit.test}")
    print(f"popularity, test: {popularity(fold_split)}")


if __name__ == "__main__":
    main()
