"""Training: fit one config on one split, with the compiled engine or a plain Keras `fit`,
for a registered task (`bench.training.tasks`: rating or ranking). TensorFlow loads when a
training name is first read: the light modules (options, tasks) load without it."""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from bench.lazy import lazy_exports

if TYPE_CHECKING:
    from bench.training.options import TrainOptions
    from bench.training.tasks import TASKS, Task, get_task
    from bench.training.train import TrainingDiverged, TrainResult, predict_codes, train

_EXPORTS = {
    "TrainOptions": "bench.training.options",
    "TASKS": "bench.training.tasks",
    "Task": "bench.training.tasks",
    "get_task": "bench.training.tasks",
    **dict.fromkeys(
        ("TrainingDiverged", "TrainResult", "predict_codes", "train"), "bench.training.train"
    ),
}
__getattr__ = lazy_exports(__name__, _EXPORTS)


class _Face(types.ModuleType):
    """This package, whose `train` stays the training function once its submodule `train`
    loads (the import system sets a package's attribute of a submodule's name to the
    module: `from bench.training import train` would then give the module)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "train" and isinstance(value, types.ModuleType):
            return  # the submodule stays reachable as sys.modules["bench.training.train"]
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Face
__all__ = ["TASKS", "Task", "TrainOptions", "TrainResult", "TrainingDiverged", "get_task",
           "predict_codes", "train"]  # fmt: skip
