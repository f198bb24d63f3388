"""Sweeps: one Optuna study over one architecture, its trials nested MLflow runs, shared by
any number of invocations and machines.

The names below load on first use (`bench.lazy`): importing `bench.sweep.settings` or
`bench.sweep.samplers` for a command's flags loads no Optuna.
"""

from bench.lazy import lazy_exports

__all__ = ["SweepControl", "SweepSettings", "run_study", "summarise"]
__getattr__ = lazy_exports(
    __name__,
    {
        "SweepSettings": "bench.sweep.settings",
        "SweepControl": "bench.sweep.settings",
        "summarise": "bench.sweep.summary",
        "run_study": "bench.sweep.workers",
    },
)
