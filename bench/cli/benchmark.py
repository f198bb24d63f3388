"""The scheduled benchmark job: every fold, tuned models and baselines, gated against a reference.

Flags in, a `BenchmarkSpec` out. Exit codes: 0 no regression, 1 regression, 2 the job itself failed.
"""

from __future__ import annotations

import argparse
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from bench.archs import ARCHS
from bench.benchmark.spec import (
    BAYESIAN_PEERS,
    PEERS,
    POST_ARCHS,
    SURPRISE_PEERS,
    BenchmarkSpec,
    Budget,
)
from bench.cli.common import (
    add_data_flags,
    add_seed_flag,
    add_storage_flag,
    add_tracking_flag,
    check_splits,
    command_parser,
)
from bench.errors import BenchError
from bench.training.tasks import TASKS, task_metric

if TYPE_CHECKING:
    from bench.benchmark.results import Outcome
    from bench.data import RatingData


def print_outcome(outcome: Outcome, report_dir: Path | None = None) -> int:
    """The summary, the comparisons, the gate's verdict, what was promoted and where the
    report is; the exit code."""
    print(outcome.summary.to_string(index=False))
    if outcome.tuning is not None and not outcome.tuning.empty:
        print("\ndid tuning help? (tuned against trial 0, the published settings):")
        print(outcome.tuning.to_string(index=False, float_format="{:.4f}".format))
    print("\npaired comparisons over folds:")
    print("\n".join(f"- {line}" for line in outcome.sentences))
    code = print_gate(outcome)
    print(closing_lines(outcome, report_dir))
    return code


def closing_lines(outcome: Outcome, report_dir: Path | None) -> str:
    """The promoted reference, if any, and where the report and the run are."""
    run = f"benchmark run {outcome.run}" if outcome.run else "this benchmark run"
    lines = [""]
    if outcome.promoted:
        lines.append(
            f"promoted: {run} is now the reference that later runs of the same identity "
            "are gated against (MLflow tag bench.reference=true)"
        )
    if report_dir is not None:
        html = report_dir / "report.html"
        lines.append(f"report: {html} (beside it report.md, results.csv, figures; also on {run})")
    return "\n".join(lines)


def print_gate(outcome: Outcome) -> int:
    """The regression gate's verdict; the exit code (1: a regression)."""
    if outcome.previous is None:
        print("\nregression gate: no earlier comparable benchmark run; nothing compared (exit 0)")
        return 0
    if outcome.regressions:
        print(f"\nREGRESSION against the {outcome.against}:")
        print("\n".join(f"- {r.message()}" for r in outcome.regressions))
        return 1
    print(
        f"\nregression gate: no metric worse beyond noise and {outcome.min_delta} than the "
        f"{outcome.against} (exit 0)"
    )
    return 0


def parse_args(argv: list[str] | None) -> BenchmarkSpec:
    """The spec that the command line asks for; one `error:` line for a bad value."""
    parser = command_parser(
        "benchmark",
        __doc__,
        "bench benchmark --peers svd   # nested tuning per fold, with SVD as a peer",
        "bench benchmark --protocol pinned --configs studies/pinned_configs.json --promote",
    )
    what = parser.add_argument_group("what to run")
    what.add_argument(
        "--protocol",
        choices=["nested", "pinned", "studies"],
        default="nested",
        help="nested: tune each fold on its training part (default); pinned: the --configs "
        "file; studies: best trials of the sweep studies (tuned on data overlapping the folds)",
    )
    what.add_argument(
        "--configs", type=Path, help="pinned-config JSON file (with --protocol pinned)"
    )
    what.add_argument("--from-studies", action="store_true", help="the same as --protocol studies")
    what.add_argument(
        "--archs",
        default=",".join(POST_ARCHS),
        help="comma-separated (default: the post's three); all: every registered one",
    )
    what.add_argument(
        "--peers",
        nargs="?",
        const=",".join(PEERS),
        default="",
        help="add peers tuned per fold with the same budget and validation part: alone, all of "
        f"{','.join(PEERS)}; or a comma-separated subset (default: none). "
        f"{','.join(SURPRISE_PEERS)} are scikit-surprise's, tuned on the rating metric; "
        "ease,itemknn,als,bpr rank only, tuned on validation NDCG@10 (als, bpr: the implicit "
        "package's); bfm is myFM's Bayesian "
        "factorisation machine (rank 10, 200 Gibbs sweeps, implicit features: fixed in advance)",
    )
    what.add_argument("--folds", help="comma-separated folds (default: the data set's)")
    what.add_argument(
        "--seeds", type=int, default=0, help="N seed-style splits instead of folds (default: 0)"
    )
    what.add_argument(
        "--max-epochs", type=int, help=f"cap epochs (nested default {Budget.max_epochs})"
    )
    add_seed_flag(what, "tuning, split and training seed")
    _add_tuning_group(parser.add_argument_group("nested tuning (--protocol nested)"))
    _add_gate_group(parser.add_argument_group("regression gate (exit 1 on a regression)"))
    stores = parser.add_argument_group("stores and report")
    add_storage_flag(stores, "Optuna storage of the nested and sweep studies")
    add_tracking_flag(stores)
    stores.add_argument(
        "--report-dir",
        type=Path,
        default=Path("reports/benchmark"),
        help="where report.md, report.html, results.csv and figures go (default %(default)s)",
    )
    stores.add_argument(
        "--study-split",
        default="seed",
        help="split of the sweep studies to read, with --protocol studies (default %(default)s)",
    )
    add_data_flags(parser.add_argument_group("data"))
    args = parser.parse_args(argv)
    if args.peers:
        from bench.benchmark.peers import require_surprise

        unknown = set(args.peers.split(",")) - set(PEERS)
        if unknown:
            raise BenchError(f"--peers {args.peers}: choose from {','.join(PEERS)}")
        if set(args.peers.split(",")) & set(SURPRISE_PEERS):
            require_surprise()
        from bench.benchmark.rankers import require_implicit

        require_implicit(args.peers.split(","))
        if set(args.peers.split(",")) & set(BAYESIAN_PEERS):
            from bench.benchmark.bfm import require_myfm

            require_myfm()
    if args.from_studies:
        args.protocol = "studies"
    if args.archs == "all":
        args.archs = ",".join(ARCHS)
    if args.tune_trials < 1 or not 0 < args.valid_fraction < 1 or (args.max_epochs or 1) < 1:
        raise BenchError("--tune-trials and --max-epochs must be >= 1, --valid-fraction in (0, 1)")
    _check_gate_and_folds(args)
    fields = {k: v for k, v in vars(args).items() if k != "from_studies"}
    fields["archs"] = tuple(a for a in args.archs.split(",") if a)
    fields["folds"] = tuple(f for f in (args.folds or "").split(",") if f)
    fields["peers"] = tuple(p for p in args.peers.split(",") if p)
    return BenchmarkSpec(**fields)


def _check_gate_and_folds(args: argparse.Namespace) -> None:
    """The values found wrong only after the job otherwise: one error line before it starts."""
    if args.workers < 1:
        raise BenchError(f"--workers {args.workers}: studies at a time, 1 or more")
    if args.tune_timeout < 0:
        raise BenchError("--tune-timeout must be positive seconds, or 0 for no limit")
    args.metric = Budget.metric if args.task == "rating" and not args.metric else args.metric
    args.metric = task_metric(args.task, args.metric)
    if args.task != "rating" and (args.protocol != "nested" or args.ensembles):
        raise BenchError(
            f"--task {args.task} tunes each fold's configs (nested protocol) and has no "
            "ensembles (they average ratings): drop --configs, --from-studies and --ensembles"
        )
    rated = set(args.peers.split(",")) & set(SURPRISE_PEERS)
    if args.task != "rating" and rated:
        raise BenchError(
            f"--peers {','.join(sorted(rated))}: scikit-surprise's peers are tuned on a rating "
            f"metric, not on the {args.task} task's; leave them out of a --task {args.task} run"
        )
    if args.ensembles < 0 or (args.ensembles and args.protocol != "nested"):
        raise BenchError(
            f"--ensembles {args.ensembles}: members per architecture, 1 or more, and only "
            "with nested tuning (its studies hold the members)"
        )
    if args.min_delta < 0:
        raise BenchError(
            f"--min-delta {args.min_delta:g}: the smallest worsening that fails the gate must "
            "be 0 or more"
        )
    if args.folds and not args.seeds:
        check_splits(args.dataset, [f for f in args.folds.split(",") if f], "--folds")
    if args.baseline is not None:
        from bench.benchmark.stats import read_baseline  # pandas and scipy, no TensorFlow

        read_baseline(args.baseline)


def _add_tuning_group(group: argparse._ArgumentGroup) -> None:
    """Nested tuning's budget and selection metric."""
    group.add_argument(
        "--tune-trials",
        type=int,
        default=Budget.trials,
        help="trials per fold and architecture (default %(default)s)",
    )
    group.add_argument(
        "--tune-timeout",
        type=float,
        default=Budget.timeout or 0.0,
        help="a safety cap in seconds per fold and architecture; a study it stops early "
        "depends on the machine's load and is marked so in the report (default: 0, none)",
    )
    group.add_argument(
        "--ensembles",
        type=int,
        default=0,
        metavar="M",
        help="add ensemble rows: each architecture's M best trials of each fold's study "
        "(ARCH-ens) and all of them together (all-ens), weighted by greedy selection on the "
        "validation part, refitted on the fold (default 0: none)",
    )
    group.add_argument(
        "--valid-fraction",
        type=float,
        default=Budget.valid_fraction,
        help="share of each fold's training part that tuning validates on (default %(default)s)",
    )
    group.add_argument(
        "--workers",
        type=int,
        default=1,
        help="pieces run at once, each in a process of its own: the (fold, architecture) "
        "and peer studies, then the folds' fits; a study's trials still run one after "
        "another, so the configs chosen and the figures are the same "
        "(default %(default)s; 2 uses both cores of a 2-core machine)",
    )
    group.add_argument(
        "--task",
        choices=list(TASKS),
        default=Budget.task,
        help="what the architectures' studies train and select for: rating (default) or "
        "ranking (positives, sampled negatives, BPR or BCE, selected on NDCG@10; protocol "
        "nested, no ensembles); part of the run's identity",
    )
    group.add_argument(
        "--metric",
        choices=[m for task in TASKS.values() for m in task.metrics()],
        help="validation metric configs are selected on, of the task's kind; part of the "
        f"run's identity (default: {Budget.metric} for rating, ndcg_at_10 for ranking)",
    )


def _add_gate_group(group: argparse._ArgumentGroup) -> None:
    """What a run is gated against, and how much worse fails it."""
    group.add_argument(
        "--baseline", type=Path, help="results.csv of an earlier run to gate against"
    )
    group.add_argument(
        "--promote",
        action="store_true",
        help="make this run the reference that later runs of the same identity are gated "
        "against, until another run is promoted (without one: the latest finished run)",
    )
    group.add_argument(
        "--min-delta",
        type=float,
        default=0.005,
        help="the smallest worsening of a mean metric that fails the gate (default %(default)s)",
    )


def run(spec: BenchmarkSpec, data: RatingData | None = None) -> int:
    """Run the job and print its outcome; the exit code (1: a regression)."""
    from bench.benchmark.job import run_benchmark

    return print_outcome(run_benchmark(spec, data), spec.report_dir)


def main(argv: list[str] | None = None) -> int:
    spec = parse_args(argv)
    try:
        return run(spec)
    except BenchError:
        raise
    except Exception as exc:  # the job itself failed: exit 2, never 1 (which means regression)
        spec.report_dir.mkdir(parents=True, exist_ok=True)
        (spec.report_dir / "error.log").write_text(traceback.format_exc())
        raise BenchError(
            f"benchmark job failed: {type(exc).__name__}: {exc} (traceback in "
            f"{spec.report_dir / 'error.log'})"
        ) from exc
