"""A `bench` command that waits at a gate, for races between processes:
`python -m tests.support.at_once GATE NAME COMMAND [flags]`.

With its libraries loaded it writes GATE/NAME.ready, then waits (at most WAIT_S) for
GATE/go to exist: processes let through one gate open their stores at the same moment, as
`bench` commands started together do when their start-ups take as long. The `synthetic`
data set is registered (tests.support.sweep_entry).
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import bench.benchmark.job  # noqa: F401 - TensorFlow, MLflow and Optuna, before the gate
from bench.cli import run
from tests.support import sweep_entry

WAIT_S = 300
POLL_S = 0.01


def main() -> int:
    sweep_entry.register()
    gate, name, command, *flags = sys.argv[1:]
    module = importlib.import_module(f"bench.cli.{command}")
    (Path(gate) / f"{name}.ready").touch()
    deadline = time.monotonic() + WAIT_S
    while not (Path(gate) / "go").exists():
        if time.monotonic() > deadline:
            print(f"error: {gate}/go did not appear within {WAIT_S} s", file=sys.stderr)
            return 3
        time.sleep(POLL_S)
    return run(module.main, flags)


if __name__ == "__main__":
    raise SystemExit(main())
