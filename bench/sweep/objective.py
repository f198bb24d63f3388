"""One trial: suggest a config, train it, record it as a nested MLflow run, return its value."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import keras
import numpy as np
import optuna

from bench.archs import get_arch
from bench.data import Split
from bench.errors import StoreFull, disk_full, one_line
from bench.sweep.descriptions import (
    trial_description,
    trial_run_name,
    trial_running,
)
from bench.sweep.samplers import PRUNERS
from bench.sweep.stale_trials import trial_owner_attrs
from bench.sweep.study import Prepared
from bench.tracking.client import through_outages
from bench.tracking.figures import embedding_figure
from bench.tracking.serving import RATING_MODEL, RATING_MODEL_TAG, Fallback, log_rating_model
from bench.tracking.tracker import (
    EMBEDDING_PNG,
    Tracker,
    curves_to_metrics,
    loss_named,
    split_inputs,
)
from bench.training.options import TrainOptions
from bench.training.tasks import get_task
from bench.training.train import TrainResult, train


def trial_value(result: TrainResult, metric: str) -> float:
    """The trial's value: the metric at the kept epoch (the best one under early stopping)."""
    curve = result.history[metric]
    return curve[result.best_epoch if result.best_epoch is not None else -1]


class Objective:
    """Train one sampled config; report the validation metric per epoch for pruning.

    A trial run gets the sampled values as params (under their own names), the whole config
    as `config.json`, the split as dataset inputs and, when it ends, a description and a
    name that shows a pruned or failed trial. A completed trial that is the study's best so
    far also logs its model, as the pyfunc `rating_model` that the study's end registers, and
    a histogram of its embedding values: the model that earned the score, not a retrained
    one (a second training would cost up to minutes and could differ).
    """

    STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}

    def __init__(self, prepared: Prepared, split: Split):
        self.prepared = prepared
        self.split = split
        self.metric = f"val_{prepared.settings.metric}"
        settings = prepared.settings
        base = TrainOptions(
            seed=settings.seed, sparse_updates=settings.sparse_updates, patience=settings.patience
        )
        task = get_task(settings.task)  # each trial sets its own task setup
        self.options = replace(task.options(base, task.defaults, split.scale), monitor=self.metric)
        self.tracker = Tracker(prepared.tracking_uri)
        self.arch = get_arch(prepared.settings.arch)
        self.task = task
        self.inputs = split_inputs(split)  # once per process, not per trial

    def __call__(self, trial: optuna.Trial) -> float:
        """One trial; a full disk anywhere in it (its start, its records, its end) ends the
        worker with one line instead of failing this trial and the next ones."""
        try:
            return self._trial(trial)
        except Exception as exc:
            if disk_full(exc):
                raise StoreFull(one_line(exc)) from exc
            raise

    def _trial(self, trial: optuna.Trial) -> float:
        """Train and record one configuration of the search space."""
        for key, value in trial_owner_attrs().items():  # first: a stopped run's trial is
            trial.set_user_attr(key, value)  # known as this process's whatever fails next
        keras.backend.clear_session(free_memory=False)  # gc.collect() would cost ~0.25 s
        settings = self.prepared.settings
        config = self.task.suggest(self.arch, trial, settings.max_epochs or self.arch.max_epochs)
        options = self.task.options(self.options, trial.params, self.split.scale)
        loss = options.trained_loss(config)  # the name of its loss curves
        curves: dict[str, list[float]] = defaultdict(list)

        def report(epoch: int, logs: dict[str, float]) -> None:
            for name, value in logs.items():
                curves[name].append(value)
            trial.report(logs[self.metric], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        run_id = self.tracker.start_run(
            self.prepared.experiment_id,
            trial_run_name(trial.number),
            parent=self.prepared.parent_run_id,
            tags={"trial_number": str(trial.number), "study": settings.name},
            description=trial_running(trial.number, settings.name),
        )
        trial.set_user_attr("mlflow_run_id", run_id)
        try:
            self.tracker.log_config(run_id, config, self.split, options, trial.params, self.inputs)
            result = train(config, self.split, options, on_epoch_end=report)
            value = trial_value(result, self.metric)
            kept = result.best_epoch + 1 if result.best_epoch is not None else None
            trial.set_user_attr("epochs", kept or len(result.history[self.metric]))
            self.tracker.log_training(
                run_id, result, self.split, options, figure=False, config_logged=True
            )
            if self.best_so_far(trial, value):  # (waits out an outage of the server's store)
                through_outages(self._log_model, run_id, result, trial.number)
        except optuna.TrialPruned:
            self._end(run_id, trial.number, config, loss_named(curves, loss), "PRUNED")
            raise
        except KeyboardInterrupt:
            named = loss_named(curves, loss)
            self._end(run_id, trial.number, config, named, "FAIL", "interrupted", "KILLED")
            raise
        except Exception as exc:
            if disk_full(exc):  # no store can take the trial's end: the next start repairs it
                raise
            error = f"{type(exc).__name__}: {exc}"
            self._end(run_id, trial.number, config, loss_named(curves, loss), "FAIL", error)
            raise
        values = result.history[self.metric]
        self._finish(run_id, trial.number, config, values, "COMPLETE", kept=result.best_epoch)
        return value

    def _log_model(self, run_id: str, result: TrainResult, number: int) -> None:
        """The best-so-far trial's model (pyfunc, raw ids) and its embedding histogram."""
        split = self.split
        title = f"Embedding values of trial {number} ({self.prepared.settings.name})"
        self.tracker.log_figure(run_id, embedding_figure(result.embeddings, title), EMBEDDING_PNG)
        if split.user_ids is None or split.item_ids is None:
            return  # a split built without its id maps: no servable model
        rated = self.options.ranking is None  # a ranking model: scores not clipped, and a
        fallback_of = Fallback.from_ratings if rated else Fallback.ranked_last  # pair with
        fallback = fallback_of(split.train, split.n_users, split.n_items)  # an unseen id last
        scale = (split.scale.low, split.scale.high) if rated else (-np.inf, np.inf)
        uri = log_rating_model(
            self.tracker.client, run_id, result.model, split.user_ids, split.item_ids, fallback,
            rating_scale=scale, name=RATING_MODEL,
        )  # fmt: skip
        self.tracker.log(run_id, tags={RATING_MODEL_TAG: uri})

    def _end(
        self, run_id: str, number: int, config, curves, state: str, error: str = "", status=None
    ) -> None:
        """A pruned or failed trial: its curves so far (named by their loss), its state, and
        an end."""
        tags = {"arch": config.arch, **({"error": error} if error else {})}
        metrics = curves_to_metrics(curves)  # named by their loss
        self.tracker.log(run_id, metrics, tags=tags)
        pruner = PRUNERS[self.prepared.settings.pruner].description
        detail = error or pruner
        values = list(curves.get(self.metric, []))
        self._finish(run_id, number, config, values, state, detail, status or self.STATUS[state])

    def _finish(
        self,
        run_id: str,
        number: int,
        config,
        values: list[float],
        state: str,
        detail: str = "",
        status: str = "FINISHED",
        kept: int | None = None,
    ) -> None:
        """State tag, a name showing a pruned or failed trial, the description (`kept`: the
        epoch early stopping kept); end the run."""
        settings = self.prepared.settings
        note = trial_description(
            number, settings.name, state, self.metric, values, config.epochs, detail, kept
        )
        tags = {
            "trial_state": state,
            "mlflow.runName": trial_run_name(number, state),
            "mlflow.note.content": note,
        }
        self.tracker.log(run_id, tags=tags)
        self.tracker.end(run_id, status)

    @staticmethod
    def best_so_far(trial: optuna.Trial, value: float) -> bool:
        """Whether `value` beats every completed trial of the study (this one is not told)."""
        try:
            best = trial.study.best_value
        except ValueError:  # no completed trial yet
            return True
        if trial.study.direction == optuna.study.StudyDirection.MAXIMIZE:
            return value > best
        return value < best
