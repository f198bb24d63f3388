"""The scheduled benchmark job: tuned configs and baselines, fold by fold, gated.

Each architecture's config comes from a pinned file kept in the repository (stable for a
scheduled run) or from the best trial of an Optuna study. Every config and baseline is
trained on each fold's training part and scored on its test part; results are compared
between models (paired tests) and against the previous benchmark run (regression gate).
The job has four parts: resolve the configs, run the folds, gate, report.

Exit codes: 0 no regression, 1 regression, 2 the job itself failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlflow.keras
import numpy as np
import pandas as pd
import tensorflow as tf
from mlflow.tracking import MlflowClient

from bench import nested, peers
from bench.archs import ARCHS, config_params
from bench.data import RatingData, Split, load_dataset, make_split
from bench.datasets import DEFAULT
from bench.describe import benchmark_description, benchmark_model_description
from bench.errors import BenchError
from bench.metrics import METRICS, get_metric, mlflow_name
from bench.predictors import BASELINES, evaluate
from bench.protocol import PINNED, Job, resolve_configs, write_pinned
from bench.report import FoldResult, Outcome, write_benchmark_report
from bench.serving import (
    RATING_MODEL,
    Fallback,
    log_rating_model,
    register_champion,
    registered_name,
)
from bench.stats import Regression, describe_folds, find_regressions, holm, paired
from bench.tracking import (
    Tracker,
    as_metrics,
    curves_to_metrics,
    environment_tags,
    loss_named,
    machine_class,
    split_inputs,
)

EXPERIMENT = "benchmark"
REPORTED = tuple(m.name for m in METRICS)
CI_SHOWN = ("mae", "rmse", "ndcg_at_10")
BENCHMARK_ALIAS = "benchmark"  # registered-model alias of the latest benchmarked model


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
            d = describe_folds(group[metric].to_numpy(), bounds, ratio)
            row[metric] = f"{d['mean']:.4f} ± {d['std']:.4f}"
            if metric in CI_SHOWN:
                row[f"{metric} 95% CI"] = f"{d['ci_low']:.4f}..{d['ci_high']:.4f}"
        rows.append(row)
    return pd.DataFrame(rows)


def comparisons(results: pd.DataFrame, archs: list[str], ratio: float | None) -> list[str]:
    """Plain sentences: every pair of architectures, and each against the bias baseline,
    with the corrected resampled t-test and Holm's adjustment over all of them."""
    if results["fold"].nunique() < 2:
        return ["(none: a paired comparison needs at least two folds or seeds)"]
    by_model = {m: g.sort_values("fold") for m, g in results.groupby("model")}
    pairs = [(a, b) for i, a in enumerate(archs) for b in archs[i + 1 :]]
    pairs += [(a, "bias") for a in archs if "bias" in by_model]
    tests = [
        paired(a, by_model[a][m].to_numpy(), b, by_model[b][m].to_numpy(), m, ratio)
        for a, b in pairs
        for m in CI_SHOWN
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


POST_ARCHS = ("mf", "nnmf", "nn")  # the benchmark's default: the seed post's three
PROTOCOL = "1"  # bump when what a benchmark number means changes


def run_identity(job: Job, args: argparse.Namespace, data: RatingData, folds: str) -> dict:
    """What must be equal for two benchmark runs to be compared by the gate: the data, the
    folds, the protocol, the configs (hashed), the epochs cap, the seed and the machine
    class (numbers of the NN differ across CPUs and thread counts)."""
    if args.protocol == "nested":  # configs differ per run by design: hash what chose them
        configs = json.dumps({"archs": sorted(job.configs), "budget": job.source})
    else:
        configs = json.dumps(
            {a: {f: config_params(c) for f, c in fs.items()} for a, fs in job.configs.items()},
            sort_keys=True,
        )
    identity = {
        "bench.kind": "benchmark",
        "protocol": PROTOCOL,
        "dataset": data.dataset.name,
        "data_sha256": data.checksum,
        "folds": folds,
        "config_source": job.source,
        "configs_sha256": hashlib.sha256(configs.encode()).hexdigest()[:16],
        "max_epochs": str(args.max_epochs or "none"),
        "seed": str(args.seed),
        "machine_class": machine_class(),
        "device": _machine_tags()["device"],
    }
    return {key: str(value).replace("'", "") for key, value in identity.items()}  # filterable


def previous_results(
    client: MlflowClient, experiment_id: str, identity: dict
) -> pd.DataFrame | None:
    """Per-fold results of the latest finished benchmark run of the same identity, if any."""
    match = " and ".join(f"tags.`{key}` = '{value}'" for key, value in identity.items())
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"{match} and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(runs[0].info.run_id, "results.csv", tmp)
        return pd.read_csv(path)


def _machine_tags() -> dict[str, str]:
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "device": f"GPU x{len(gpus)}" if gpus else "CPU",
        "threads.intra_op": str(tf.config.threading.get_intra_op_parallelism_threads()),
    }


MODEL_REQUIREMENTS = [
    f"{name}=={environment_tags()[f'version.{name}']}" for name in ("tensorflow", "keras", "numpy")
]


def log_fold(
    tracker: Tracker,
    parent_id: str,
    experiment_id: str,
    fold: FoldResult,
    predictor,
    split: Split | None = None,
    data: RatingData | None = None,
    inputs: list | None = None,
) -> str | None:
    """One nested run per model and fold (metrics named as in sweeps: `test_mae`,
    `train_loss_mse`, ...); learnt models are logged as MLflow models. Returns the URI of the
    pyfunc `rating_model` when one is logged (`data` given)."""
    run_id = tracker.start_run(
        experiment_id,
        f"{fold.model}-{fold.fold}",
        parent=parent_id,
        tags={"model": fold.model, "fold": fold.fold},
    )
    learnt = not isinstance(predictor, str)
    params = config_params(predictor) if learnt else {"baseline": predictor}
    metrics = as_metrics({mlflow_name(k): v for k, v in fold.metrics.items()})
    if learnt and fold.history:
        metrics += curves_to_metrics(loss_named(fold.history, predictor.loss))
    tracker.log(run_id, metrics, params)
    if inputs:
        tracker.client.log_inputs(run_id, datasets=inputs)
    uri = None
    if fold.keras_model is not None:
        with tempfile.TemporaryDirectory() as tmp:  # the Keras model, for `bench recommend`
            mlflow.keras.save_model(
                fold.keras_model, f"{tmp}/model", pip_requirements=MODEL_REQUIREMENTS
            )
            tracker.client.log_artifacts(run_id, f"{tmp}/model", "model")
        if data is not None:  # a self-contained pyfunc model that takes raw ids
            fallback = Fallback.from_ratings(split.train, split.n_users, split.n_items)
            scale = (split.scale.low, split.scale.high)
            uri = log_rating_model(
                tracker.client, run_id, fold.keras_model, data.users.ids, data.items.ids,
                fallback, rating_scale=scale, name=RATING_MODEL,
            )  # fmt: skip
    tracker.end(run_id)
    return uri


def run_folds(
    tracker: Tracker,
    parent_id: str,
    experiment_id: str,
    splits: list[Split],
    job: Job,
    seed: int,
    data: RatingData | None = None,
) -> list[FoldResult]:
    """Part 2: every predictor on every fold (its own config there), each a nested run."""
    folds: list[FoldResult] = []
    for split in splits:
        predictors = {arch: job.config(arch, split.name) for arch in job.configs}
        predictors.update({b: b for b in BASELINES})
        inputs = split_inputs(split)
        for name, predictor in predictors.items():
            print(f"{split.name}: {name} ...", flush=True)
            fold = evaluate(name, predictor, split, seed)
            fold.model_uri = log_fold(
                tracker, parent_id, experiment_id, fold, predictor, split, data, inputs
            )
            fold.keras_model = None  # logged; free it
            folds.append(fold)
    return folds


def register_models(
    tracker: Tracker, folds: list[FoldResult], dataset: str, source: str, run_name: str
) -> dict[str, str]:
    """Each architecture's model of the first fold, registered as `recsys-ARCH-DATASET`
    with alias `benchmark` (the sweeps' best is `champion`): a model for each benchmarked
    config, chosen by fold order, never by a test score. Returns arch -> version."""
    first = folds[0].fold if folds else None
    versions = {}
    for fold in folds:
        if fold.fold != first or fold.model_uri is None:
            continue
        name = registered_name(fold.model, dataset)
        description = benchmark_model_description(fold.model, source, fold.fold, run_name)
        version = register_champion(
            tracker.client, fold.model_uri, name, description, alias=BENCHMARK_ALIAS
        )
        tags = {"source": "benchmark", "benchmark_run": run_name, "fold": fold.fold}
        for key, value in tags.items():
            tracker.client.set_model_version_tag(name, version, key, value)
        versions[fold.model] = version
    return versions


def gate(
    results: pd.DataFrame, previous: pd.DataFrame | None, min_delta: float, ratio: float | None
) -> list[Regression]:
    """Part 3: the regression gate against the previous comparable run (none: nothing)."""
    if previous is None:
        return []
    return find_regressions(results, previous, min_delta, test_train_ratio=ratio)


def report(
    args: argparse.Namespace, tracker: Tracker, parent_id: str, outcome: Outcome, job: Job
) -> None:
    """Part 4: report.md, results.csv and figures, on disk and on the parent run."""
    args.report_dir.mkdir(parents=True, exist_ok=True)
    outcome.results.to_csv(args.report_dir / "results.csv", index=False)
    write_pinned(args.report_dir / "tuned_configs.json", job)
    write_benchmark_report(args.report_dir, outcome, tracker.client, job.studies)
    tracker.client.log_artifacts(parent_id, str(args.report_dir))


def print_outcome(outcome: Outcome, previous: pd.DataFrame | None, min_delta: float) -> int:
    print(outcome.summary.to_string(index=False))
    print("\npaired comparisons over folds:")
    print("\n".join(f"- {line}" for line in outcome.sentences))
    if previous is None:
        print("\nregression gate: no earlier comparable benchmark run; nothing compared (exit 0)")
        return 0
    if outcome.regressions:
        print("\nREGRESSION:")
        print("\n".join(f"- {r.message()}" for r in outcome.regressions))
        return 1
    print(f"\nregression gate: no metric worse beyond noise and {min_delta} (exit 0)")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench benchmark", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--protocol",
        choices=["nested", "pinned", "studies"],
        default="nested",
        help="nested: tune each fold on its training part (default); pinned: the --configs "
        "file; studies: best trials of the sweep studies (tuned on data overlapping the folds)",
    )
    parser.add_argument("--configs", type=Path, default=PINNED, help="pinned-config JSON file")
    parser.add_argument(
        "--from-studies", action="store_true", help="the same as --protocol studies"
    )
    parser.add_argument("--tune-trials", type=int, default=nested.Budget.trials)
    parser.add_argument(
        "--tune-timeout",
        type=float,
        default=nested.Budget.timeout,
        help="seconds per fold and architecture (0: none)",
    )
    parser.add_argument("--valid-fraction", type=float, default=nested.Budget.valid_fraction)
    parser.add_argument(
        "--peers",
        action="store_true",
        help="add scikit-surprise's SVD, SVD++ and KNNBaseline, tuned with the same budget",
    )
    parser.add_argument("--study-split", default="seed", help="split of the studies to read")
    parser.add_argument("--storage", help="Optuna storage of the studies")
    parser.add_argument("--dataset", default=DEFAULT, help="registered data set (bench data list)")
    parser.add_argument(
        "--archs",
        default=",".join(POST_ARCHS),
        help="comma-separated (default: the post's three); all: every registered one",
    )
    parser.add_argument("--folds", help="comma-separated folds (default: the data set's)")
    parser.add_argument("--seeds", type=int, default=0, help="N seed-style splits instead of folds")
    parser.add_argument(
        "--baseline", type=Path, help="results.csv of an earlier run to gate against"
    )
    parser.add_argument("--min-delta", type=float, default=0.005)
    parser.add_argument("--report-dir", type=Path, default=Path("reports/benchmark"))
    parser.add_argument(
        "--max-epochs", type=int, help=f"cap epochs (nested default {nested.Budget.max_epochs})"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir")
    parser.add_argument("--tracking-uri")
    args = parser.parse_args(argv)
    if args.peers:
        peers.require_surprise()
    if args.from_studies:
        args.protocol = "studies"
    if args.archs == "all":
        args.archs = ",".join(ARCHS)
    if args.tune_trials < 1 or not 0 < args.valid_fraction < 1 or (args.max_epochs or 1) < 1:
        raise BenchError("--tune-trials and --max-epochs must be >= 1, --valid-fraction in (0, 1)")
    return args


def _splits(args: argparse.Namespace, data: RatingData) -> list[Split]:
    folds = args.folds.split(",") if args.folds else list(data.dataset.benchmark_folds)
    if not folds and not args.seeds:
        args.seeds = 5  # a data set without canonical folds: five seeded 80/20 splits
    return fold_splits(data, folds, args.seeds)


def run(args: argparse.Namespace, data: RatingData | None = None) -> int:
    """The job; `data` replaces the registered data set (tests pass generated data)."""
    tracker = Tracker(args.tracking_uri)
    data = data if data is not None else load_dataset(args.dataset, args.data_dir)
    splits = _splits(args, data)
    job = resolve_configs(args, tracker, data, splits)
    identity = run_identity(job, args, data, ",".join(s.name for s in splits))
    experiment_id = tracker.experiment(EXPERIMENT)
    previous = job.previous_file
    if previous is None:
        previous = previous_results(tracker.client, experiment_id, identity)
    start = time.perf_counter()
    run_name = f"benchmark-{time.strftime('%Y%m%d-%H%M%S')}"
    parent_id = tracker.start_run(
        experiment_id,
        run_name,
        tags={**identity, **environment_tags(), **_machine_tags()},
        description=benchmark_description(
            job.source, [s.name for s in splits], [*job.configs, *BASELINES]
        ),
    )
    try:
        folds = run_folds(tracker, parent_id, experiment_id, splits, job, args.seed, data)
        results = pd.DataFrame([{"model": f.model, "fold": f.fold, **f.metrics} for f in folds])
        ratio = test_train_ratio(splits)
        regressions = gate(results, previous, args.min_delta, ratio)
        outcome = Outcome(
            results,
            summary_table(results, ratio),
            comparisons(results, list(job.configs), ratio),
            regressions,
            folds,
            job.configs,
            job.source,
            provenance=job.provenance,
            compared=previous is not None,
        )
        report(args, tracker, parent_id, outcome, job)
        register_models(tracker, folds, data.dataset.name, job.source, run_name)
        tracker.log(
            parent_id, {"regressions": len(regressions), "job_seconds": time.perf_counter() - start}
        )
    except BaseException:
        tracker.end(parent_id, "FAILED")
        raise
    tracker.end(parent_id)
    return print_outcome(outcome, previous, args.min_delta)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BenchError:
        raise
    except Exception as exc:  # the job itself failed: exit 2, never 1 (which means regression)
        args.report_dir.mkdir(parents=True, exist_ok=True)
        (args.report_dir / "error.log").write_text(traceback.format_exc())
        raise BenchError(
            f"benchmark job failed: {type(exc).__name__}: {exc} (traceback in "
            f"{args.report_dir / 'error.log'})"
        ) from exc
