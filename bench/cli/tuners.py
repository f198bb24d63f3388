"""`bench tuners`: samplers and pruners compared on the same tuning splits, by anytime curves."""

from __future__ import annotations

from pathlib import Path

from bench.archs import ARCHS
from bench.benchmark.spec import TunerSpec
from bench.cli.common import add_data_flags, add_tracking_flag, check_splits, command_parser
from bench.errors import BenchError
from bench.sweep import samplers
from bench.training.tasks import TASKS

DEFAULTS = TunerSpec()


def _names(text: str, known: list[str], flag: str) -> tuple[str, ...]:
    names = tuple(n for n in text.split(",") if n)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise BenchError(f"{flag} {text}: choose from {', '.join(known)} (comma-separated)")
    return names


def parse_args(argv: list[str] | None) -> TunerSpec:
    """The spec the command line asks for; one `error:` line for a bad value."""
    parser = command_parser(
        "tuners",
        __doc__,
        "bench tuners --archs mf --samplers random,tpe,tpe-small --seeds 3 --trials 24",
    )
    add = parser.add_argument
    add("--archs", default=",".join(DEFAULTS.archs), help="comma-separated (default %(default)s)")
    add("--folds", default=",".join(DEFAULTS.folds), help="comma-separated (default %(default)s)")
    add(
        "--samplers",
        default=",".join(DEFAULTS.samplers),
        help=f"comma-separated, of {', '.join(samplers.SAMPLERS)} (default %(default)s)",
    )
    add(
        "--pruners",
        default=",".join(DEFAULTS.pruners),
        help=f"comma-separated, of {', '.join(samplers.PRUNERS)} (default %(default)s)",
    )
    add(
        "--seeds", type=int, default=DEFAULTS.seeds, help="sampler seeds each (default %(default)s)"
    )
    add("--trials", type=int, default=DEFAULTS.trials, help="per study (default %(default)s)")
    add(
        "--metric",
        choices=TASKS["rating"].metrics(),
        default=DEFAULTS.metric,
        help="validation metric (default %(default)s)",
    )
    add(
        "--max-epochs",
        type=int,
        default=DEFAULTS.max_epochs,
        help="cap on a trial's epochs (default %(default)s)",
    )
    add(
        "--patience",
        type=int,
        default=DEFAULTS.patience or 0,
        help="early stopping patience in epochs; 0: off (default %(default)s)",
    )
    add(
        "--report-dir",
        type=Path,
        default=DEFAULTS.report_dir,
        help="where report.md, anytime.png and runs.csv go (default %(default)s)",
    )
    add_data_flags(parser)
    add_tracking_flag(parser)  # fmt: skip
    args = parser.parse_args(argv)
    if min(args.seeds, args.trials, args.max_epochs) < 1 or args.patience < 0:
        raise BenchError("--seeds, --trials and --max-epochs must be >= 1, --patience >= 0")
    fields = vars(args) | {
        "archs": _names(args.archs, list(ARCHS), "--archs"),
        "folds": tuple(f for f in args.folds.split(",") if f),
        "samplers": _names(args.samplers, list(samplers.SAMPLERS), "--samplers"),
        "pruners": _names(args.pruners, list(samplers.PRUNERS), "--pruners"),
        "patience": args.patience or None,
    }
    for name in fields["samplers"]:
        samplers.require("sampler", name)
    check_splits(args.dataset, list(fields["folds"]), "--folds")
    return TunerSpec(**fields)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print the ranking and where the report is."""
    spec = parse_args(argv)
    from bench.benchmark.tuner_job import EXPERIMENT, run_tuners
    from bench.benchmark.tuner_report import ranking

    runs = run_tuners(spec)
    print(ranking(runs).to_string(index=False, float_format="{:.4f}".format))
    print(f"\nreport: {spec.report_dir / 'report.md'}; MLflow experiment {EXPERIMENT!r}")
    return 0
