"""What a command prints: its own lines only, unless `-v` asks for the libraries' chatter.

Quiet (the default) means: TensorFlow's C++ logging at FATAL only (TF_CPP_MIN_LOG_LEVEL=3);
the lines TensorFlow's native libraries print while loading (oneDNN, CUDA stubs, "All log
messages before absl::InitializeLog()", written straight to file descriptor 2 before any
level applies) swallowed by pointing that descriptor at /dev/null during `import tensorflow`;
the absl, TensorFlow, Keras, MLflow and alembic Python loggers at ERROR and Optuna's at
WARNING (a failed trial stays visible); MLflow's "View run" lines and artifact progress bars
off; library warnings hidden. It must happen before TensorFlow is imported, so the entry
point (`bench.cli`) calls `apply` first; it marks the environment (`BENCH_QUIET=1`) so that
worker processes, which import `bench` before TensorFlow, stay quiet too (`bench/__init__.py`
calls `inherit`). Explicit environment settings win.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import io
import logging
import os
import sys
import types
import warnings
from collections.abc import Callable, Iterator, Sequence

FLAGS = ("-v", "--verbose")
MARKER = "BENCH_QUIET"
ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "MLFLOW_LOGGING_LEVEL": "ERROR",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
LOGGERS = ("absl", "mlflow", "alembic", "tensorflow", "keras", "urllib3", "h5py")
# loggers that print a traceback at ERROR for an error that is raised to the caller anyway
RAISED_ANYWAY = ("mlflow.store.db.utils",)
NOISY_MODULES = r"(absl|mlflow|optuna|keras|tensorflow|google|tf_keras|pydantic|sqlalchemy)(\.|$)"


def split_flags(argv: Sequence[str]) -> tuple[list[str], bool]:
    """`argv` without the verbosity flags, and whether one was given."""
    rest = [arg for arg in argv if arg not in FLAGS]
    return rest, len(rest) != len(argv)


@contextlib.contextmanager
def stderr_to_devnull() -> Iterator[None]:
    """Point file descriptor 2 (what native libraries write to) at /dev/null."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """In a quiet process, what a library prints to `sys.stderr` (its progress bars) is
    dropped for the block; with `-v` it shows."""
    if os.environ.get(MARKER) != "1":
        yield
        return
    with contextlib.redirect_stderr(io.StringIO()):
        yield


Then = Callable[[types.ModuleType], None]


class _HookedLoader(importlib.abc.Loader):
    """Runs a module's first import with descriptor 2 silenced (`silent`), then `then`."""

    def __init__(self, loader: importlib.abc.Loader, silent: bool, then: Then | None):
        self.loader, self.silent, self.then = loader, silent, then

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        with stderr_to_devnull() if self.silent else contextlib.nullcontext():
            self.loader.exec_module(module)
        if self.then is not None:
            self.then(module)


class _FirstImport(importlib.abc.MetaPathFinder):
    """Hooks the first import of one top-level module (see `_HookedLoader`)."""

    def __init__(self, name: str, silent: bool = False, then: Then | None = None):
        self.name, self.silent, self.then = name, silent, then

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _HookedLoader(spec.loader, self.silent, self.then)
        return spec


def _hook_first_import(name: str, silent: bool = False, then: Then | None = None) -> None:
    """Hook `name`'s first import, once: `then` runs at once if it is already imported."""
    if name in sys.modules:
        if then is not None:
            then(sys.modules[name])
    elif not any(isinstance(f, _FirstImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _FirstImport(name, silent, then))


def _quiet_optuna(optuna: types.ModuleType) -> None:
    """Optuna's own handler at WARNING (its first use would set INFO)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _silence_python() -> None:
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in RAISED_ANYWAY:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    _hook_first_import("optuna", then=_quiet_optuna)  # `--help` imports no library
    warnings.filterwarnings("ignore", module=NOISY_MODULES)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _quiet_process() -> None:
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    _silence_python()
    _hook_first_import("tensorflow", silent=True)


def apply(verbose: bool) -> None:
    """At an entry point, before TensorFlow is imported: quiet unless `verbose`."""
    if verbose:
        os.environ.pop(MARKER, None)
        return
    os.environ[MARKER] = "1"
    _quiet_process()


def inherit() -> None:
    """In a process started by a quiet command (marked environment): be quiet as well."""
    if os.environ.get(MARKER) == "1":
        _quiet_process()
