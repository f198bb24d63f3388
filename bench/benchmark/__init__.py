"""The benchmark: configs x folds -> statistics -> regression gate -> report, and the seed
post's replication. The names load on first use (`bench.lazy`): the specs in
`bench.benchmark.spec` are light, for the commands' flags."""

from bench.lazy import lazy_exports

__all__ = [
    "BenchmarkSpec",
    "FoldResult",
    "Outcome",
    "ReplicationSpec",
    "replicate",
    "run_benchmark",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "run_benchmark": "bench.benchmark.job",
        "ReplicationSpec": "bench.benchmark.spec",
        "replicate": "bench.benchmark.replication",
        "FoldResult": "bench.benchmark.results",
        "Outcome": "bench.benchmark.results",
        "BenchmarkSpec": "bench.benchmark.spec",
    },
)
