"""`bench sweep` for subprocess tests: `python -m tests.support.sweep_entry [sweep flags]`.

It adds one data set to the registry, `synthetic`: MovieLens-100k's format without its
checksums, for the small folders that tests/synthetic.py writes (the real ml-100k entry
refuses them, rightly). Everything else is the real command line.
"""

from __future__ import annotations

from dataclasses import replace

from bench.cli import run
from bench.cli.sweep import main
from bench.datasets import DATASETS
from bench.datasets.ml100k import ML100K

SYNTHETIC = replace(
    ML100K,
    name="synthetic",
    description="generated ratings in MovieLens-100k's format (tests only)",
    folder="synthetic",
    url=None,
    archive_size=None,
    archive_sha256=None,
    files_sha256={},
    n_ratings=None,
)


def register() -> None:
    """Add `synthetic` to this process's registry (subprocesses only: an in-process test
    uses the `synthetic_dataset` fixture, which takes it out again)."""
    DATASETS.setdefault(SYNTHETIC.name, SYNTHETIC)


# a sweep's workers import this module as `__mp_main__` (multiprocessing re-imports the
# invocation's main module in each one): they need the data set as much as the invocation
if __name__ in ("__main__", "__mp_main__"):
    register()
if __name__ == "__main__":
    raise SystemExit(run(main))
