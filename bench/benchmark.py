"""The scheduled benchmark job: tuned configs and baselines, fold by fold, gated.

Each architecture's config comes from a pinned file kept in the repository (stable for a
scheduled run) or from the best trial of an Optuna study. Every config and baseline is
trained on each fold's training part and scored on its test part; results are compared
between models (paired tests) and against the previous benchmark run (regression gate).

Exit codes: 0 no regression, 1 regression, 2 the job itself failed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import mlflow
import mlflow.keras
import numpy as np
import optuna
import pandas as pd
from mlflow.tracking import MlflowClient

from bench.baselines import DampedBias, GlobalMean
from bench.config import CONFIGS, ModelConfig, TrainOptions, config_params
from bench.data import CANONICAL, MovieLens, Split, load_movielens, make_split
from bench.errors import BenchError
from bench.evaluate import rating_metrics
from bench.ranking import ranking_metrics
from bench.spaces import suggest_config
from bench.stats import GATED, Regression, describe_folds, find_regressions, paired
from bench.study import default_storage, make_storage
from bench.tracking import as_metrics, environment_tags, log_batch, resolve_tracking_uri, setup
from bench.train import predict_codes, train

EXPERIMENT = "benchmark"
PINNED = Path(__file__).resolve().parent.parent / "studies" / "pinned_configs.json"
BASELINES = ("global_mean", "bias")
REPORTED = ("mae", "rmse", "mae_rounded", "rmse_rounded", *GATED[2:], "fit_seconds")


def load_pinned(path: Path) -> dict[str, ModelConfig]:
    try:
        raw = json.loads(path.read_text())
        return {
            arch: CONFIGS[arch](
                **{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
            )
            for arch, cfg in raw.items()
        }
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BenchError(
            f"{path}: not a valid pinned-config file ({exc}); expected JSON mapping "
            f"mf/nnmf/nn to config fields"
        ) from exc


def configs_from_studies(storage_url: str, names: dict[str, str]) -> dict[str, ModelConfig]:
    """The best (validation) trial of each study, rebuilt as a config."""
    configs = {}
    for arch, name in names.items():
        try:
            study = optuna.load_study(study_name=name, storage=make_storage(storage_url))
            best = study.best_trial
        except (KeyError, ValueError) as exc:
            raise BenchError(
                f"study {name!r} in {storage_url} has no completed trial ({exc}); run "
                f"`bench sweep --arch {arch}` first or use the pinned configs"
            ) from exc
        max_epochs = max(best.params.get("epochs", 1), 1)
        configs[arch] = suggest_config(optuna.trial.FixedTrial(best.params), arch, max_epochs)
    return configs


@dataclass
class FoldResult:
    model: str
    fold: str
    metrics: dict[str, float]
    history: dict[str, list[float]] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    keras_model: keras.Model | None = None


@dataclass
class Outcome:
    """Everything the report shows of one benchmark run."""

    results: pd.DataFrame  # one row per model and fold
    summary: pd.DataFrame  # one row per model: mean ± std and CIs
    sentences: list[str]  # paired comparisons in words
    regressions: list[Regression]
    folds: list[FoldResult]
    configs: dict[str, ModelConfig]
    source: str


def _score_grid(predict, n_users: int, n_items: int) -> np.ndarray:
    users = np.repeat(np.arange(n_users, dtype="int32"), n_items)
    items = np.tile(np.arange(n_items, dtype="int32"), n_users)
    return predict(users, items).reshape(n_users, n_items)


def evaluate(name: str, predictor: ModelConfig | str, split: Split, seed: int) -> FoldResult:
    """Fit `predictor` (a config or a baseline name) on the split; score test and ranking."""
    start = time.perf_counter()
    result = None
    if isinstance(predictor, str):
        baseline = (
            GlobalMean() if predictor == "global_mean" else DampedBias(split.n_users, split.n_items)
        )
        baseline.fit(split.train)
        predict = baseline.predict
    else:
        result = train(predictor, split, TrainOptions(seed=seed))
        predict = lambda users, items: predict_codes(result.model, users, items)  # noqa: E731
    fit_seconds = result.fit_seconds if result else time.perf_counter() - start
    test = split.test
    metrics = rating_metrics(
        test["rating"].to_numpy(), predict(test["user"].to_numpy(), test["item"].to_numpy()), "t"
    )
    metrics = {key.removeprefix("t_"): value for key, value in metrics.items()}
    scores = _score_grid(predict, split.n_users, split.n_items)
    metrics.update(ranking_metrics(lambda u: scores[u], split.train, test, split.n_items))
    metrics["fit_seconds"] = fit_seconds
    if result is None:
        return FoldResult(name, split.name, metrics)
    return FoldResult(name, split.name, metrics, result.history, result.embeddings, result.model)


def fold_splits(data: MovieLens, folds: list[str], seeds: int) -> list[Split]:
    if seeds:
        return [
            replace(make_split(data, "seed", seed=s, valid_fraction=0.0), name=f"seed{s}")
            for s in range(seeds)
        ]
    return [make_split(data, fold, valid_fraction=0.0) for fold in folds]


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for model, group in results.groupby("model", sort=False):
        row: dict[str, Any] = {"model": model, "folds": len(group)}
        for metric in REPORTED:
            d = describe_folds(group[metric].to_numpy())
            row[metric] = f"{d['mean']:.4f} ± {d['std']:.4f}"
            if metric in ("rmse", "mae", "ndcg_at_10"):
                row[f"{metric} 95% CI"] = f"{d['ci_low']:.4f}..{d['ci_high']:.4f}"
        rows.append(row)
    return pd.DataFrame(rows)


def comparisons(results: pd.DataFrame, archs: list[str]) -> list[str]:
    """Plain sentences: every pair of architectures, and each against the bias baseline."""
    by_model = {m: g.sort_values("fold") for m, g in results.groupby("model")}
    pairs = [(a, b) for i, a in enumerate(archs) for b in archs[i + 1 :]]
    pairs += [(a, "bias") for a in archs if "bias" in by_model]
    lines = []
    for a, b in pairs:
        for metric in ("rmse", "mae", "ndcg_at_10"):
            lines.append(
                paired(
                    a, by_model[a][metric].to_numpy(), b, by_model[b][metric].to_numpy(), metric
                ).sentence()
            )
    return lines


def previous_results(
    client: MlflowClient, experiment_id: str, folds_tag: str, source: str
) -> pd.DataFrame | None:
    """Per-fold results of the latest finished benchmark run on the same folds with configs
    from the same source (another source's configs are no baseline), if any."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`bench.kind` = 'benchmark' and tags.folds = '{folds_tag}' "
        f"and tags.config_source = '{source}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(runs[0].info.run_id, "results.csv", tmp)
        return pd.read_csv(path)


def _machine_tags() -> dict[str, str]:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "device": f"GPU x{len(gpus)}" if gpus else "CPU",
        "threads.intra_op": str(tf.config.threading.get_intra_op_parallelism_threads()),
    }


def log_fold(parent_id: str, experiment_id: str, fold: FoldResult, config) -> None:
    """One nested run per model and fold; learnt models are logged as MLflow models."""
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"{fold.model}-{fold.fold}",
        parent_run_id=parent_id,
        nested=True,
    ) as run:
        params = config_params(config) if not isinstance(config, str) else {"baseline": config}
        tags = {"model": fold.model, "fold": fold.fold}
        log_batch(run.info.run_id, as_metrics(fold.metrics), params, tags)
        if fold.keras_model is not None:
            mlflow.keras.log_model(fold.keras_model, name="model")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=Path, default=PINNED, help="pinned-config JSON file")
    parser.add_argument(
        "--from-studies",
        action="store_true",
        help="use the best trial of each study ARCH-SPLIT instead of the pinned file",
    )
    parser.add_argument("--study-split", default="seed", help="split of the studies to read")
    parser.add_argument("--storage", help="Optuna storage of the studies")
    parser.add_argument("--archs", default="mf,nnmf,nn")
    parser.add_argument("--folds", default=",".join(CANONICAL[:5]))
    parser.add_argument("--seeds", type=int, default=0, help="N seed-style splits instead of folds")
    parser.add_argument(
        "--baseline", type=Path, help="results.csv of an earlier run to gate against"
    )
    parser.add_argument("--min-delta", type=float, default=0.005)
    parser.add_argument("--report-dir", type=Path, default=Path("reports/benchmark"))
    parser.add_argument("--max-epochs", type=int, help="cap epochs (smoke runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir")
    parser.add_argument("--tracking-uri")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, data: MovieLens | None = None) -> int:
    """The job; `data` replaces the verified MovieLens-100k (tests pass generated data)."""
    from bench.report import write_benchmark_report

    archs = [a for a in args.archs.split(",") if a]
    unknown = [a for a in archs if a not in CONFIGS]
    if unknown:
        raise BenchError(f"--archs: unknown architecture(s) {unknown}; choose from {list(CONFIGS)}")
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    if args.from_studies:
        storage = args.storage or default_storage(tracking_uri)
        configs = configs_from_studies(storage, {a: f"{a}-{args.study_split}" for a in archs})
        source = f"best trials of the {args.study_split} studies in {Path(storage).name}"
    else:
        pinned = load_pinned(args.configs)
        missing = [a for a in archs if a not in pinned]
        if missing:
            raise BenchError(f"{args.configs} has no config for {missing}")
        configs = {a: pinned[a] for a in archs}
        source = f"pinned file {args.configs.name}"  # no absolute path: the gate matches on it
    if args.max_epochs:
        configs = {a: replace(c, epochs=min(c.epochs, args.max_epochs)) for a, c in configs.items()}
    baseline_file = None
    if args.baseline is not None:
        try:
            baseline_file = pd.read_csv(args.baseline)
        except (OSError, pd.errors.ParserError) as exc:
            raise BenchError(f"--baseline {args.baseline}: cannot read it ({exc})") from exc

    data = data if data is not None else load_movielens(args.data_dir)
    splits = fold_splits(data, args.folds.split(","), args.seeds)
    folds_tag = ",".join(s.name for s in splits)
    experiment_id = setup(EXPERIMENT, tracking_uri)
    client = MlflowClient(tracking_uri)
    previous = (
        baseline_file
        if baseline_file is not None
        else previous_results(client, experiment_id, folds_tag, source)
    )

    predictors: dict[str, ModelConfig | str] = {**configs, **{b: b for b in BASELINES}}
    start = time.perf_counter()
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"benchmark-{time.strftime('%Y%m%d-%H%M%S')}"
    ) as parent:
        mlflow.set_tags(
            {
                "bench.kind": "benchmark",
                "folds": folds_tag,
                "config_source": source,
                "data_sha256": data.checksum,
                **environment_tags(),
                **_machine_tags(),
            }
        )
        folds: list[FoldResult] = []
        for split in splits:
            for name, predictor in predictors.items():
                print(f"{split.name}: {name} ...", flush=True)
                fold = evaluate(name, predictor, split, args.seed)
                log_fold(parent.info.run_id, experiment_id, fold, predictor)
                fold.keras_model = None  # logged; free it
                folds.append(fold)
        results = pd.DataFrame([{"model": f.model, "fold": f.fold, **f.metrics} for f in folds])
        summary = summary_table(results)
        sentences = comparisons(results, archs)
        regressions = (
            find_regressions(results, previous, args.min_delta) if previous is not None else []
        )
        args.report_dir.mkdir(parents=True, exist_ok=True)
        results.to_csv(args.report_dir / "results.csv", index=False)
        outcome = Outcome(results, summary, sentences, regressions, folds, configs, source)
        write_benchmark_report(args.report_dir, outcome, tracking_uri, args.study_split)
        mlflow.log_artifacts(str(args.report_dir))
        mlflow.log_metrics(
            {"regressions": len(regressions), "job_seconds": time.perf_counter() - start}
        )

    print(summary.to_string(index=False))
    print("\npaired comparisons over folds:")
    print("\n".join(f"- {line}" for line in sentences))
    if previous is None:
        print("\nregression gate: no earlier benchmark run on these folds; nothing to compare")
        return 0
    if regressions:
        print("\nREGRESSION:")
        print("\n".join(f"- {r.message()}" for r in regressions))
        return 1
    print(f"\nregression gate: no metric worse beyond noise and {args.min_delta} (exit 0)")
    return 0


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
