"""An architecture's search space as the nested benchmark sees it: each fold's best
validation RMSE after the nested budget (20 trials, tpe-small, no timeout), validation only.

    BENCH_DATA_DIR=../shared/data/ml-100k python benchmarks/nested_space.py mf

Used to compare two versions of a space (run it on each tree): no test part is read.
"""

from __future__ import annotations

import quiet  # noqa: F401 - first: before TensorFlow loads

# isort: split
import sys
import tempfile
from dataclasses import replace

from bench.benchmark.nested_tuning import Budget, tune
from bench.data import load_dataset, make_split


def main() -> None:
    arch = sys.argv[1]
    folder = tempfile.mkdtemp()
    stores = (f"{folder}/journal.log", f"sqlite:///{folder}/mlflow.db")
    data = load_dataset("ml-100k")
    budget = replace(Budget(), timeout=None)  # trials only: the machine's load changes nothing
    values = []
    for name in ("u1", "u2", "u3", "u4", "u5"):
        tuned = tune(data, make_split(data, name, valid_fraction=0.0), arch, 0, budget, stores)
        values.append(tuned.provenance["value"])
        print(name, round(values[-1], 4), tuned.config, flush=True)
    print(arch, "mean best validation RMSE", round(sum(values) / len(values), 4))


if __name__ == "__main__":
    main()
