"""The tuner benchmark: samplers and pruners compared on the same tuning splits, by how fast
their best validation value falls.

Every (architecture, fold, sampler, pruner, sampler seed) is one Optuna study on the fold's
tuning split (its training part cut into training and validation, the test part empty: no
tuner ever sees a test rating), trial 0 the published settings as in every sweep. Its
anytime curve (best validation value after each trial, and against cumulative CPU seconds)
is logged to one MLflow experiment; the report ranks the tuners by the area under the curve
and by the final value, mean over seeds, with a 95 % band.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import optuna
import pandas as pd

from bench.archs import get_arch
from bench.benchmark.spec import TunerSpec
from bench.data import Split
from bench.sweep.anytime import Curve, area, best_so_far
from bench.sweep.objective import trial_value
from bench.sweep.samplers import make_pruner, make_sampler, stream_of
from bench.training import TrainingDiverged, TrainOptions, train
from bench.training.compiled import RUNNERS


@dataclass
class TunerRun:
    """One study of the benchmark and its anytime curve (seconds: cumulative CPU)."""

    arch: str
    fold: str
    sampler: str
    pruner: str
    seed: int
    curve: Curve
    states: list[str] = field(default_factory=list)

    @property
    def tuner(self) -> str:
        return f"{self.sampler} / {self.pruner}"


class _Objective:
    """Train one sampled config on the tuning split; CPU seconds per trial as an attribute."""

    def __init__(self, arch: str, split: Split, spec: TunerSpec):
        self.arch, self.split, self.spec = get_arch(arch), split, spec
        self.metric = f"val_{spec.metric}"
        self.options = TrainOptions(patience=spec.patience, monitor=self.metric)

    def __call__(self, trial: optuna.Trial) -> float:
        start = time.process_time()
        try:
            config = self.arch.suggest(trial, self.spec.max_epochs)
            result = train(config, self.split, self.options, on_epoch_end=self._pruning(trial))
            return trial_value(result, self.metric)
        finally:
            trial.set_user_attr("cpu_seconds", time.process_time() - start)

    def _pruning(self, trial: optuna.Trial):
        def report(epoch: int, logs: dict[str, float]) -> None:
            trial.report(logs[self.metric], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        return report


def warm_up(split: Split, arch: str) -> None:
    """One epoch of the published config, so TensorFlow's one-off start-up cost is not
    charged to whichever tuner runs first."""
    config = replace(get_arch(arch).config(), epochs=1)
    train(config, split, TrainOptions())


def run_tuner(
    split: Split, arch: str, sampler: str, pruner: str, seed: int, spec: TunerSpec
) -> TunerRun:
    """One study: `spec.trials` trials of `arch` on the tuning split, starting as every
    sweep does (trial 0 the published settings, then the priors); its curve over trials and
    CPU seconds."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    RUNNERS.clear()  # every study compiles its own structures, as in a fresh process
    study = optuna.create_study(
        sampler=make_sampler(seed, (stream_of(split.name), stream_of(arch)), sampler),
        pruner=make_pruner(pruner, spec.max_epochs),
    )
    for params in get_arch(arch).start_params(spec.max_epochs).values():  # as every sweep
        study.enqueue_trial(params)
    objective = _Objective(arch, split, spec)
    study.optimize(objective, n_trials=spec.trials, catch=(TrainingDiverged,))
    trials = sorted(study.trials, key=lambda t: t.number)
    complete = optuna.trial.TrialState.COMPLETE
    values = [t.value if t.state == complete else None for t in trials]
    seconds = np.cumsum([t.user_attrs.get("cpu_seconds", 0.0) for t in trials]).tolist()
    curve = Curve([t.number for t in trials], best_so_far(values), seconds)
    return TunerRun(arch, split.name, sampler, pruner, seed, curve, [t.state.name for t in trials])


def runs_frame(runs: list[TunerRun]) -> pd.DataFrame:
    """One row per study: its tuner, final value, area and CPU seconds."""
    return pd.DataFrame(
        [
            {
                "arch": r.arch,
                "fold": r.fold,
                "sampler": r.sampler,
                "pruner": r.pruner,
                "seed": r.seed,
                "final": r.curve.best[-1],
                "area": area(r.curve.best),
                "cpu_seconds": r.curve.seconds[-1],
                "pruned": sum(s == "PRUNED" for s in r.states),
            }  # fmt: skip
            for r in runs
        ]
    )
