"""The `bench` command: replicate, sweep, benchmark, recommend, data, study."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import matplotlib
from mlflow.exceptions import MlflowException

from bench import signals
from bench.errors import BenchError


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command's main; a user-fixable problem becomes one line on stderr, exit 2.
    SIGTERM stops it as Ctrl-C does: one line, exit 143 (130 for Ctrl-C)."""
    matplotlib.use("Agg")  # files only, never a window: chosen here, at the entry point
    try:
        with signals.handled():
            return main(argv)
    except (BenchError, MlflowException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(signals.describe(exc), file=sys.stderr)
        return signals.exit_code(exc)


def _command(module: str) -> Callable[[list[str] | None], int]:
    """A subcommand's main, imported when it is run: `bench --help` need not load TensorFlow."""

    def main(argv: list[str] | None) -> int:
        return importlib.import_module(module).main(argv)

    return main


COMMANDS = {
    "replicate": _command("bench.replication"),
    "sweep": _command("bench.sweep"),
    "benchmark": _command("bench.benchmark"),
    "recommend": _command("bench.recommend"),
    "data": _command("bench.datacli"),
    "study": _command("bench.repair"),
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
