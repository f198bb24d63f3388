"""Tune MF, NNMF and NN with Optuna; every trial is a nested MLflow run.

python studies/sweep.py [-v] [--arch mf|nnmf|nn|all] [--trials N] [--timeout S] [--workers N]
                        [--split seed|u1..u5|ua|ub] [--seed S] [--storage URL]
                        [--tracking-uri URI] [--study-name NAME]
-v: also the libraries' logging (TensorFlow, MLflow, Optuna), quiet by default.
"""

from bench.cli import script

if __name__ == "__main__":
    raise SystemExit(script("bench.cli.sweep"))
