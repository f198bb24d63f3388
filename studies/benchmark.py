"""The scheduled benchmark job: tuned configs and baselines on folds u1..u5, gated.

    python studies/benchmark.py [-v] [--from-studies] [--configs FILE] [--baseline results.csv]
                                [--folds u1,..,u5 | --seeds N] [--min-delta 0.005]

Exit codes: 0 no regression, 1 regression, 2 the job failed.
-v: also the libraries' logging (TensorFlow, MLflow, Optuna), quiet by default.
"""

import sys
from pathlib import Path

from bench.cli import script

PINNED = Path(__file__).resolve().parent / "pinned_configs.json"

if __name__ == "__main__":
    if "--configs" not in sys.argv:  # the repository's pinned file, for --protocol pinned
        sys.argv[1:1] = ["--configs", str(PINNED)]
    raise SystemExit(script("bench.cli.benchmark"))
