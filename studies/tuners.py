"""The tuner benchmark: which sampler and pruner find good configs fastest, on fold u1.

    python studies/tuners.py [-v] [--archs mf,nnmf] [--samplers random,tpe,tpe-small,qmc]
                             [--pruners median] [--seeds 3] [--trials 24]

Writes reports/tuners/ (report.md, anytime.png, runs.csv) and the MLflow experiment `tuners`.
"""

from bench.cli import script

if __name__ == "__main__":
    raise SystemExit(script("bench.cli.tuners"))
