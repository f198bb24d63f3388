"""Package faces that load on first use: a command's `--help`, or a bad flag, answers before
TensorFlow, MLflow or Optuna load (seconds and hundreds of megabytes)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` for `package` that imports each public name from its module
    (`exports`: name -> module) when it is first read, and keeps it."""

    def __getattr__(name: str) -> object:  # noqa: N807 - the module hook's own name
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
