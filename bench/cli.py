"""The `bench` command: replicate, sweep, benchmark, recommend, data."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bench.errors import BenchError


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command's main; a user-fixable problem becomes one line on stderr, exit 2."""
    from mlflow.exceptions import MlflowException

    try:
        return main(argv)
    except (BenchError, MlflowException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _data(argv: list[str] | None) -> int:
    from bench.data import load_movielens

    parser = argparse.ArgumentParser(
        prog="bench data", description="Locate (or download), verify and summarise MovieLens-100k."
    )
    parser.add_argument("--data-dir", help="MovieLens-100k folder (default: $BENCH_DATA_DIR)")
    args = parser.parse_args(argv)
    data = load_movielens(args.data_dir)
    print(
        f"{data.root}: verified; {len(data.ratings)} ratings, "
        f"{data.n_users} users, {data.n_items} items"
    )
    return 0


def _replicate(argv: list[str] | None) -> int:
    from bench.replication import main

    return main(argv)


def _sweep(argv: list[str] | None) -> int:
    from bench.sweep import main

    return main(argv)


def _benchmark(argv: list[str] | None) -> int:
    from bench.benchmark import main

    return main(argv)


def _recommend(argv: list[str] | None) -> int:
    from bench.recommend import main

    return main(argv)


COMMANDS = {
    "replicate": _replicate,
    "sweep": _sweep,
    "benchmark": _benchmark,
    "recommend": _recommend,
    "data": _data,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(
            f"usage: bench {{{','.join(COMMANDS)}}} [options]  (bench COMMAND --help)",
            file=sys.stderr,
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return run(COMMANDS[argv[0]], argv[1:])
