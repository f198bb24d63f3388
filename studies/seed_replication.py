"""Train the reference post's three models with its settings; compare with its figures.

python studies/seed_replication.py [-v] [--quick] [--seed S] [--data-dir DIR] [--tracking-uri URI]
-v: also the libraries' logging (TensorFlow, MLflow, Optuna), quiet by default.
"""

from bench.cli import script

if __name__ == "__main__":
    raise SystemExit(script("bench.cli.replicate"))
