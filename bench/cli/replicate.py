"""`bench replicate`: the seed post's three models with its settings and its kind of split."""

from __future__ import annotations

import argparse

from bench.benchmark.spec import QUICK_EPOCHS, ReplicationSpec
from bench.cli.common import add_data_flags, add_seed_flag, add_tracking_flag, command_parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The replication's flags."""
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EPOCHS} epochs per model")
    add_seed_flag(parser, "split, init and batch-order seed")
    add_data_flags(parser)
    add_tracking_flag(parser)
    parser.add_argument(
        "--engine",
        choices=["compiled", "fit"],
        default="compiled",
        help="compiled epoch loop, or a plain Keras fit as the reference (default %(default)s)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "replicate",
        __doc__,
        "bench replicate --quick   # 2 epochs each: the loop, not the figures",
    )
    add_arguments(parser)
    spec = ReplicationSpec(**vars(parser.parse_args(argv)))
    from bench.benchmark.replication import replicate, report

    print(report(replicate(spec)))
    return 0
