"""The scheduled benchmark job: tuned configs and baselines on folds u1..u5, gated.

    python studies/benchmark.py [-v] [--from-studies] [--configs FILE] [--baseline results.csv]
                                [--folds u1,..,u5 | --seeds N] [--min-delta 0.005]

Exit codes: 0 no regression, 1 regression, 2 the job failed.
-v: also the libraries' logging (TensorFlow, MLflow, Optuna), quiet by default.
"""

from bench.cli import script

if __name__ == "__main__":
    raise SystemExit(script("bench.benchmark"))
