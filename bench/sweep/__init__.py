"""Sweeps: one Optuna study over one architecture, its trials nested MLflow runs, shared by
any number of invocations and machines."""

from bench.sweep.settings import SweepSettings
from bench.sweep.shared import SweepControl
from bench.sweep.summary import summarise
from bench.sweep.workers import run_study

__all__ = ["SweepControl", "SweepSettings", "run_study", "summarise"]
