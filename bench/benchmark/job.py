"""The scheduled benchmark job: tuned configs and baselines, fold by fold, gated.

Each architecture's config comes from a pinned file kept in the repository (stable for a
scheduled run) or from the best trial of an Optuna study. Every config and baseline is
trained on each fold's training part and scored on its test part; results are compared
between models (paired tests) and against the previous benchmark run (regression gate).
The job has four parts: resolve the configs, run the folds, gate, report.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from bench.benchmark.configs import Job, resolve_configs, write_pinned
from bench.benchmark.predictors import BASELINES, RankedLearnt, as_predictor, evaluate
from bench.benchmark.processes import run_all
from bench.benchmark.records import (
    GATED_TAG,
    _machine_tags,
    log_fold,
    model_identity,
    previous_results,
    promote,
    register_models,
    run_identity,
)
from bench.benchmark.report import write_benchmark_report
from bench.benchmark.results import FoldResult, Outcome
from bench.benchmark.spec import DEFAULT_SEEDS, BenchmarkSpec
from bench.benchmark.stats import Regression, describe_folds, find_regressions, holm, paired
from bench.benchmark.tuning_gain import SUFFIX, trial0_name, tuning_table
from bench.data import RatingData, Split, load_dataset, make_split
from bench.metrics import METRICS, get_metric
from bench.sweep.descriptions import benchmark_description
from bench.tracking.environment import environment_tags
from bench.tracking.tracker import Tracker, split_inputs
from bench.training.tasks import get_task

EXPERIMENT = "benchmark"
BENCHMARK_EXPERIMENT = (  # the experiment page's text
    "Scheduled benchmark runs (`bench benchmark`, `studies/benchmark.py`): one parent run "
    "`benchmark-DATE-TIME` per run with `report.html` among its artifacts, one nested run "
    "per model and fold (tags `model`, `fold`). Runs of the same identity (tags: data, folds, "
    "protocol, configs, machine) are gated against the promoted reference (tag "
    "`bench.reference=true`), else the latest finished one."
)
REPORTED = tuple(m.name for m in METRICS)
CI_SHOWN = ("mae", "rmse", "ndcg_at_10")


def fold_splits(data: RatingData, folds: list[str], seeds: int) -> list[Split]:
    if seeds:
        return [
            replace(make_split(data, "seed", seed=s, valid_fraction=0.0), name=f"seed{s}")
            for s in range(seeds)
        ]
    return [make_split(data, fold, valid_fraction=0.0) for fold in folds]


def summary_table(results: pd.DataFrame, ratio: float | None) -> pd.DataFrame:
    """Mean ± std per model; CIs with the corrected (Nadeau-Bengio) standard error where
    training sets overlap, clipped to each metric's bounds."""
    rows = []
    for model, group in results.groupby("model", sort=False):
        row: dict[str, Any] = {"model": model, "folds": len(group)}
        for metric in REPORTED:
            bounds = get_metric(metric).bounds
            if not _applies(group[metric]):
                row[metric] = "n/a"  # a metric this model does not predict
                if metric in CI_SHOWN:
                    row[f"{metric} 95% CI"] = "n/a"
                continue
            d = describe_folds(group[metric].to_numpy(), bounds, ratio)
            one = len(group) < 2  # no spread and no interval from one fold: say so
            row[metric] = f"{d['mean']:.4f}" + ("" if one else f" ± {d['std']:.4f}")
            if metric in CI_SHOWN:
                interval = f"{d['ci_low']:.4f}..{d['ci_high']:.4f}"
                row[f"{metric} 95% CI"] = "one fold: no interval" if one else interval
        rows.append(row)
    return pd.DataFrame(rows)


def _applies(values: pd.Series) -> bool:
    """Whether a model has a metric at all (a ranker predicts no rating: its MAE is NaN)."""
    return bool(values.notna().all())


def comparisons(
    results: pd.DataFrame, archs: list[str], ratio: float | None, reference: str = "bias"
) -> list[str]:
    """Plain sentences: every pair of architectures, and each against the `reference`
    baseline (bias; popularity for the ranking task), with the corrected resampled t-test
    and Holm's adjustment over all of them."""
    if results["fold"].nunique() < 2:
        return ["(none: a paired comparison needs at least two folds or seeds)"]
    by_model = {m: g.sort_values("fold") for m, g in results.groupby("model")}
    pairs = [(a, b) for i, a in enumerate(archs) for b in archs[i + 1 :]]
    pairs += [(a, reference) for a in archs if reference in by_model]
    tests = [
        paired(a, by_model[a][m].to_numpy(), b, by_model[b][m].to_numpy(), m, ratio)
        for a, b in pairs
        for m in CI_SHOWN
        if _applies(by_model[a][m]) and _applies(by_model[b][m])
    ]
    adjusted = holm([t.p_t for t in tests]) if tests else []
    return [
        f"{t.sentence()}; Holm-adjusted p = {p:.3g}" for t, p in zip(tests, adjusted, strict=True)
    ]


def test_train_ratio(splits: list[Split]) -> float | None:
    """n_test / n_train for the corrected t-test; None for a single split."""
    if len(splits) < 2:
        return None
    return float(np.mean([len(s.test) / len(s.train) for s in splits]))


def run_folds(
    tracker: Tracker,
    parent_id: str,
    experiment_id: str,
    splits: list[Split],
    job: Job,
    seed: int,
    data: RatingData | None = None,
    workers: int = 1,
) -> list[FoldResult]:
    """Part 2: every predictor on every fold (its own config there), each a nested run;
    `workers` folds at a time, each in a process of its own (the same fits: seeded)."""
    _TRACKERS[tracker.uri] = tracker  # one at a time: the job's own tracker logs the folds
    run = (tracker.uri, parent_id, experiment_id)
    pieces = {split.name: (_run_fold, (run, split, job, seed, data)) for split in splits}
    by_fold = run_all(pieces, workers, "fitting its models")
    return [fold for split in splits for fold in by_fold[split.name]]


def _run_fold(
    run: tuple[str, str, str], split: Split, job: Job, seed: int, data: RatingData | None
) -> list[FoldResult]:
    """Every predictor on one fold, each logged as a nested run of the parent `run`
    (tracking URI, parent run id, experiment id)."""
    tracker, parent_id, experiment_id = _tracker(run[0]), run[1], run[2]
    predictors = {arch: as_predictor(job.config(arch, split.name)) for arch in job.configs}
    predictors.update({name: baseline() for name, baseline in BASELINES.items()})
    predictors.update({trial0_name(a): as_predictor(c[split.name]) for a, c in job.trial0.items()})
    inputs = split_inputs(split)
    folds = []
    for name, predictor in predictors.items():
        print(f"{split.name}: {name} ...", flush=True)
        fold = evaluate(name, predictor, split, seed)
        if name.endswith(SUFFIX) or isinstance(predictor, RankedLearnt):
            fold.keras_model = None  # scored, not logged or registered as a model
        fold.model_uri = log_fold(
            tracker, parent_id, experiment_id, fold, predictor, split, data, inputs
        )
        fold.keras_model = None  # logged; free it
        folds.append(fold)
    return folds


_TRACKERS: dict[str, Tracker] = {}  # this process's, by URI


def _tracker(uri: str) -> Tracker:
    """This process's tracker of `uri`: the job's own, or one a fold's process makes."""
    if uri not in _TRACKERS:
        _TRACKERS[uri] = Tracker(uri)
    return _TRACKERS[uri]


def gate(
    results: pd.DataFrame, previous: pd.DataFrame | None, min_delta: float, ratio: float | None
) -> list[Regression]:
    """Part 3: the regression gate against the previous comparable run (none: nothing)."""
    if previous is None:
        return []
    return find_regressions(results, previous, min_delta, test_train_ratio=ratio)


def report(
    spec: BenchmarkSpec, tracker: Tracker, parent_id: str, outcome: Outcome, job: Job
) -> None:
    """Part 4: report.md, results.csv and figures, on disk and on the parent run."""
    spec.report_dir.mkdir(parents=True, exist_ok=True)
    outcome.results.to_csv(spec.report_dir / "results.csv", index=False)
    write_pinned(spec.report_dir / "tuned_configs.json", job)
    studies = job.studies if spec.task == "rating" else {}  # the sweeps' trials are rating ones
    write_benchmark_report(spec.report_dir, outcome, tracker.client, studies)
    tracker.client.log_artifacts(parent_id, str(spec.report_dir))


def _splits(spec: BenchmarkSpec, data: RatingData) -> list[Split]:
    folds = list(spec.folds) or list(data.dataset.benchmark_folds)
    seeds = spec.seeds or (0 if folds else DEFAULT_SEEDS)
    return fold_splits(data, folds, seeds)


def run_benchmark(spec: BenchmarkSpec, data: RatingData | None = None) -> Outcome:
    """The job, in its four parts; `data` replaces the registered data set (tests pass
    generated data)."""
    tracker = Tracker(spec.tracking_uri)
    data = data if data is not None else load_dataset(spec.dataset, spec.data_dir)
    splits = _splits(spec, data)
    job = resolve_configs(spec, tracker, data, splits)
    identity = run_identity(job, spec, data, ",".join(s.name for s in splits))
    experiment_id = tracker.experiment(EXPERIMENT, BENCHMARK_EXPERIMENT)
    previous, against = job.previous_file, f"--baseline file {spec.baseline}"
    if previous is None:
        previous, against = previous_results(tracker.client, experiment_id, identity)
    start = time.perf_counter()
    run_name = f"benchmark-{time.strftime('%Y%m%d-%H%M%S')}"
    parent_id = tracker.start_run(
        experiment_id,
        run_name,
        tags={
            **identity,
            **environment_tags(),
            **_machine_tags(),
            GATED_TAG: against if previous is not None else "nothing: no earlier comparable run",
        },
        description=benchmark_description(
            job.source, [s.name for s in splits], [*job.configs, *BASELINES]
        ),
    )
    try:
        folds = run_folds(
            tracker, parent_id, experiment_id, splits, job, spec.seed, data, spec.workers
        )
        results = pd.DataFrame([{"model": f.model, "fold": f.fold, **f.metrics} for f in folds])
        ratio = test_train_ratio(splits)
        regressions = gate(results, previous, spec.min_delta, ratio)
        outcome = Outcome(
            results,
            summary_table(results, ratio),
            comparisons(results, list(job.configs), ratio, get_task(spec.task).reference),
            regressions,
            folds,
            job.configs,
            job.source,
            provenance=job.provenance,
            compared=previous is not None,
            previous=previous,
            tuning=tuning_table(results, job.provenance, spec.metric, ratio),
            min_delta=spec.min_delta,
            against=against,
        )
        report(spec, tracker, parent_id, outcome, job)
        identities = {  # the registered (first) fold's config: configs may differ per fold
            arch: model_identity(job.config(arch, folds[0].fold), data.checksum)
            for arch in (job.configs if folds else ())
        }
        register_models(tracker, folds, data.dataset.label, job.source, run_name, identities)
        tracker.log(
            parent_id, {"regressions": len(regressions), "job_seconds": time.perf_counter() - start}
        )
    except BaseException:
        tracker.end(parent_id, "FAILED")
        raise
    tracker.end(parent_id)
    if spec.promote:
        promote(tracker.client, parent_id)
    outcome.run, outcome.promoted = run_name, spec.promote  # for the closing lines
    return outcome
