"""Train the reference post's three models with its settings; compare with its figures.

python studies/seed_replication.py [--quick] [--seed S] [--data-dir DIR] [--tracking-uri URI]
"""

from bench.cli import run
from bench.replication import main

if __name__ == "__main__":
    raise SystemExit(run(main))
