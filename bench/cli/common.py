"""Flags that several commands share, each defined once with its help text and default."""

from __future__ import annotations

import argparse

from bench.datasets import DEFAULT, get_dataset
from bench.errors import BenchError

VERBOSE_LINE = "-v, --verbose anywhere on the line: the libraries' logging too"


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (what, where, what to do), exit 2, and
    whose help ends with examples and the `-v` flag that every command takes."""

    def __init__(self, *args, examples: tuple[str, ...] = (), **kwargs):
        lines = ["examples:", *(f"  {example}" for example in examples), ""] if examples else []
        kwargs.setdefault("epilog", "\n".join([*lines, VERBOSE_LINE]))
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message}; see {self.prog} --help\n")


def command_parser(command: str, doc: str, *examples: str) -> Parser:
    """The parser of `bench COMMAND`, described by the first line of `doc`."""
    return Parser(
        prog=f"bench {command}", description=doc.strip().splitlines()[0], examples=examples
    )


STORAGE_DEFAULT = "$BENCH_STORAGE, else optuna-journal.log beside the MLflow SQLite file"


def add_data_flags(parser: argparse._ActionsContainer) -> None:
    """--dataset and --data-dir: which data set, and where its files are."""
    parser.add_argument(
        "--dataset",
        default=DEFAULT,
        help="registered data set or csv:PATH (bench data list; default %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        help="the data set's folder (default: $BENCH_DATA_DIR, else the cache, else a download)",
    )


def check_splits(dataset: str, names: list[str], flag: str) -> None:
    """Each of `names` a split of the data set (its folds, or `seed`); else one error line."""
    known = get_dataset(dataset).splits
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BenchError(f"{flag} {','.join(names)}: {dataset} has {', '.join(known)}")


def add_tracking_flag(parser: argparse._ActionsContainer) -> None:
    """--tracking-uri: the MLflow store."""
    parser.add_argument(
        "--tracking-uri",
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )


def add_storage_flag(parser: argparse._ActionsContainer, what: str = "Optuna storage") -> None:
    """--storage: where the Optuna studies live."""
    parser.add_argument(
        "--storage", help=f"{what}: a journal file or database URL (default: {STORAGE_DEFAULT})"
    )


def add_seed_flag(parser: argparse._ActionsContainer, what: str) -> None:
    """--seed, default 0."""
    parser.add_argument("--seed", type=int, default=0, help=f"{what} (default %(default)s)")


def add_tuning_flags(
    parser: argparse._ActionsContainer, choices: tuple[list[str], list[str]], defaults: tuple
) -> None:
    """--sampler, --pruner and --patience: how a study searches and how long a trial trains.
    The caller passes the registered names (this module imports nothing heavy, so `bench
    data` and `bench recommend` start without TensorFlow)."""
    (samplers, pruners), (sampler, pruner, patience) = choices, defaults
    parser.add_argument(
        "--sampler",
        choices=samplers,
        default=sampler,
        help="Optuna sampler (default %(default)s; bench tuners compares them)",
    )
    parser.add_argument(
        "--pruner",
        choices=pruners,
        default=pruner,
        help="Optuna pruner (default %(default)s)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=patience or 0,
        help="early stopping: epochs without a better validation metric before a trial stops, "
        "its best epoch kept (default %(default)s; 0: every trial trains all its epochs)",
    )
