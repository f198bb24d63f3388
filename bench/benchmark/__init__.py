"""The benchmark: configs x folds -> statistics -> regression gate -> report, and the seed
post's replication."""

from bench.benchmark.job import run_benchmark
from bench.benchmark.replication import ReplicationSpec, replicate
from bench.benchmark.results import FoldResult, Outcome
from bench.benchmark.spec import BenchmarkSpec

__all__ = [
    "BenchmarkSpec",
    "FoldResult",
    "Outcome",
    "ReplicationSpec",
    "replicate",
    "run_benchmark",
]
