"""Tune MF, NNMF and NN with Optuna; every trial is a nested MLflow run.

python studies/sweep.py [--arch mf|nnmf|nn|all] [--trials N] [--timeout S] [--workers N]
                        [--split seed|u1..u5|ua|ub] [--seed S] [--storage URL]
                        [--tracking-uri URI] [--study-name NAME]
"""

from bench.cli import run
from bench.sweep import main

if __name__ == "__main__":
    raise SystemExit(run(main))
