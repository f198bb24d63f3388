"""The command line: `bench` and its commands, the studies' scripts; flags in, specs out.

Every command and script starts here, so that its output is set before TensorFlow loads:
quiet by default, the libraries' logging with `-v`/`--verbose` (see `bench.verbosity`).
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Callable

from bench import files, signals, verbosity
from bench.errors import REPORTED, BenchError, Reported, StoreFull, disk_full, one_line


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command's main; a user-fixable problem becomes one line on stderr, exit 2.

    `-v`/`--verbose` anywhere in argv (default: sys.argv[1:]) keeps the libraries' logging.
    SIGTERM stops it as Ctrl-C does: one line, exit 143 (130 for Ctrl-C).
    """
    argv, verbose = verbosity.split_flags(sys.argv[1:] if argv is None else argv)
    verbosity.apply(verbose)
    files.private_umask()  # stores, artifacts and reports: readable by their owner only
    import matplotlib  # here, not at the top: `bench --help` loads no library

    matplotlib.use("Agg")  # files only, never a window: chosen here, at the entry point
    try:
        with signals.handled():
            return main(argv)
    except Reported:
        return REPORTED  # a worker printed the error line
    except (Exception, StoreFull) as exc:
        if not isinstance(exc, (BenchError, StoreFull)) and not _mlflow(exc) and not disk_full(exc):
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(signals.describe(exc), file=sys.stderr)
        return signals.exit_code(exc)


def _mlflow(exc: BaseException) -> bool:
    """Whether it is an MlflowException (a store's error, said in one line); MLflow is
    not imported for the check: such an error means it was."""
    exceptions = sys.modules.get("mlflow.exceptions")
    return exceptions is not None and isinstance(exc, exceptions.MlflowException)


def _command(module: str) -> Callable[[list[str] | None], int]:
    """A subcommand's main, imported when it is run: `bench --help` need not load TensorFlow."""

    def main(argv: list[str] | None) -> int:
        return importlib.import_module(module).main(argv)

    return main


def script(module: str) -> int:
    """A studies/*.py script: `module`'s main, imported only once the output is set."""
    return run(_command(module))


COMMANDS = {  # name: (module whose main runs it, one line for `bench --help`)
    "sweep": ("bench.cli.sweep", "tune architectures with Optuna on a validation split"),
    "benchmark": (
        "bench.cli.benchmark",
        "nested-tuned configs, baselines and peers on folds, gated",
    ),
    "tuners": ("bench.cli.tuners", "compare samplers and pruners by their anytime curves"),
    "replicate": ("bench.cli.replicate", "the seed post's three models with its settings"),
    "recommend": ("bench.cli.recommend", "a user's top-k unseen movies from a logged model"),
    "data": ("bench.cli.data", "list the data sets, or locate, verify and summarise one"),
    "study": ("bench.cli.study", "repair: fail the trials that stopped processes left running"),
}


def usage() -> str:
    """`bench --help`: every command with its line."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {line}" for name, (_, line) in COMMANDS.items()]
    return "\n".join(
        [
            "usage: bench [-v] COMMAND [options]   (bench COMMAND --help for its options)",
            "",
            "commands:",
            *lines,
            "",
            "-v, --verbose  the libraries' logging too (TensorFlow, MLflow, Optuna)",
        ]
    )


def unknown_command(command: str) -> str:
    """What to say of a command that does not exist: the closest one, and all of them."""
    close = difflib.get_close_matches(command, COMMANDS, n=1)
    guess = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"bench: unknown command {command!r}; {guess}commands: {', '.join(COMMANDS)} (bench --help)"
    )


def main(argv: list[str] | None = None) -> int:
    """The `bench` command: dispatch to a command's main, importing only that command."""
    argv = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in argv if arg not in verbosity.FLAGS), None)
    if command not in COMMANDS:
        asked = command in ("-h", "--help")
        if command is None or asked:
            print(usage(), file=sys.stdout if asked else sys.stderr)
            return 0 if asked else 2
        print(f"error: {unknown_command(command)}", file=sys.stderr)
        return 2
    rest = list(argv)
    rest.remove(command)
    return run(_command(COMMANDS[command][0]), rest)
