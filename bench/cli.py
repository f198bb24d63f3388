"""The `bench` command: replicate, sweep, benchmark, recommend, data, study; the studies' scripts.

Every command and script starts here, so that its output is set before TensorFlow loads:
quiet by default, the libraries' logging with `-v`/`--verbose` (see `bench.verbosity`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import matplotlib
from mlflow.exceptions import MlflowException

from bench import signals, verbosity
from bench.errors import BenchError


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command's main; a user-fixable problem becomes one line on stderr, exit 2.

    `-v`/`--verbose` anywhere in argv (default: sys.argv[1:]) keeps the libraries' logging.
    SIGTERM stops it as Ctrl-C does: one line, exit 143 (130 for Ctrl-C).
    """
    argv, verbose = verbosity.split_flags(sys.argv[1:] if argv is None else argv)
    verbosity.apply(verbose)
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


def script(module: str) -> int:
    """A studies/*.py script: `module`'s main, imported only once the output is set."""
    return run(_command(module))


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
    command = next((arg for arg in argv if arg not in verbosity.FLAGS), None)
    if command not in COMMANDS:
        print(
            f"usage: bench [-v] {{{','.join(COMMANDS)}}} [options]  (bench COMMAND --help; "
            f"-v: the libraries' logging too)",
            file=sys.stderr,
        )
        return 0 if command in ("-h", "--help") else 2
    rest = list(argv)
    rest.remove(command)
    return run(COMMANDS[command], rest)
